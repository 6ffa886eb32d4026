"""Every collector of the dispatch service (a leaf: adapters import it, it imports none):
time to scene, outcomes and SLA alerts by department and priority, and
fleet and queue gauges read from the dispatch core at scrape time.

Labels are bounded: department codes, priorities 1-4, outcome and status names; never an
incident, mission or drone id."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from airgrid.topics import DEPARTMENT_CODES
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    IncidentRequest,
    Linked,
    MissionStage,
    Preempted,
    Queued,
    Redispatched,
    SlaAlert,
    SlaAlertKind,
    StageReached,
)

PRIORITIES = ("1", "2", "3", "4")
OUTCOMES = ("assigned", "queued", "linked", "preempted", "redispatched")
FLEET_STATUSES = ("docked", "airborne", "on_mission", "unavailable", "out_of_service")

# Classic buckets with a boundary exactly at 120 s (the median target) and 300 s (the SLA).
TIME_TO_SCENE_BUCKETS = (30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0)

TIME_TO_SCENE = Histogram(
    "airgrid_time_to_scene_seconds",
    "From an incident accepted to a drone on scene (SLA 300 s), by department and priority.",
    ["department", "priority"],
    buckets=TIME_TO_SCENE_BUCKETS,
)
OUTCOMES_TOTAL = Counter(
    "airgrid_dispatch_outcomes_total",
    "Dispatch outcomes for incidents, by department, priority and outcome.",
    ["department", "priority", "outcome"],
)
SLA_ALERTS = Counter(
    "airgrid_sla_alerts_total",
    "SLA alerts raised (at_risk, breached), by department and priority.",
    ["department", "priority", "kind"],
)
OUT_OF_AREA = Counter(
    "airgrid_dispatch_out_of_area_total",
    "Registry or state data the dispatch core kept out because it lies outside the zone, by "
    "kind (nest, geofence, drone); each is also logged with its id and position.",
    ["kind"],
)


# api.py
INCIDENTS_ACCEPTED = Counter(
    "airgrid_incidents_accepted_total",
    "Incidents accepted over HTTP, by department and priority.",
    ["department", "priority"],
)

# stream.py
DECISION_SECONDS = Histogram(
    "airgrid_dispatch_decision_seconds",
    "From an incident consumed to its decision committed.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
ACCEPT_TO_DECISION_SECONDS = Histogram(
    "airgrid_dispatch_accept_to_decision_seconds",
    "From an incident accepted over HTTP to its first decision committed.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DECISIONS = Counter(
    "airgrid_dispatch_decisions_total", "Decisions of the dispatch core, by kind.", ["kind"]
)
MISSION_STAGES = Counter(
    "airgrid_mission_stages_total", "Mission stages reached, by stage.", ["stage"]
)

# coverage.py
COVERAGE_RATIO = Gauge(
    "airgrid_coverage_ratio",
    "Share of the zone's area that available drones reach within the SLA (0..1).",
)
COVERAGE_HOLES = Gauge(
    "airgrid_coverage_holes_cells",
    "Cells of the zone that no available drone reaches within the SLA (the map's holes).",
)
COVERAGE_DRONES = Gauge(
    "airgrid_coverage_available_drones", "Drones that could take off for a scene now."
)
REBALANCE_MOVES = Counter(
    "airgrid_rebalance_moves_total", "Idle drones sent to another nest to close coverage holes."
)
PATROL_BUDGET = Gauge(
    "airgrid_patrol_budget", "Routine-inspection patrols that may start now (0: fleet stretched)."
)

# supervisor.py
RESTARTS = Counter(
    "airgrid_dispatch_worker_restarts_total",
    "Runs of the dispatch worker that ended other than by shutdown and were started again, "
    "by cause (broker, database, writer_lock, stray_cancel, ended, error).",
    ["cause"],
)
WRITING = Gauge(
    "airgrid_dispatch_worker_writing",
    "1 while this process's dispatch worker is the zone's writer and consumes incidents.",
)


def _labels(request: IncidentRequest) -> tuple[str, str] | None:
    """Department and priority of a department's incident; None for patrols and strangers."""
    if request.patrol_route or request.department not in DEPARTMENT_CODES:
        return None
    return request.department, str(min(max(request.priority, 1), 4))


