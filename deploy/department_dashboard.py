"""The department dashboard: one department's incidents, time to scene and data feed, picked
with a `department` variable; what a department's duty officer watches."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as dashboard_models

from airgrid.topics import DEPARTMENT_CODES as DEPARTMENTS
from deploy.panels import (
    GREEN,
    RATE,
    TTS,
    AnyPanel,
    dashboard_json,
    promql,
    quantile,
    share_within,
    stat_panel,
    timeseries_panel,
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
        timeseries_panel(
            "Incidents accepted",
            "The department's incidents accepted per minute, by priority.",
            "opm",
            (
                promql(
                    f"sum by (priority) (rate(airgrid_incidents_accepted_total{sel}[{RATE}])) * 60",
                    "P{{priority}}",
                ),
            ),
        ),
        stat_panel(
            "Share within 300 s",
            "Share of the department's drones on scene within the 300 s SLA.",
            "percentunit",
            (promql(share_within(TTS, "300.0", sel), "within 300 s"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        timeseries_panel(
            "Time to scene",
            "Median and 95th percentile time to scene for the department.",
            "s",
            (
                promql(quantile(0.5, TTS, selector=sel), "p50"),
                promql(quantile(0.95, TTS, selector=sel), "p95"),
            ),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        timeseries_panel(
            "Outcomes",
            "The department's dispatch outcomes per second.",
            "ops",
            (
                promql(
                    f"sum by (outcome) (rate(airgrid_dispatch_outcomes_total{sel}[{RATE}]))",
                    "{{outcome}}",
                ),
            ),
        ),
        timeseries_panel(
            "SLA alerts",
            "The department's SLA at-risk and breached alerts per interval.",
            "none",
            (
                promql(
                    f"sum by (kind) (increase(airgrid_sla_alerts_total{sel}[{RATE}]))",
                    "{{kind}}",
                ),
            ),
            thresholds=(GREEN, ("red", 1)),
        ),
        timeseries_panel(
            "Feed clients",
            "Clients following the department's feed over SSE.",
            "none",
            (promql(f"sum(airgrid_feed_sse_clients{sel})", "connected"),),
        ),
    ]
    return dashboard_json(
        "airgrid-department",
        "airgrid / Department",
        "One department's incidents, time to scene, outcomes, SLA alerts and feed clients.",
        panels,
        [variable],
    )
