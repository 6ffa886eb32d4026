"""The Grafana dashboards, declared once in Python and rendered to deploy/grafana/dashboards/.

Every panel has a unit, a description and, where an operator acts on a value, thresholds.
Queries use only metrics the services export (tests/observability checks it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airgrid.topics import DEPARTMENT_CODES as DEPARTMENTS

DATASOURCE = {"type": "prometheus", "uid": "airgrid-prometheus"}
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    exprs: tuple[tuple[str, str], ...]  # (expr, legend)
    kind: str = "timeseries"
    thresholds: tuple[tuple[str, float | None], ...] = (("green", None),)
    width: int = 8
    height: int = 7
    extra: dict[str, Any] = field(default_factory=dict)


def _q(expr: str, legend: str = "") -> tuple[str, str]:
    return (expr, legend)


def _quantile(q: float, metric: str, by: str = "", selector: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}[{RATE}])))"


def _share_within(metric: str, le: str, selector: str = "") -> str:
    inner = selector.strip("{}")
    bucket = "{" + ", ".join(s for s in (inner, f'le="{le}"') if s) + "}"
    return (
        f"sum(rate({metric}_bucket{bucket}[{RATE}])) / sum(rate({metric}_count{selector}[{RATE}]))"
    )


GREEN = ("green", None)


def _render_panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for color, value in panel.thresholds]
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds" if panel.kind == "stat" else "palette-classic"},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend or "__auto",
            }
            for i, (expr, legend) in enumerate(panel.exprs)
        ],
    }
    if panel.kind == "timeseries" and len(steps) > 1:
        out["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
    out.update(panel.extra)
    return out


def _dashboard(
    uid: str, title: str, description: str, panels: list[Panel], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    rendered, x, y, row_h = [], 0, 0, 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_h = 0, y + row_h, 0
        rendered.append(_render_panel(panel, i, x, y))
        x += panel.width
        row_h = max(row_h, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["airgrid"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["airgrid"], "asDropdown": True, "title": "airgrid"}
        ],
        "panels": rendered,
    }


UP = 'up{job=~"airgrid-.*"}'
TTS = "airgrid_time_to_scene_seconds"
DECISION = "airgrid_dispatch_decision_seconds"


def operations() -> dict[str, Any]:
    panels = [
        Panel(
            "Services up",
            "1 when Prometheus scrapes the service; 0 means it is down or unreachable.",
            "none",
            (_q(f"sum by (job) ({UP})", "{{job}}"),),
            kind="stat",
            thresholds=(("red", None), ("green", 1)),
        ),
        Panel(
            "Share on scene within 300 s",
            "Share of drones on scene within the 300 s SLA (time to scene histogram, le=300).",
            "percentunit",
            (_q(_share_within(TTS, "300.0"), "within 300 s"),),
            kind="stat",
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        Panel(
            "Coverage",
            "Share of the zone that available drones reach within 300 s. Target 99 %.",
            "percentunit",
            (_q("max(airgrid_coverage_ratio)", "coverage"),),
            kind="stat",
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        Panel(
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
        Panel(
            "Time to scene",
            "Median and 95th percentile from accepted to a drone on scene. "
            "Targets: median <= 120 s, everything <= 300 s.",
            "s",
            (_q(_quantile(0.5, TTS), "p50"), _q(_quantile(0.95, TTS), "p95")),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        Panel(
            "Fleet by status",
            "Drones as dispatch sees them: docked, airborne idle, on a mission, unavailable "
            "(link lost, fault, no position) or out of service.",
            "none",
            (_q("sum by (status) (airgrid_fleet_drones)", "{{status}}"),),
            extra={"options": {"legend": {"displayMode": "list", "placement": "bottom"}}},
        ),
        Panel(
            "Incidents waiting",
            "Incidents queued for a drone, by priority. Anything waiting at P1 needs an operator.",
            "none",
            (_q("sum by (priority) (airgrid_dispatch_queued_incidents)", "P{{priority}}"),),
            thresholds=(GREEN, ("orange", 1), ("red", 5)),
        ),
        Panel(
            "SLA alerts",
            "SLA at-risk and breached alerts raised in each interval.",
            "none",
            (_q(f"sum by (kind) (increase(airgrid_sla_alerts_total[{RATE}]))", "{{kind}}"),),
            thresholds=(GREEN, ("red", 1)),
        ),
        Panel(
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
        [],
    )


def dispatch() -> dict[str, Any]:
    panels = [
        Panel(
            "Decision latency",
            "From an incident consumed to its decision committed (p50, p95, p99). "
            "Targets: p50 <= 5 ms, p99 <= 50 ms.",
            "s",
            tuple(_q(_quantile(q, DECISION), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)),
            thresholds=(GREEN, ("orange", 0.005), ("red", 0.05)),
        ),
        Panel(
            "Decisions within target",
            "Share of decisions committed within 5 ms and within 50 ms.",
            "percentunit",
            (
                _q(_share_within(DECISION, "0.005"), "<= 5 ms"),
                _q(_share_within(DECISION, "0.05"), "<= 50 ms"),
            ),
            thresholds=(("red", None), ("orange", 0.9), ("green", 0.99)),
        ),
        Panel(
            "Accepted to decided",
            "From the HTTP accept to the first decision (outbox and broker included), p95.",
            "s",
            (_q(_quantile(0.95, "airgrid_dispatch_accept_to_decision_seconds"), "p95"),),
            thresholds=(GREEN, ("orange", 1), ("red", 5)),
        ),
        Panel(
            "Time to scene by priority",
            "95th percentile from accepted to on scene, by priority. SLA 300 s.",
            "s",
            (_q(_quantile(0.95, TTS, "priority"), "P{{priority}} p95"),),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        Panel(
            "Share within 300 s",
            "Share of drones on scene within 300 s, over the dashboard interval.",
            "percentunit",
            (_q(_share_within(TTS, "300.0"), "within 300 s"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        Panel(
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
        Panel(
            "Decisions by kind",
            "Every decision of the dispatch core per second, patrols and SLA alerts included.",
            "ops",
            (_q(f"sum by (kind) (rate(airgrid_dispatch_decisions_total[{RATE}]))", "{{kind}}"),),
        ),
        Panel(
            "Mission stages",
            "Mission stages reached per second.",
            "ops",
            (_q(f"sum by (stage) (rate(airgrid_mission_stages_total[{RATE}]))", "{{stage}}"),),
        ),
        Panel(
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
        Panel(
            "Queue and missions",
            "Incidents waiting for a drone and missions in flight.",
            "none",
            (
                _q("sum(airgrid_dispatch_queued_incidents)", "waiting"),
                _q("sum(airgrid_dispatch_active_missions)", "missions in flight"),
            ),
        ),
        Panel(
            "Dispatch outbox backlog",
            "Outbox rows fetched but not yet published in the last relay pass.",
            "none",
            (_q('max(airgrid_outbox_backlog_records{service="dispatch"})', "backlog"),),
            thresholds=(GREEN, ("orange", 100), ("red", 1000)),
        ),
        Panel(
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
        [],
    )


def telemetry() -> dict[str, Any]:
    panels = [
        Panel(
            "Records accepted",
            "Telemetry records accepted into live state per second "
            "(nominal 5 Hz per airborne drone, 0.5 Hz docked).",
            "ops",
            (_q(f"sum(rate(airgrid_telemetry_records_total[{RATE}]))", "accepted"),),
        ),
        Panel(
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
        Panel(
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
        Panel(
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
        Panel(
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
        Panel(
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
        Panel(
            "Track points written",
            "Track history points written to the database per second (batched).",
            "ops",
            (_q(f"sum(rate(airgrid_telemetry_track_points_total[{RATE}]))", "points"),),
        ),
        Panel(
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
        Panel(
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
        [],
    )


def department() -> dict[str, Any]:
    sel = '{department="$department"}'
    variable = {
        "name": "department",
        "label": "Department",
        "type": "custom",
        "query": ",".join(DEPARTMENTS),
        "current": {"text": "fire", "value": "fire"},
        "options": [
            {"text": code, "value": code, "selected": code == "fire"} for code in DEPARTMENTS
        ],
        "multi": False,
        "includeAll": False,
        "description": "The department code (SPEC §1).",
    }
    panels = [
        Panel(
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
        Panel(
            "Share within 300 s",
            "Share of the department's drones on scene within the 300 s SLA.",
            "percentunit",
            (_q(_share_within(TTS, "300.0", sel), "within 300 s"),),
            kind="stat",
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        Panel(
            "Time to scene",
            "Median and 95th percentile time to scene for the department.",
            "s",
            (
                _q(_quantile(0.5, TTS, selector=sel), "p50"),
                _q(_quantile(0.95, TTS, selector=sel), "p95"),
            ),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        Panel(
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
        Panel(
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
        Panel(
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
    panels = [
        Panel(
            "Scrape targets up",
            "Service instances Prometheus scrapes successfully, by job.",
            "none",
            (_q(f"sum by (job) ({UP})", "{{job}}"),),
            thresholds=(("red", None), ("green", 1)),
        ),
        Panel(
            "Consumer lag by group",
            "Records on the broker not yet fetched, by consumer group and topic.",
            "none",
            (_q("sum by (group, topic) (airgrid_consumer_lag_records)", "{{group}} {{topic}}"),),
            thresholds=(GREEN, ("orange", 1000), ("red", 10000)),
        ),
        Panel(
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
        Panel(
            "Database pool",
            "Connections in use and idle across the services' pools, against the pool size.",
            "none",
            (
                _q("sum by (job, state) (airgrid_db_pool_connections)", "{{job}} {{state}}"),
                _q("sum by (job) (airgrid_db_pool_size_connections)", "{{job}} size"),
            ),
        ),
        Panel(
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
        Panel(
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
        Panel(
            "Process CPU",
            "CPU seconds per second used by each service process.",
            "percentunit",
            (_q(f"sum by (job) (rate(process_cpu_seconds_total{job}[{RATE}]))", "{{job}}"),),
            thresholds=(GREEN, ("orange", 0.8), ("red", 0.95)),
        ),
        Panel(
            "Process memory",
            "Resident memory of each service process.",
            "bytes",
            (_q(f"sum by (job) (process_resident_memory_bytes{job})", "{{job}}"),),
            thresholds=(GREEN, ("orange", 400e6), ("red", 480e6)),
        ),
        Panel(
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
        [],
    )


DASHBOARDS = {
    "operations.json": operations,
    "dispatch.json": dispatch,
    "telemetry.json": telemetry,
    "department.json": department,
    "infrastructure.json": infrastructure,
}