def _outcome(decision: Decision) -> str | None:
    if isinstance(decision, Assigned):
        return "assigned"
    if isinstance(decision, Queued):
        return "queued"
    if isinstance(decision, Linked):
        return "linked"
    if isinstance(decision, Preempted):
        return "preempted"
    if isinstance(decision, Redispatched):
        return "redispatched"
    return None


def record_decisions(decisions: Iterable[Decision], core: DispatchCore) -> None:
    """Count committed decisions; the core supplies each incident's department and priority."""
    for decision in decisions:
        incident_id = getattr(decision, "incident_id", None)
        slots = core.incidents.get(incident_id) if incident_id else None
        labels = _labels(slots.request) if slots is not None else None
        if labels is None:
            continue
        outcome = _outcome(decision)
        if outcome is not None:
            OUTCOMES_TOTAL.labels(*labels, outcome).inc()
        elif isinstance(decision, SlaAlert):
            SLA_ALERTS.labels(*labels, decision.kind.value).inc()
        elif isinstance(decision, StageReached) and decision.stage == MissionStage.ON_SCENE:
            elapsed_ms = decision.at_ms - slots.request.accepted_ms  # type: ignore[union-attr]
            TIME_TO_SCENE.labels(*labels).observe(max(0.0, elapsed_ms / 1000))


def initialise_labels() -> None:
    """Every bounded label combination exists from start-up, at zero."""
    for department in DEPARTMENT_CODES:
        for priority in PRIORITIES:
            INCIDENTS_ACCEPTED.labels(department, priority)
            TIME_TO_SCENE.labels(department, priority)
            for outcome in OUTCOMES:
                OUTCOMES_TOTAL.labels(department, priority, outcome)
            for alert in SlaAlertKind:
                SLA_ALERTS.labels(department, priority, alert.value)
    for kind in (*OUTCOMES, "slaalert", "patrolstarted"):
        DECISIONS.labels(kind)
    for stage in MissionStage:
        MISSION_STAGES.labels(stage.value)


class HasCore(Protocol):
    core: DispatchCore


class CoreCollector(Collector):
    """Fleet by status, queued incidents and active missions, read from the live core."""

    def __init__(self, worker: HasCore) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        core = self.worker.core
        fleet = GaugeMetricFamily(
            "airgrid_fleet_drones",
            "Drones known to dispatch, by status "
            "(docked, airborne, on_mission, unavailable, out_of_service).",
            labels=["status"],
        )
        counts = dict.fromkeys(FLEET_STATUSES, 0)
        for drone in list(core.drones.values()):
            if not drone.active:
                status = "out_of_service"
            elif drone.id in core.busy:
                status = "on_mission"
            elif not drone.link_ok or drone.faults or not drone.has_position:
                status = "unavailable"
            else:
                status = "airborne" if drone.airborne else "docked"
            counts[status] += 1
        for status, count in counts.items():
            fleet.add_metric([status], count)
        yield fleet

        queued = GaugeMetricFamily(
            "airgrid_dispatch_queued_incidents",
            "Incidents waiting for a drone, by priority (patrols excluded).",
            labels=["priority"],
        )
        waiting = dict.fromkeys(PRIORITIES, 0)
        # A copy taken in one step: the core may be changing in the worker's thread.
        for entry in list(core.incidents.values()):
            if not entry.open_slots:
                continue
            labels = _labels(entry.request)
            if labels is not None:
                waiting[labels[1]] += 1
        for priority, count in waiting.items():
            queued.add_metric([priority], count)
        yield queued

        missions = GaugeMetricFamily(
            "airgrid_dispatch_active_missions", "Missions in flight (assigned to returning)."
        )
        missions.add_metric([], len(core.missions))
        yield missions


_WATCHED: list[CoreCollector] = []


def watch_core(worker: HasCore) -> None:
    """Export the gauges of this process's dispatch worker (the latest one built)."""
    for collector in _WATCHED:
        REGISTRY.unregister(collector)
    _WATCHED[:] = [CoreCollector(worker)]
    REGISTRY.register(_WATCHED[0])
    initialise_labels()
