"""The Grafana dashboards, declared with Grafana's own typed builders (grafana-foundation-sdk)
from the panel kit of deploy/panels.py (the department view in deploy/department_dashboard.py,
the live map in deploy/operator_map_dashboard.py), rendered to deploy/grafana/dashboards/ by
`python -m deploy.generate`.

Every panel has a unit, a description and, where an operator acts on a value, thresholds.
PromQL queries use only metrics the services export (tests/observability checks it); the live
map's SQL reads only the operator map views (migration 0007), as the `airgrid_grafana` role."""

from __future__ import annotations

from typing import Any

from deploy.department_dashboard import department
from deploy.operator_map_dashboard import operator_map
from deploy.panels import (
    DECISION,
    GREEN,
    RATE,
    TTS,
    UP,
    AnyPanel,
    dashboard_json,
    promql,
    quantile,
    share_within,
    stat_panel,
    timeseries_panel,
)


def operations() -> dict[str, Any]:
    panels: list[AnyPanel] = [
        stat_panel(
            "Services up",
            "1 when Prometheus scrapes the service; 0 means it is down or unreachable.",
            "none",
            (promql(f"sum by (job) ({UP})", "{{job}}"),),
            thresholds=(("red", None), ("green", 1)),
        ),
        stat_panel(
            "Share on scene within 300 s",
            "Share of drones on scene within the 300 s SLA (time to scene histogram, le=300).",
            "percentunit",
            (promql(share_within(TTS, "300.0"), "within 300 s"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        stat_panel(
            "Coverage",
            "Share of the zone that available drones reach within 300 s. Target 99 %.",
            "percentunit",
            (promql("max(airgrid_coverage_ratio)", "coverage"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        stat_panel(
            "Inspection freshness",
            "Share of the cells inspection plans hold now that were seen within their "
            "revisit interval (1 when nothing is due).",
            "percentunit",
            (promql("max(airgrid_inspection_freshness_overall_share)", "fresh"),),
            thresholds=(("red", None), ("orange", 0.8), ("green", 0.95)),
        ),
        timeseries_panel(
            "Incidents accepted",
            "Incidents accepted over HTTP per minute, by priority (1 = life-safety).",
            "opm",
            (
                promql(
                    f"sum by (priority) (rate(airgrid_incidents_accepted_total[{RATE}])) * 60",
                    "P{{priority}}",
                ),
            ),
        ),
        timeseries_panel(
            "Time to scene",
            "Median and 95th percentile from accepted to a drone on scene. "
            "Targets: median <= 120 s, everything <= 300 s.",
            "s",
            (promql(quantile(0.5, TTS), "p50"), promql(quantile(0.95, TTS), "p95")),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        timeseries_panel(
            "Fleet by status",
            "Drones as dispatch sees them: docked, airborne idle, on a mission, unavailable "
            "(link lost, fault, no position) or out of service.",
            "none",
            (promql("sum by (status) (airgrid_fleet_drones)", "{{status}}"),),
        ),
        timeseries_panel(
            "Incidents waiting",
            "Incidents queued for a drone, by priority. Anything waiting at P1 needs an operator.",
            "none",
            (promql("sum by (priority) (airgrid_dispatch_queued_incidents)", "P{{priority}}"),),
            thresholds=(GREEN, ("orange", 1), ("red", 5)),
        ),
        timeseries_panel(
            "SLA alerts",
            "SLA at-risk and breached alerts raised in each interval.",
            "none",
            (promql(f"sum by (kind) (increase(airgrid_sla_alerts_total[{RATE}]))", "{{kind}}"),),
            thresholds=(GREEN, ("red", 1)),
        ),
        timeseries_panel(
            "HTTP server errors",
            "5xx responses per second by service; bad input is 4xx, so any 5xx is a fault.",
            "reqps",
            (
                promql(
                    f'sum by (service) (rate(airgrid_http_requests_total{{status="5xx"}}[{RATE}]))'
                    f" or sum by (service) (rate(airgrid_http_requests_total[{RATE}])) * 0",
                    "{{service}}",
                ),
            ),
            thresholds=(GREEN, ("red", 0.1)),
        ),
    ]
    return dashboard_json(
        "airgrid-operations",
        "airgrid / Operations overview",
        "Is the air grid healthy: services, SLA, coverage, fleet, queue.",
        panels,
    )


def dispatch() -> dict[str, Any]:
    panels: list[AnyPanel] = [
        timeseries_panel(
            "Decision latency",
            "From an incident consumed to its decision committed (p50, p95, p99). "
            "Targets: p50 <= 5 ms, p99 <= 50 ms.",
            "s",
            tuple(promql(quantile(q, DECISION), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)),
            thresholds=(GREEN, ("orange", 0.005), ("red", 0.05)),
        ),
        timeseries_panel(
            "Decisions within target",
            "Share of decisions committed within 5 ms and within 50 ms.",
            "percentunit",
            (
                promql(share_within(DECISION, "0.005"), "<= 5 ms"),
                promql(share_within(DECISION, "0.05"), "<= 50 ms"),
            ),
            thresholds=(("red", None), ("orange", 0.9), ("green", 0.99)),
        ),
        timeseries_panel(
            "Accepted to decided",
            "From the HTTP accept to the first decision (outbox and broker included), p95.",
            "s",
            (promql(quantile(0.95, "airgrid_dispatch_accept_to_decision_seconds"), "p95"),),
            thresholds=(GREEN, ("orange", 1), ("red", 5)),
        ),
        timeseries_panel(
            "Time to scene by priority",
            "95th percentile from accepted to on scene, by priority. SLA 300 s.",
            "s",
            (promql(quantile(0.95, TTS, "priority"), "P{{priority}} p95"),),
            thresholds=(GREEN, ("orange", 120), ("red", 300)),
        ),
        timeseries_panel(
            "Share within 300 s",
            "Share of drones on scene within 300 s, over the dashboard interval.",
            "percentunit",
            (promql(share_within(TTS, "300.0"), "within 300 s"),),
            thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
        ),
        timeseries_panel(
            "Outcomes",
            "Dispatch outcomes per second: assigned, queued, linked duplicates, preempted, "
            "re-dispatched.",
            "ops",
            (
                promql(
                    f"sum by (outcome) (rate(airgrid_dispatch_outcomes_total[{RATE}]))",
                    "{{outcome}}",
                ),
            ),
        ),
        timeseries_panel(
            "Decisions by kind",
            "Every decision of the dispatch core per second, patrols and SLA alerts included.",
            "ops",
            (
                promql(
                    f"sum by (kind) (rate(airgrid_dispatch_decisions_total[{RATE}]))", "{{kind}}"
                ),
            ),
        ),
        timeseries_panel(
            "Mission stages",
            "Mission stages reached per second.",
            "ops",
            (promql(f"sum by (stage) (rate(airgrid_mission_stages_total[{RATE}]))", "{{stage}}"),),
        ),
        timeseries_panel(
            "SLA alerts by priority",
            "SLA at-risk and breached alerts per interval, by priority and kind.",
            "none",
            (
                promql(
                    f"sum by (priority, kind) (increase(airgrid_sla_alerts_total[{RATE}]))",
                    "P{{priority}} {{kind}}",
                ),
            ),
            thresholds=(GREEN, ("red", 1)),
        ),
        timeseries_panel(
            "Queue and missions",
            "Incidents waiting for a drone and missions in flight.",
            "none",
            (
                promql("sum(airgrid_dispatch_queued_incidents)", "waiting"),
                promql("sum(airgrid_dispatch_active_missions)", "missions in flight"),
            ),
        ),
        timeseries_panel(
            "Dispatch outbox backlog",
            "Outbox rows fetched but not yet published in the last relay pass.",
            "none",
            (promql('max(airgrid_outbox_backlog_records{service="dispatch"})', "backlog"),),
            thresholds=(GREEN, ("orange", 100), ("red", 1000)),
        ),
        timeseries_panel(
            "Incident consumer lag",
            "Incident records on the broker not yet fetched by the dispatch group.",
            "none",
            (
                promql(
                    'sum by (topic) (airgrid_consumer_lag_records{group="airgrid-dispatch"})',
                    "{{topic}}",
                ),
            ),
            thresholds=(GREEN, ("orange", 100), ("red", 1000)),
        ),
    ]
    return dashboard_json(
        "airgrid-dispatch",
        "airgrid / Dispatch and SLA",
        "Decision latency, time to scene against the 300 s SLA, outcomes, alerts, queue.",
        panels,
    )


def telemetry() -> dict[str, Any]:
    panels: list[AnyPanel] = [
        timeseries_panel(
            "Records accepted",
            "Telemetry records accepted into live state per second "
            "(nominal 5 Hz per airborne drone, 0.5 Hz docked).",
            "ops",
            (promql(f"sum(rate(airgrid_telemetry_records_total[{RATE}]))", "accepted"),),
        ),
        timeseries_panel(
            "Records rejected by reason",
            "Records sent to the DLQ per second, by reason (malformed, unknown drone, "
            "out of range, future, too old, duplicate, out of order).",
            "ops",
            (
                promql(
                    f"sum by (reason) (rate(airgrid_telemetry_rejected_total[{RATE}]))",
                    "{{reason}}",
                ),
            ),
            thresholds=(GREEN, ("orange", 1), ("red", 10)),
        ),
        timeseries_panel(
            "Reject ratio",
            "Rejected records as a share of all records handled.",
            "percentunit",
            (
                promql(
                    f"sum(rate(airgrid_telemetry_rejected_total[{RATE}])) / "
                    f"(sum(rate(airgrid_telemetry_rejected_total[{RATE}])) + "
                    f"sum(rate(airgrid_telemetry_records_total[{RATE}])))",
                    "rejected",
                ),
            ),
            thresholds=(GREEN, ("orange", 0.01), ("red", 0.05)),
        ),
        timeseries_panel(
            "Record to state lag",
            "From a record's event time to its drone state acknowledged by the broker "
            "(p50, p95, p99).",
            "s",
            tuple(
                promql(quantile(q, "airgrid_telemetry_record_to_state_seconds"), f"p{int(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ),
            thresholds=(GREEN, ("orange", 0.5), ("red", 2)),
        ),
        timeseries_panel(
            "Telemetry consumer lag",
            "Raw records on the broker not yet fetched by the telemetry group.",
            "none",
            (
                promql(
                    'sum by (topic) (airgrid_consumer_lag_records{group="airgrid-telemetry"})',
                    "{{topic}}",
                ),
            ),
            thresholds=(GREEN, ("orange", 1000), ("red", 10000)),
        ),
        timeseries_panel(
            "Consumer records by outcome",
            "Records handled per second by each consumer, by outcome.",
            "ops",
            (
                promql(
                    f"sum by (consumer, outcome) (rate(airgrid_consumer_records_total[{RATE}]))",
                    "{{consumer}} {{outcome}}",
                ),
            ),
        ),
        timeseries_panel(
            "Track points written",
            "Track history points written to the database per second (batched).",
            "ops",
            (promql(f"sum(rate(airgrid_telemetry_track_points_total[{RATE}]))", "points"),),
        ),
        timeseries_panel(
            "Drone alerts",
            "Drone alerts raised per interval: low battery, link lost, geofence breach, off route.",
            "none",
            (
                promql(
                    'sum by (kind) (increase(airgrid_telemetry_alerts_total{active="true"}'
                    f"[{RATE}]))",
                    "{{kind}}",
                ),
            ),
        ),
        timeseries_panel(
            "Inspection freshness by plan",
            "Per inspection plan: share of its due cells seen within its revisit interval "
            "(1 while the plan is outside its windows).",
            "percentunit",
            (
                promql(
                    "max by (plan, department) (airgrid_inspection_freshness_share)",
                    "{{plan}} ({{department}})",
                ),
            ),
        ),
        timeseries_panel(
            "SSE clients",
            "Department feed clients connected over Server-Sent Events, and clients dropped "
            "because they read too slowly.",
            "none",
            (
                promql("sum(airgrid_feed_sse_clients)", "connected"),
                promql(f"sum(increase(airgrid_feed_sse_dropped_total[{RATE}]))", "dropped"),
            ),
        ),
    ]
    return dashboard_json(
        "airgrid-telemetry",
        "airgrid / Telemetry pipeline",
        "Ingest rate, rejects by reason, record to state lag, consumer lag, feeds.",
        panels,
    )


def infrastructure() -> dict[str, Any]:
    job = '{job=~"airgrid-.*"}'
    panels: list[AnyPanel] = [
        timeseries_panel(
            "Scrape targets up",
            "Service instances Prometheus scrapes successfully, by job.",
            "none",
            (promql(f"sum by (job) ({UP})", "{{job}}"),),
            thresholds=(("red", None), ("green", 1)),
        ),
        timeseries_panel(
            "Consumer lag by group",
            "Records on the broker not yet fetched, by consumer group and topic.",
            "none",
            (
                promql(
                    "sum by (group, topic) (airgrid_consumer_lag_records)", "{{group}} {{topic}}"
                ),
            ),
            thresholds=(GREEN, ("orange", 1000), ("red", 10000)),
        ),
        timeseries_panel(
            "Outbox",
            "Outbox backlog by service and rows published per second.",
            "none",
            (
                promql("sum by (service) (airgrid_outbox_backlog_records)", "{{service}} backlog"),
                promql(
                    f"sum by (service) (rate(airgrid_outbox_published_total[{RATE}]))",
                    "{{service}} published/s",
                ),
            ),
            thresholds=(GREEN, ("orange", 100), ("red", 1000)),
        ),
        timeseries_panel(
            "Database pool",
            "Connections in use and idle across the services' pools, against the pool size.",
            "none",
            (
                promql("sum by (job, state) (airgrid_db_pool_connections)", "{{job}} {{state}}"),
                promql("sum by (job) (airgrid_db_pool_size_connections)", "{{job}} size"),
            ),
        ),
        timeseries_panel(
            "HTTP requests",
            "Requests per second by service and status class.",
            "reqps",
            (
                promql(
                    f"sum by (service, status) (rate(airgrid_http_requests_total[{RATE}]))",
                    "{{service}} {{status}}",
                ),
            ),
        ),
        timeseries_panel(
            "HTTP latency p95",
            "95th percentile request time by service.",
            "s",
            (
                promql(
                    quantile(0.95, "airgrid_http_request_duration_seconds", "service"),
                    "{{service}}",
                ),
            ),
            thresholds=(GREEN, ("orange", 0.25), ("red", 1)),
        ),
        timeseries_panel(
            "Process CPU",
            "CPU seconds per second used by each service process.",
            "percentunit",
            (promql(f"sum by (job) (rate(process_cpu_seconds_total{job}[{RATE}]))", "{{job}}"),),
            thresholds=(GREEN, ("orange", 0.8), ("red", 0.95)),
        ),
        timeseries_panel(
            "Process memory",
            "Resident memory of each service process.",
            "bytes",
            (promql(f"sum by (job) (process_resident_memory_bytes{job})", "{{job}}"),),
            thresholds=(GREEN, ("orange", 400e6), ("red", 480e6)),
        ),
        timeseries_panel(
            "Open file descriptors",
            "Open file descriptors per process (sockets included), against the limit.",
            "none",
            (
                promql(f"sum by (job) (process_open_fds{job})", "{{job}} open"),
                promql(f"min by (job) (process_max_fds{job})", "{{job}} limit"),
            ),
        ),
    ]
    return dashboard_json(
        "airgrid-infrastructure",
        "airgrid / Infrastructure",
        "Kafka consumer lag, outbox, database pool, HTTP and process resources.",
        panels,
    )


DASHBOARDS = {
    "operations.json": operations,
    "dispatch.json": dispatch,
    "telemetry.json": telemetry,
    "department.json": department,
    "infrastructure.json": infrastructure,
    "operator-map.json": operator_map,
}
