"""The accelerated twin's simulated clock: one process, no broker, no database.

Each step of the clock (STEP_S, and also at every incident's acceptance instant):

1. the faults due are injected and the fleet's physics advances to the step's time;
2. the telemetry due (5 Hz airborne, 0.5 Hz docked, and at once on a mode change) is folded
   into drone states by the telemetry service's own fold and fed to the core as drone views,
   as the dispatch worker feeds it from `airgrid.drone.state`;
3. the incidents accepted by then are fed to the core, as the worker feeds it from
   `airgrid.incidents`;
4. once per dispatch tick: the core's clock tick (SLA alerts, patrols), the queue re-tried
   after an idle drone moved, and the coverage keeper's pass (gauge, patrol budget,
   rebalancing), as the worker's clock does;
5. the cameras look at the ground truth and their detections are merged into cases
   (`inspection.py`), which only watches: nothing of it reaches the core.

The core's decisions go back at once: its drone orders become the commands the worker would
publish, applied to the fleet; its assignments, queueing, links and mission stages are fed
to the same `Outcomes` bookkeeping the live SLA report reads from Kafka.

Deterministic: the same seed, options and reference zone give the same decisions and report.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from airgrid.config import Settings
from airgrid.reference import ReferenceData
from airgrid.sim.faults import NEST_OFFLINE, FaultEvent, fault_schedule, weather_of
from airgrid.sim.fleet import FIRST_REPORT_SPREAD_MS, Fleet
from airgrid.sim.load import LoadModel, ScheduledIncident
from airgrid.sim.outcomes import Outcomes
from airgrid.sim.physics import SimDrone
from airgrid.sim.start_state import MID_OPERATION, START_STATES, PastLoad, mid_operation
from airgrid.v1 import dispatch_pb2, drone_state_pb2, mission_pb2, telemetry_pb2
from entrypoints.fast_twin.inspection import InspectionTrack
from entrypoints.fast_twin.world import DispatchSide, dispatch_side, nests_offline
from services.dispatch import core_feed
from services.dispatch.core_feed import drone_view
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneOrder,
    IncidentRequest,
    Linked,
    Preempted,
    Queued,
    Redispatched,
    SlaAlert,
    StageReached,
)
from services.dispatch.outbox_records import STAGE_PROTO, add_assignments, command_of
from services.telemetry.domain.state import apply as fold_state

# Seconds per step of the simulated clock.
STEP_S = 1.0
# The local time zone of the reference zone (Wuhan), in which --start-hour is read.
ZONE_TZ = timezone(timedelta(hours=8))
# The simulated calendar day: within the reference zone's temporary no-fly window, so the
# zones active in a run are those of a live run of this year.
SIM_DAY = (2026, 6, 1)
COVERAGE_EVERY_S = 5.0  # the live report samples GET /v1/coverage this often
# How often the patrols' freshness view is rebuilt: stale by seconds against revisit
# intervals of 20 minutes and more, and the rebuild weighs every due cell.
VIEW_EVERY_MS = 10_000


@dataclass(frozen=True)
class FastRequest:
    """One accelerated run: the live twin's options plus its length in simulated time."""

    profile: str = "nominal"
    load_s: float = 3600.0
    seed: int = 7
    rate_per_min: float | None = None
    faults: str = "none"
    start_hour: float = 10.0
    start_state: str = "docked"
    nests_offline: tuple[str, ...] = ()
    max_drain_s: float | None = None  # default: the SLA plus a minute, as the live report
    step_s: float = STEP_S
    start_ms: int | None = None  # default: SIM_DAY at start_hour, zone time

    def epoch_ms(self) -> int:
        if self.start_ms is not None:
            return self.start_ms
        day = datetime(*SIM_DAY, tzinfo=ZONE_TZ)
        return int((day + timedelta(hours=self.start_hour)).astimezone(UTC).timestamp() * 1000)


@dataclass
class Assignment:
    """An incident and the drones the core assigned to it, in order (none when linked to
    another report of the same event, or never served)."""

    incident_id: str
    point: tuple[float, float]
    accepted_ms: int
    drones: tuple[str, ...] = ()


