"""The panel kit of the Grafana dashboards: Prometheus queries, time series and stat panels with
units and thresholds, and a dashboard rendered to the JSON Grafana provisions. Every airgrid
dashboard is built from these, so all share one look, one data source and one link bar."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import geomap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cog_builder
from grafana_foundation_sdk.cog import variants as cog_variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models

PROMETHEUS = dashboard_models.DataSourceRef(type_val="prometheus", uid="airgrid-prometheus")
RATE = "$__rate_interval"

# Metrics more than one dashboard shows.
UP = 'up{job=~"airgrid-.*"}'
TTS = "airgrid_time_to_scene_seconds"
DECISION = "airgrid_dispatch_decision_seconds"

Steps = tuple[tuple[str, float | None], ...]
GREEN = ("green", None)
AnyPanel = timeseries.Panel | stat.Panel | geomap.Panel
Target = cog_builder.Builder[cog_variants.Dataquery]


def promql(expr: str, legend: str = "") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").datasource(PROMETHEUS)
    )


def quantile(q: float, metric: str, by: str = "", selector: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}[{RATE}])))"


def share_within(metric: str, le: str, selector: str = "") -> str:
    inner = selector.strip("{}")
    bucket = "{" + ", ".join(s for s in (inner, f'le="{le}"') if s) + "}"
    return (
        f"sum(rate({metric}_bucket{bucket}[{RATE}])) / sum(rate({metric}_count{selector}[{RATE}]))"
    )


def thresholds_config(steps: Steps) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_models.Threshold(value=value, color=color) for color, value in steps])
    )


def with_refs(queries: Sequence[prometheus.Dataquery]) -> list[Target]:
    return [query.ref_id(chr(ord("A") + i)) for i, query in enumerate(queries)]


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[prometheus.Dataquery],
    thresholds: Steps = (GREEN,),
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(8)
        .height(7)
        .thresholds(thresholds_config(thresholds))
        .color_scheme(
            dashboard_builders.FieldColor().mode(dashboard_models.FieldColorModeId.PALETTE_CLASSIC)
        )
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .targets(with_refs(queries))
    )
    if len(thresholds) > 1:  # a line where an operator acts
        panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common_models.GraphThresholdsStyleMode.LINE
            )
        )
    return panel


def stat_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[prometheus.Dataquery],
    thresholds: Steps,
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(8)
        .height(7)
        .thresholds(thresholds_config(thresholds))
        .color_scheme(
            dashboard_builders.FieldColor().mode(dashboard_models.FieldColorModeId.THRESHOLDS)
        )
        .targets(with_refs(queries))
    )


def dashboard_json(
    uid: str,
    title: str,
    description: str,
    panels: Sequence[AnyPanel],
    variables: Sequence[dashboard_builders.CustomVariable] = (),
    *,
    refresh: str = "30s",
    time_from: str = "now-3h",
) -> dict[str, Any]:
    builder = (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["airgrid"])
        .timezone("utc")
        .readonly()
        .version(1)
        .refresh(refresh)
        .time(time_from, "now")
        .link(
            dashboard_builders.DashboardLink("airgrid")
            .type(dashboard_models.DashboardLinkType.DASHBOARDS)
            .tags(["airgrid"])
            .as_dropdown(True)
        )
    )
    for variable in variables:
        builder.with_variable(variable)
    for panel_id, panel in enumerate(panels, start=1):
        builder.with_panel(panel.id(panel_id))
    rendered: dict[str, Any] = json.loads(JSONEncoder().encode(builder.build()))
    return rendered
