"""The Grafana dashboards, declared with Grafana's own typed builders (grafana-foundation-sdk)
and rendered to deploy/grafana/dashboards/ by `python -m deploy.generate`.

Every panel has a unit, a description and, where an operator acts on a value, thresholds.
PromQL queries use only metrics the services export (tests/observability checks it); the live
map's SQL reads only the operator map views (migration 0007), as the `airgrid_grafana` role."""

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
from grafana_foundation_sdk.models import geomap as geomap_models

from airgrid.topics import DEPARTMENT_CODES as DEPARTMENTS
from deploy.map_queries import LAYERS, POSTGRES, Layer, SqlTarget

PROMETHEUS = dashboard_models.DataSourceRef(type_val="prometheus", uid="airgrid-prometheus")
RATE = "$__rate_interval"

Steps = tuple[tuple[str, float | None], ...]
GREEN = ("green", None)
AnyPanel = timeseries.Panel | stat.Panel | geomap.Panel
Target = cog_builder.Builder[cog_variants.Dataquery]


def _q(expr: str, legend: str = "") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").datasource(PROMETHEUS)
    )


def _quantile(q: float, metric: str, by: str = "", selector: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}[{RATE}])))"


def _share_within(metric: str, le: str, selector: str = "") -> str:
    inner = selector.strip("{}")
    bucket = "{" + ", ".join(s for s in (inner, f'le="{le}"') if s) + "}"
    return (
        f"sum(rate({metric}_bucket{bucket}[{RATE}])) / sum(rate({metric}_count{selector}[{RATE}]))"
    )


def _thresholds(steps: Steps) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_models.Threshold(value=value, color=color) for color, value in steps])
    )


def _with_refs(queries: Sequence[prometheus.Dataquery]) -> list[Target]:
    return [query.ref_id(chr(ord("A") + i)) for i, query in enumerate(queries)]


def _timeseries(
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
        .thresholds(_thresholds(thresholds))
        .color_scheme(
            dashboard_builders.FieldColor().mode(dashboard_models.FieldColorModeId.PALETTE_CLASSIC)
        )
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .targets(_with_refs(queries))
    )
    if len(thresholds) > 1:  # a line where an operator acts
        panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common_models.GraphThresholdsStyleMode.LINE
            )
        )
    return panel


def _stat(
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
        .thresholds(_thresholds(thresholds))
        .color_scheme(
            dashboard_builders.FieldColor().mode(dashboard_models.FieldColorModeId.THRESHOLDS)
        )
        .targets(_with_refs(queries))
    )