@dataclass
class FastRun:
    """What one run leaves: the outcomes the report summarises and the decisions' trail."""

    request: FastRequest
    started_ms: int
    ended_ms: int = 0
    outcomes: Outcomes = field(default_factory=Outcomes)
    # Per posted incident, in posting order.
    assignments: list[Assignment] = field(default_factory=list)
    coverage: list[tuple[float, float, int]] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)  # count by kind
    sla_alerts: int = 0
    commands_applied: int = 0
    commands_ignored: int = 0
    faults_injected: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    telemetry_records: int = 0
    telemetry_repeats: int = 0  # idle drones' unchanged reports, which change nothing
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0  # the process's CPU time: the figure on a shared machine
    steps: int = 0
    inspection: InspectionTrack | None = None
    """Ground truth, detections, cases, recall and freshness (`inspection.py`)."""

    @property
    def simulated_s(self) -> float:
        return (self.ended_ms - self.started_ms) / 1000.0


class FastTwin:
    """The fleet, the load and the dispatch side, stepped together on the simulated clock."""

    def __init__(
        self,
        reference: ReferenceData,
        settings: Settings,
        request: FastRequest,
        *,
        skip_repeats: bool = True,
    ) -> None:
        """skip_repeats: leave out the core calls that cannot change it (an idle drone's
        report equal to its last, while nothing waits); False feeds every report."""
        if request.start_state not in START_STATES:
            raise ValueError(f"start_state is one of {', '.join(START_STATES)}")
        if request.step_s <= 0:
            raise ValueError("the clock step must be positive")
        self.settings = settings
        self.request = request
        self.reference = nests_offline(reference, request.nests_offline)
        self.now_ms = request.epoch_ms()
        self.run = FastRun(request, started_ms=self.now_ms)
        self.load = LoadModel(
            self.reference,
            profile=request.profile,
            rate_per_min=request.rate_per_min,
            seed=request.seed,
            start_hour=request.start_hour,
        )
        weather = weather_of(request.seed)

        def mid_operation_start(drones: dict[str, SimDrone]) -> None:
            load = self.load
            past = PastLoad(load.rate_at, load.scene_point, load.on_scene_seconds, load.allowed)
            mid_operation(drones, past, weather=weather, seed=request.seed)

        # First reports are due at the start: the core knows the fleet before any incident,
        # as the live load waits until the services know every drone.
        self.fleet = Fleet(
            self.reference,
            start_ms=self.now_ms - FIRST_REPORT_SPREAD_MS,
            weather=weather,
            initial_state=mid_operation_start if request.start_state == MID_OPERATION else None,
        )
        self.down = set(request.nests_offline)
        for nest_id in sorted(self.down):
            self.fleet.faults[(NEST_OFFLINE, nest_id)] = 2**62  # for the whole run
        self.faults = deque(
            e
            for e in fault_schedule(
                level=request.faults,
                duration_s=request.load_s + self._max_drain_s(),
                drone_ids=list(self.fleet.drones),
                nest_holds=self.fleet.wind_hold,
                seed=request.seed,
            )
            if not (e.kind == NEST_OFFLINE and e.target in self.down)
        )
        self.side: DispatchSide
        self.side, decisions = dispatch_side(self.reference, settings)
        self.states: dict[str, drone_state_pb2.DroneState] = {}
        self.skip_repeats = skip_repeats
        self._last_report: dict[str, tuple[object, ...]] = {}
        self.idle_drone_moved = False
        self.last_tick_ms = self.now_ms
        self.last_view_ms = self.now_ms - VIEW_EVERY_MS
        self.last_coverage_ms: int | None = None
        self.incident_seq = 0
        self._by_id: dict[str, Assignment] = {}
        self._decide(decisions)
        self.inspection = self.run.inspection = InspectionTrack(
            self.reference,
            request.seed,
            self.now_ms,
            self.now_ms + round(request.load_s * 1000),
            self.side.freshness,
        )

    def _max_drain_s(self) -> float:
        drain = self.request.max_drain_s
        return drain if drain is not None else self.settings.sla_seconds + 60.0

    # -- the loop ---------------------------------------------------------------------------

    def run_all(self, progress: Callable[[float, float], None] | None = None) -> FastRun:
        """Load for load_s simulated seconds, then drain; `progress(simulated s, wall s)` is
        called every simulated hour."""
        began = time.perf_counter()
        cpu = time.process_time()
        start = self.now_ms
        load_end = start + round(self.request.load_s * 1000)
        step_ms = round(self.request.step_s * 1000)
        events = self.load.events()
        upcoming: ScheduledIncident | None = next(events, None)
        self._step(0.0)  # the fleet's first reports
        next_hour = start + 3_600_000
        while True:
            due = start + round(upcoming.offset_s * 1000) if upcoming is not None else math.inf
            if due >= load_end:
                upcoming, due = None, math.inf
            target = min(self.now_ms + step_ms, due)
            self._step((target - self.now_ms) / 1000.0)
            while upcoming is not None and start + round(upcoming.offset_s * 1000) <= self.now_ms:
                self._post(upcoming, start + round(upcoming.offset_s * 1000))
                upcoming = next(events, None)
            if progress is not None and self.now_ms >= next_hour:
                next_hour += 3_600_000
                progress((self.now_ms - start) / 1000.0, time.perf_counter() - began)
            if self.now_ms >= load_end and self._drained(load_end):
                break
        self.run.ended_ms = self.now_ms
        self.run.wall_seconds = time.perf_counter() - began
        self.run.cpu_seconds = time.process_time() - cpu
        return self.run

    def _drained(self, load_end: int) -> bool:
        """As the live report: every incident on scene (after 5 s of drain), or the SLA past
        for the last open one, or the most drain allowed."""
        drained_s = (self.now_ms - load_end) / 1000.0
        if drained_s >= self._max_drain_s():
            return True
        if drained_s <= 5.0:
            return False
        outcomes = self.run.outcomes
        sla_ms = self.settings.sla_seconds * 1000
        return not any(
            not outcomes.on_scene_at(o) and self.now_ms - o.accepted_ms <= sla_ms
            for o in outcomes.posted()
        )

    def _step(self, dt_s: float) -> None:
        self.now_ms += round(dt_s * 1000)
        now = self.now_ms
        self.run.steps += 1
        elapsed_s = (now - self.run.started_ms) / 1000.0
        while self.faults and self.faults[0].offset_s <= elapsed_s:
            self._inject(self.faults.popleft(), now)
        side = self.side
        core = side.core
        waiting: bool | None = None  # whether an incident waits, while nothing changed it
        for record in self.fleet.tick(now, dt_s):
            drone_id = record.drone_id
            self.run.telemetry_records += 1
            if self.skip_repeats and drone_id not in core.busy:
                same = _report_key(record)
                if self._last_report.get(drone_id) == same:
                    if waiting is None:
                        waiting = any(e.open_slots for e in core.incidents.values())
                    if not waiting:
                        # An idle drone reporting what it reported last, with nothing
                        # waiting: the core's upsert would change nothing (same view, same
                        # index entry) and decide nothing.
                        self.run.telemetry_repeats += 1
                        self.idle_drone_moved = True
                        continue
                self._last_report[drone_id] = same
            else:
                self._last_report.pop(drone_id, None)
            state = fold_state(self.states.get(drone_id), record, now)
            self.states[drone_id] = state
            if side.freshness is not None:
                side.freshness.observe(state)
            view = drone_view(side.specs[drone_id], state)
            self._decide(core.upsert_drone(view, record.event_time_ms))
            waiting = None
            if drone_id not in core.busy:
                self.idle_drone_moved = True
        tick_ms = round(self.settings.dispatch_tick_seconds * 1000)
        if now - self.last_tick_ms >= tick_ms:
            self.last_tick_ms = now
            if side.freshness is not None and now - self.last_view_ms >= VIEW_EVERY_MS:
                self.last_view_ms = now
                side.core.set_freshness(side.freshness.view(now))
            moved, self.idle_drone_moved = self.idle_drone_moved, False
            self._decide(core_feed.tick(side.core, now, idle_drone_moved=moved))
            self._decide(side.coverage.rebalance(side.core, now))
            self._sample_coverage(now)
        self.inspection.step(self.fleet, now)

    def _inject(self, event: FaultEvent, now: int) -> None:
        self.fleet.inject(event, now)
        self.run.faults_injected += 1
        self.run.faults_by_kind[event.kind] = self.run.faults_by_kind.get(event.kind, 0) + 1

    def _sample_coverage(self, now: int) -> None:
        last = self.last_coverage_ms
        if last is not None and now - last < COVERAGE_EVERY_S * 1000:
            return
        snapshot = self.side.coverage.last
        if snapshot is None:
            return
        self.last_coverage_ms = now
        at_s = round((now - self.run.started_ms) / 1000.0, 1)
        self.run.coverage.append((at_s, snapshot.ratio, snapshot.reachers))

    def _post(self, scheduled: ScheduledIncident, accepted_ms: int) -> None:
        """The incident accepted as POST /v1/incidents would accept it, and fed to the core."""
        body = scheduled.incident.body
        self.incident_seq += 1
        incident_id = f"inc_{self.request.seed}_{self.incident_seq:07d}"
        lon, lat = scheduled.incident.point
        request = IncidentRequest(
            id=incident_id,
            priority=int(body["priority"]),
            lon=lon,
            lat=lat,
            required_capabilities=frozenset(body["required_capabilities"]),
            drones_needed=int(body["drones_needed"]),
            on_scene_seconds=int(body["on_scene_seconds"]),
            accepted_ms=accepted_ms,
            type=str(body["type"]),
            department=scheduled.incident.department,
        )
        self.run.outcomes.on_posted(
            incident_id,
            department=request.department,
            priority=request.priority,
            type=request.type,
            at_ms=accepted_ms,
        )
        assignment = Assignment(incident_id, (lon, lat), accepted_ms)
        self.run.assignments.append(assignment)
        self._by_id[incident_id] = assignment
        self._decide(self.side.core.accept(request, accepted_ms))

    # -- decisions ----------------------------------------------------------------------------

    def _decide(self, decisions: list[Decision]) -> None:
        """What the worker stores and publishes, applied here: commands to the fleet, the
        rest to the outcomes."""
        for decision in decisions:
            kind = type(decision).__name__.lower()
            self.run.decisions[kind] = self.run.decisions.get(kind, 0) + 1
            if isinstance(decision, DroneOrder):
                self._command(decision)
            elif isinstance(decision, StageReached):
                self.run.outcomes.on_mission(
                    mission_pb2.MissionEvent(
                        mission_id=decision.mission_id,
                        incident_id=decision.incident_id,
                        drone_id=decision.drone_id,
                        stage=STAGE_PROTO[decision.stage],
                        event_time_ms=self.now_ms,
                        reason=decision.reason,
                    )
                )
            elif isinstance(decision, SlaAlert):
                self.run.sla_alerts += 1
            elif isinstance(decision, Assigned | Queued | Preempted | Redispatched | Linked):
                self._outcome(decision)

    def _outcome(self, decision: Assigned | Queued | Preempted | Redispatched | Linked) -> None:
        entry = self._by_id.get(decision.incident_id)
        if entry is None:
            return  # a patrol: the report counts the incidents posted
        message = dispatch_pb2.DispatchDecision(
            incident_id=decision.incident_id,
            incident_accepted_time_ms=entry.accepted_ms,
            decided_time_ms=self.now_ms,
        )
        if isinstance(decision, Assigned):
            message.kind = dispatch_pb2.DECISION_KIND_ASSIGNED
            add_assignments(message, decision)
            entry.drones += tuple(a.drone_id for a in decision.assignments)
        elif isinstance(decision, Queued):
            message.kind = dispatch_pb2.DECISION_KIND_QUEUED
            message.reason = decision.reason
        elif isinstance(decision, Linked):
            message.kind = dispatch_pb2.DECISION_KIND_LINKED
            message.reason = f"{decision.primary_id}: {decision.reason}"
        elif isinstance(decision, Preempted):
            message.kind = dispatch_pb2.DECISION_KIND_PREEMPTED
        else:
            message.kind = dispatch_pb2.DECISION_KIND_REDISPATCHED
            message.reason = f"drone {decision.drone_id}: {decision.reason}"  # as the worker
        self.run.outcomes.on_decision(message)

    def _command(self, order: DroneOrder) -> None:
        """The drone command the worker publishes for an order, flown by the fleet."""
        spec = self.side.specs.get(order.drone_id)
        command = command_of(order, spec, issued_ms=self.now_ms)
        if self.fleet.apply(command):
            self.run.commands_applied += 1
        else:
            self.run.commands_ignored += 1


def _report_key(record: telemetry_pb2.Telemetry) -> tuple[object, ...]:
    """What of a report reaches the drone view (the time and sequence number do not)."""
    return (
        record.lon, record.lat, record.alt_m, record.battery_pct, record.flight_mode,
        record.mission_id, tuple(record.faults), record.nest_id,
    )  # fmt: skip


def run_fast(
    reference: ReferenceData,
    settings: Settings,
    request: FastRequest,
    progress: Callable[[float, float], None] | None = None,
    *,
    skip_repeats: bool = True,
) -> FastRun:
    """One accelerated run to its end."""
    return FastTwin(reference, settings, request, skip_repeats=skip_repeats).run_all(progress)