def _dashboard(
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


UP = 'up{job=~"airgrid-.*"}'
TTS = "airgrid_time_to_scene_seconds"
DECISION = "airgrid_dispatch_decision_seconds"


def operations() -> dict[str, Any]:
    panels: list[AnyPanel] = [
        _stat(
            "Services up",
            "1 when Prometheus scrapes the service; 0 means it is down or unreachable.",
            "none",
            (_q(f"sum by (job) ({UP})", "{{job}}"),),
            thresholds=(("red", None), ("green", 1)),
        ),
        _stat(
            "Share on scene within 300 s",
            "Share of drones on scene within the 300 s SLA (time to scene histogram, le=300).",
            "percentunit",
            (_q(_share_within(TTS, "300.0"), "within 300 s"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        _stat(
            "Coverage",
            "Share of the zone that available drones reach within 300 s. Target 99 %.",
            "percentunit",
            (_q("max(airgrid_coverage_ratio)", "coverage"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        _timeseries(
            "Incidents accepted",
            "Incidents accepted over HTTP per minute, by priority (1 = life-safety).",
            "opm",
            (
                _q(
                    f"sum by (priority) (rate(airgrid_incidents_accepted_total[{RATE}])) * 60",
                    "P{{priority}}",
                ),
            ),
        ),
        _timeseries(
            "Time to scene",
            "Median and 95th percentile from accepted to a drone on scene. "
            "Targets: median <= 120 s, everything <= 300 s.",
            "s",
            (_q(_quantile(0.5, TTS), "p50"), _q(_quantile(0.95, TTS), "p95")),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        _timeseries(
            "Fleet by status",
            "Drones as dispatch sees them: docked, airborne idle, on a mission, unavailable "
            "(link lost, fault, no position) or out of service.",
            "none",
            (_q("sum by (status) (airgrid_fleet_drones)", "{{status}}"),),
        ),
        _timeseries(
            "Incidents waiting",
            "Incidents queued for a drone, by priority. Anything waiting at P1 needs an operator.",
            "none",
            (_q("sum by (priority) (airgrid_dispatch_queued_incidents)", "P{{priority}}"),),
            thresholds=(GREEN, ("orange", 1), ("red", 5)),
        ),
        _timeseries(
            "SLA alerts",
            "SLA at-risk and breached alerts raised in each interval.",
            "none",
            (_q(f"sum by (kind) (increase(airgrid_sla_alerts_total[{RATE}]))", "{{kind}}"),),
            thresholds=(GREEN, ("red", 1)),
        ),
        _timeseries(
            "HTTP server errors",
            "5xx responses per second by service; bad input is 4xx, so any 5xx is a fault.",
            "reqps",
            (
                _q(
                    f'sum by (service) (rate(airgrid_http_requests_total{{status="5xx"}}[{RATE}]))'
                    f" or sum by (service) (rate(airgrid_http_requests_total[{RATE}])) * 0",
                    "{{service}}",
                ),
            ),
            thresholds=(GREEN, ("red", 0.1)),
        ),
    ]
    return _dashboard(
        "airgrid-operations",
        "airgrid / Operations overview",
        "Is the air grid healthy: services, SLA, coverage, fleet, queue.",
        panels,
    )


def dispatch() -> dict[str, Any]:
    panels: list[AnyPanel] = [
        _timeseries(
            "Decision latency",
            "From an incident consumed to its decision committed (p50, p95, p99). "
            "Targets: p50 <= 5 ms, p99 <= 50 ms.",
            "s",
            tuple(_q(_quantile(q, DECISION), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)),
            thresholds=(GREEN, ("orange", 0.005), ("red", 0.05)),
        ),
        _timeseries(
            "Decisions within target",
            "Share of decisions committed within 5 ms and within 50 ms.",
            "percentunit",
            (
                _q(_share_within(DECISION, "0.005"), "<= 5 ms"),
                _q(_share_within(DECISION, "0.05"), "<= 50 ms"),
            ),
            thresholds=(("red", None), ("orange", 0.9), ("green", 0.99)),
        ),
        _timeseries(
            "Accepted to decided",
            "From the HTTP accept to the first decision (outbox and broker included), p95.",
            "s",
            (_q(_quantile(0.95, "airgrid_dispatch_accept_to_decision_seconds"), "p95"),),
            thresholds=(GREEN, ("orange", 1), ("red", 5)),
        ),
        _timeseries(
            "Time to scene by priority",
            "95th percentile from accepted to on scene, by priority. SLA 300 s.",
            "s",
            (_q(_quantile(0.95, TTS, "priority"), "P{{priority}} p95"),),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        _timeseries(
            "Share within 300 s",
            "Share of drones on scene within 300 s, over the dashboard interval.",
            "percentunit",
            (_q(_share_within(TTS, "300.0"), "within 300 s"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        _timeseries(
            "Outcomes",
            "Dispatch outcomes per second: assigned, queued, linked duplicates, preempted, "
            "re-dispatched.",
            "ops",
            (
                _q(
                    f"sum by (outcome) (rate(airgrid_dispatch_outcomes_total[{RATE}]))",
                    "{{outcome}}",
                ),
            ),
        ),
        _timeseries(
            "Decisions by kind",
            "Every decision of the dispatch core per second, patrols and SLA alerts included.",
            "ops",
            (_q(f"sum by (kind) (rate(airgrid_dispatch_decisions_total[{RATE}]))", "{{kind}}"),),
        ),
        _timeseries(
            "Mission stages",
            "Mission stages reached per second.",
            "ops",
            (_q(f"sum by (stage) (rate(airgrid_mission_stages_total[{RATE}]))", "{{stage}}"),),
        ),
        _timeseries(
            "SLA alerts by priority",
            "SLA at-risk and breached alerts per interval, by priority and kind.",
            "none",
            (
                _q(
                    f"sum by (priority, kind) (increase(airgrid_sla_alerts_total[{RATE}]))",
                    "P{{priority}} {{kind}}",
                ),
            ),
            thresholds=(GREEN, ("red", 1)),
        ),
        _timeseries(
            "Queue and missions",
            "Incidents waiting for a drone and missions in flight.",
            "none",
            (
                _q("sum(airgrid_dispatch_queued_incidents)", "waiting"),
                _q("sum(airgrid_dispatch_active_missions)", "missions in flight"),
            ),
        ),
        _timeseries(
            "Dispatch outbox backlog",
            "Outbox rows fetched but not yet published in the last relay pass.",
            "none",
            (_q('max(airgrid_outbox_backlog_records{service="dispatch"})', "backlog"),),
            thresholds=(GREEN, ("orange", 100), ("red", 1000)),
        ),
        _timeseries(
            "Incident consumer lag",
            "Incident records on the broker not yet fetched by the dispatch group.",
            "none",
            (
                _q(
                    'sum by (topic) (airgrid_consumer_lag_records{group="airgrid-dispatch"})',
                    "{{topic}}",
                ),
            ),
            thresholds=(GREEN, ("orange", 100), ("red", 1000)),
        ),
    ]
    return _dashboard(
        "airgrid-dispatch",
        "airgrid / Dispatch and SLA",
        "Decision latency, time to scene against the 300 s SLA, outcomes, alerts, queue.",
        panels,
    )


def telemetry() -> dict[str, Any]:
    panels: list[AnyPanel] = [
        _timeseries(
            "Records accepted",
            "Telemetry records accepted into live state per second "
            "(nominal 5 Hz per airborne drone, 0.5 Hz docked).",
            "ops",
            (_q(f"sum(rate(airgrid_telemetry_records_total[{RATE}]))", "accepted"),),
        ),
        _timeseries(
            "Records rejected by reason",
            "Records sent to the DLQ per second, by reason (malformed, unknown drone, "
            "out of range, future, too old, duplicate, out of order).",
            "ops",
            (
                _q(
                    f"sum by (reason) (rate(airgrid_telemetry_rejected_total[{RATE}]))",
                    "{{reason}}",
                ),
            ),
            thresholds=(GREEN, ("orange", 1), ("red", 10)),
        ),
        _timeseries(
            "Reject ratio",
            "Rejected records as a share of all records handled.",
            "percentunit",
            (
                _q(
                    f"sum(rate(airgrid_telemetry_rejected_total[{RATE}])) / "
                    f"(sum(rate(airgrid_telemetry_rejected_total[{RATE}])) + "
                    f"sum(rate(airgrid_telemetry_records_total[{RATE}])))",
                    "rejected",
                ),
            ),
            thresholds=(GREEN, ("orange", 0.01), ("red", 0.05)),
        ),
        _timeseries(
            "Record to state lag",
            "From a record's event time to its drone state acknowledged by the broker "
            "(p50, p95, p99).",
            "s",
            tuple(
                _q(_quantile(q, "airgrid_telemetry_record_to_state_seconds"), f"p{int(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ),
            thresholds=(GREEN, ("orange", 0.5), ("red", 2)),
        ),
        _timeseries(
            "Telemetry consumer lag",
            "Raw records on the broker not yet fetched by the telemetry group.",
            "none",
            (
                _q(
                    'sum by (topic) (airgrid_consumer_lag_records{group="airgrid-telemetry"})',
                    "{{topic}}",
                ),
            ),
            thresholds=(GREEN, ("orange", 1000), ("red", 10000)),
        ),
        _timeseries(
            "Consumer records by outcome",
            "Records handled per second by each consumer, by outcome.",
            "ops",
            (
                _q(
                    f"sum by (consumer, outcome) (rate(airgrid_consumer_records_total[{RATE}]))",
                    "{{consumer}} {{outcome}}",
                ),
            ),
        ),
        _timeseries(
            "Track points written",
            "Track history points written to the database per second (batched).",
            "ops",
            (_q(f"sum(rate(airgrid_telemetry_track_points_total[{RATE}]))", "points"),),
        ),
        _timeseries(
            "Drone alerts",
            "Drone alerts raised per interval: low battery, link lost, geofence breach, off route.",
            "none",
            (
                _q(
                    'sum by (kind) (increase(airgrid_telemetry_alerts_total{active="true"}'
                    f"[{RATE}]))",
                    "{{kind}}",
                ),
            ),
        ),
        _timeseries(
            "SSE clients",
            "Department feed clients connected over Server-Sent Events, and clients dropped "
            "because they read too slowly.",
            "none",
            (
                _q("sum(airgrid_feed_sse_clients)", "connected"),
                _q(f"sum(increase(airgrid_feed_sse_dropped_total[{RATE}]))", "dropped"),
            ),
        ),
    ]
    return _dashboard(
        "airgrid-telemetry",
        "airgrid / Telemetry pipeline",
        "Ingest rate, rejects by reason, record to state lag, consumer lag, feeds.",
        panels,
    )


def department() -> dict[str, Any]:
    sel = '{department="$department"}'
    variable = (
        dashboard_builders.CustomVariable("department")
        .label("Department")
        .description("The department code (SPEC §1).")
        .values(",".join(DEPARTMENTS))
        .current(dashboard_models.VariableOption(text="fire", value="fire", selected=True))
        .options(
            [
                dashboard_models.VariableOption(text=code, value=code, selected=code == "fire")
                for code in DEPARTMENTS
            ]
        )
        .multi(False)
        .include_all(False)
        .allow_custom_value(False)
    )
    panels: list[AnyPanel] = [
        _timeseries(
            "Incidents accepted",
            "The department's incidents accepted per minute, by priority.",
            "opm",
            (
                _q(
                    f"sum by (priority) (rate(airgrid_incidents_accepted_total{sel}[{RATE}])) * 60",
                    "P{{priority}}",
                ),
            ),
        ),
        _stat(
            "Share within 300 s",
            "Share of the department's drones on scene within the 300 s SLA.",
            "percentunit",
            (_q(_share_within(TTS, "300.0", sel), "within 300 s"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        _timeseries(
            "Time to scene",
            "Median and 95th percentile time to scene for the department.",
            "s",
            (
                _q(_quantile(0.5, TTS, selector=sel), "p50"),
                _q(_quantile(0.95, TTS, selector=sel), "p95"),
            ),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        _timeseries(
            "Outcomes",
            "The department's dispatch outcomes per second.",
            "ops",
            (
                _q(
                    f"sum by (outcome) (rate(airgrid_dispatch_outcomes_total{sel}[{RATE}]))",
                    "{{outcome}}",
                ),
            ),
        ),
        _timeseries(
            "SLA alerts",
            "The department's SLA at-risk and breached alerts per interval.",
            "none",
            (
                _q(
                    f"sum by (kind) (increase(airgrid_sla_alerts_total{sel}[{RATE}]))",
                    "{{kind}}",
                ),
            ),
            thresholds=(GREEN, ("red", 1)),
        ),
        _timeseries(
            "Feed clients",
            "Clients following the department's feed over SSE.",
            "none",
            (_q(f"sum(airgrid_feed_sse_clients{sel})", "connected"),),
        ),
    ]
    return _dashboard(
        "airgrid-department",
        "airgrid / Department",
        "One department's incidents, time to scene, outcomes, SLA alerts and feed clients.",
        panels,
        [variable],
    )


def infrastructure() -> dict[str, Any]:
    job = '{job=~"airgrid-.*"}'
    panels: list[AnyPanel] = [
        _timeseries(
            "Scrape targets up",
            "Service instances Prometheus scrapes successfully, by job.",
            "none",
            (_q(f"sum by (job) ({UP})", "{{job}}"),),
            thresholds=(("red", None), ("green", 1)),
        ),
        _timeseries(
            "Consumer lag by group",
            "Records on the broker not yet fetched, by consumer group and topic.",
            "none",
            (_q("sum by (group, topic) (airgrid_consumer_lag_records)", "{{group}} {{topic}}"),),
            thresholds=(GREEN, ("orange", 1000), ("red", 10000)),
        ),
        _timeseries(
            "Outbox",
            "Outbox backlog by service and rows published per second.",
            "none",
            (
                _q("sum by (service) (airgrid_outbox_backlog_records)", "{{service}} backlog"),
                _q(
                    f"sum by (service) (rate(airgrid_outbox_published_total[{RATE}]))",
                    "{{service}} published/s",
                ),
            ),
            thresholds=(GREEN, ("orange", 100), ("red", 1000)),
        ),
        _timeseries(
            "Database pool",
            "Connections in use and idle across the services' pools, against the pool size.",
            "none",
            (
                _q("sum by (job, state) (airgrid_db_pool_connections)", "{{job}} {{state}}"),
                _q("sum by (job) (airgrid_db_pool_size_connections)", "{{job}} size"),
            ),
        ),
        _timeseries(
            "HTTP requests",
            "Requests per second by service and status class.",
            "reqps",
            (
                _q(
                    f"sum by (service, status) (rate(airgrid_http_requests_total[{RATE}]))",
                    "{{service}} {{status}}",
                ),
            ),
        ),
        _timeseries(
            "HTTP latency p95",
            "95th percentile request time by service.",
            "s",
            (
                _q(
                    _quantile(0.95, "airgrid_http_request_duration_seconds", "service"),
                    "{{service}}",
                ),
            ),
            thresholds=(GREEN, ("orange", 0.25), ("red", 1)),
        ),
        _timeseries(
            "Process CPU",
            "CPU seconds per second used by each service process.",
            "percentunit",
            (_q(f"sum by (job) (rate(process_cpu_seconds_total{job}[{RATE}]))", "{{job}}"),),
            thresholds=(GREEN, ("orange", 0.8), ("red", 0.95)),
        ),
        _timeseries(
            "Process memory",
            "Resident memory of each service process.",
            "bytes",
            (_q(f"sum by (job) (process_resident_memory_bytes{job})", "{{job}}"),),
            thresholds=(GREEN, ("orange", 400e6), ("red", 480e6)),
        ),
        _timeseries(
            "Open file descriptors",
            "Open file descriptors per process (sockets included), against the limit.",
            "none",
            (
                _q(f"sum by (job) (process_open_fds{job})", "{{job}} open"),
                _q(f"min by (job) (process_max_fds{job})", "{{job}} limit"),
            ),
        ),
    ]
    return _dashboard(
        "airgrid-infrastructure",
        "airgrid / Infrastructure",
        "Kafka consumer lag, outbox, database pool, HTTP and process resources.",
        panels,
    )


# -- the live map (PostgreSQL) -------------------------------------------------------------------

# Marker colours by the value of the layer's colour field (Grafana value mappings).
COLOURS = {
    "status": {
        "docked": "green",
        "airborne": "blue",
        "on_mission": "orange",
        "link_lost": "red",
        "no_position": "purple",
        "out_of_service": "text",
    },
    "priority": {"1": "red", "2": "orange", "3": "yellow", "4": "blue"},
    "state": {
        "online": "green",
        "weather_hold": "orange",
        "offline": "red",
        "maintenance": "text",
    },
    "coverage": {"hole": "red"},
}


def _colour_mapping(field: str) -> list[dashboard_models.DynamicConfigValue]:
    options = {
        value: {"color": colour, "index": i, "text": value}
        for i, (value, colour) in enumerate(COLOURS[field].items())
    }
    return [
        dashboard_models.DynamicConfigValue(
            id_val="mappings", value=[{"type": "value", "options": options}]
        ),
        dashboard_models.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
    ]


def _markers(layer: Layer) -> common_builders.MapLayerOptions:
    return (
        common_builders.MapLayerOptions()
        .type("markers")
        .name(layer.name)
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": layer.colour_by, "fixed": "dark-green"},
                    "opacity": layer.opacity,
                    "size": {"fixed": 6, "min": 4, "max": 12},
                    "symbol": {"mode": "fixed", "fixed": f"img/icons/marker/{layer.symbol}.svg"},
                    "text": (
                        {"mode": "field", "field": layer.label, "fixed": ""}
                        if layer.label
                        else {"mode": "fixed", "fixed": ""}
                    ),
                    "textConfig": {"fontSize": 10, "offsetY": -12, "textAlign": "center"},
                },
            }
        )
        .location(
            common_builders.FrameGeometrySource()
            .mode(common_models.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .filter_data({"id": "byRefId", "options": layer.ref_id})
        .tooltip(True)
    )


def operator_map() -> dict[str, Any]:
    sql_targets: list[Target] = [SqlTarget(layer.ref_id, layer.sql) for layer in LAYERS]
    panel = (
        geomap.Panel()
        .title("Live map")
        .description(
            "Drones by status (last fix in the time range), open incidents by priority with "
            "their stage, nests with weather holds, and the coverage holes: cells no available "
            "drone reaches within the 300 s SLA now. Read from the operator map views."
        )
        .datasource(POSTGRES)
        .unit("none")
        .span(24)
        .height(20)
        .thresholds(_thresholds((GREEN,)))
        .targets(sql_targets)
        .view(geomap.MapViewConfig().id("fit").all_layers(True).padding(5))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_scale(True))
        .basemap(common_builders.MapLayerOptions().type("default").name("Basemap"))
        .layers([_markers(layer) for layer in LAYERS])
        .tooltip(geomap.TooltipOptions().mode(geomap_models.TooltipMode.DETAILS))
    )
    for field in COLOURS:
        panel.override_by_name(field, _colour_mapping(field))
    return _dashboard(
        "airgrid-operator-map",
        "airgrid — live map",
        "Where the drones, open incidents, held nests and coverage holes are now (PostgreSQL, "
        "read-only role).",
        [panel],
        refresh="10s",
        time_from="now-15m",
    )


DASHBOARDS = {
    "operations.json": operations,
    "dispatch.json": dispatch,
    "telemetry.json": telemetry,
    "department.json": department,
    "infrastructure.json": infrastructure,
    "operator-map.json": operator_map,
}
