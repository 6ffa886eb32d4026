"""Hypothesis properties of the dispatch core on random fleets and random event sequences.

A scenario is a fleet and a list of operations: incidents (some of them duplicate reports of
another department), drone-state updates, failures, cancellations, missions ending and clock
ticks. A referee replays the core's decisions the way the worker stores them and checks, after
every operation:

- no drone holds two missions, and the decisions agree with the core's own state;
- every assignment is feasible (battery for the trip, the time on scene and the return to the
  nearest nest with the reserve; the capabilities; a healthy drone);
- every incident is assigned, queued with a reason, linked as a duplicate, cancelled or done:
  each of its slots is covered by an active mission, waits in the queue, or was flown;
- priority order: no incident gets a drone while a more urgent one waits that the same drone
  could serve;
- the same inputs give the same outputs, and a core rebuilt from what the database holds
  (a restart) carries on with the same missions and the same queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airgrid.v1.telemetry_pb2 import FlightMode
from services.dispatch.domain.core import CoreSettings, DispatchCore
from services.dispatch.domain.eta import estimate
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneView,
    IncidentRequest,
    Linked,
    Mission,
    MissionStage,
    NestView,
    Preempted,
    Queued,
    Redispatched,
    StageReached,
)
from services.dispatch.domain.nofly import NoFlyZone

LON, LAT = 114.40, 30.48
NESTS = (
    NestView("nest-a", LON, LAT),
    NestView("nest-b", LON + 0.06, LAT + 0.03),
    NestView("nest-c", LON - 0.04, LAT + 0.05),
)
# A no-fly box between the nests, so that some trips detour.
ZONE = NoFlyZone(
    "nfz-1",
    ((LON + 0.01, LAT + 0.005), (LON + 0.03, LAT + 0.005), (LON + 0.03, LAT + 0.02),
     (LON + 0.01, LAT + 0.02)),
)  # fmt: skip
CAPABILITIES = ("visual", "thermal", "loudspeaker")
DEPARTMENTS = ("fire", "police", "ems")
TYPES = ("fire", "flood", "traffic")
TERMINAL = (MissionStage.COMPLETED, MissionStage.CANCELLED, MissionStage.FAILED)

# -- strategies -----------------------------------------------------------------------------

offsets = st.tuples(st.floats(-0.05, 0.08), st.floats(-0.03, 0.07))
caps = st.frozensets(st.sampled_from(CAPABILITIES), min_size=1, max_size=2)


@st.composite
def fleets(draw: st.DrawFn) -> list[DroneView]:
    count = draw(st.integers(1, 12))
    drones = []
    for i in range(count):
        nest = draw(st.sampled_from(NESTS))
        at_nest = draw(st.booleans())
        dx, dy = (0.0, 0.0) if at_nest else draw(offsets)
        drones.append(
            DroneView(
                id=f"drone-{i:02d}",
                home_nest=nest.id,
                capabilities=draw(caps),
                cruise_speed_mps=draw(st.sampled_from([12.0, 15.0, 18.0])),
                climb_rate_mps=5.0,
                cruise_altitude_m=120.0,
                launch_delay_s=draw(st.sampled_from([10.0, 20.0])),
                endurance_s=draw(st.sampled_from([1800.0, 2400.0])),
                lon=nest.lon + dx,
                lat=nest.lat + dy,
                battery_pct=draw(st.floats(10.0, 100.0)),
                airborne=not at_nest,
                link_ok=draw(st.sampled_from([True, True, True, False])),
            )
        )
    return drones


incident_ops = st.tuples(
    st.just("incident"),
    st.integers(1, 4),  # priority
    offsets,
    st.frozensets(st.sampled_from(CAPABILITIES), max_size=1),
    st.integers(1, 3),  # drones needed
    st.sampled_from(DEPARTMENTS),
    st.sampled_from(TYPES),
    st.sampled_from([60, 300, 900]),  # on scene seconds
)
state_ops = st.tuples(
    st.just("state"),
    st.integers(0, 11),
    offsets,
    st.floats(5.0, 100.0),
    st.booleans(),  # airborne
)
# A telemetry report of an idle or busy drone in flight: it moved, its battery drained a bit.
move_ops = st.tuples(st.just("move"), st.integers(0, 11), offsets, st.floats(0.0, 3.0))
# A busy drone reports progress on its mission: flying out, at the scene, heading home (where
# it may be retasked), or docked again; its battery drained a little or a lot.
progress_ops = st.tuples(
    st.just("progress"),
    st.integers(0, 50),
    st.sampled_from(["out", "scene", "home", "docked"]),
    offsets,
    st.floats(0.0, 60.0),
)
ops = st.lists(
    st.one_of(
        incident_ops,
        incident_ops,
        state_ops,
        move_ops,
        progress_ops,
        progress_ops,
        st.tuples(
            st.just("fail"), st.integers(0, 50), st.sampled_from(["link", "fault", "battery"])
        ),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("end"), st.integers(0, 50)),
        st.tuples(st.just("tick"), st.integers(1, 400)),
        st.tuples(
            st.just("restart"),
        ),
    ),
    min_size=1,
    max_size=40,
)


# -- the referee ----------------------------------------------------------------------------


@dataclass
class Referee:
    """What the worker would have stored from the decisions, and the checks on it."""

    requests: dict[str, IncidentRequest] = field(default_factory=dict)
    active: dict[str, Mission] = field(default_factory=dict)  # mission id -> mission
    flown: dict[str, set[int]] = field(default_factory=dict)  # slots whose mission completed
    waiting: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    linked: dict[str, str] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)

    def record(self, decisions: list[Decision], now: int) -> None:
        for d in decisions:
            if isinstance(d, Assigned):
                self.attempts[d.incident_id] = self.attempts.get(d.incident_id, 0) + 1
                for a in d.assignments:
                    assert a.mission_id not in self.active, "a mission id was used twice"
                    self.active[a.mission_id] = Mission(
                        a.mission_id, d.incident_id, a.drone_id, a.slot, MissionStage.ASSIGNED,
                        a.eta_seconds, now,
                    )  # fmt: skip
                    slots, reason = self.waiting.get(d.incident_id, ((), ""))
                    self.waiting[d.incident_id] = (tuple(s for s in slots if s != a.slot), reason)
            elif isinstance(d, Queued):
                assert d.reason, f"{d.incident_id} queued without a reason"
                self.waiting[d.incident_id] = (d.open_slots, d.reason)
            elif isinstance(d, Linked):
                assert d.reason
                self.linked[d.incident_id] = d.primary_id
            elif isinstance(d, StageReached):
                mission = self.active.get(d.mission_id)
                if mission is None:
                    continue
                mission.stage = d.stage
                if d.stage in TERMINAL:
                    del self.active[d.mission_id]
                    if d.stage == MissionStage.COMPLETED:
                        self.flown.setdefault(d.incident_id, set()).add(mission.slot)
            elif isinstance(d, Preempted | Redispatched):
                # The mission ends with its StageReached; the slot must be queued again or
                # given another drone in the same call, which check() verifies.
                assert d.reason

    def mission_ended(self, mission_id: str) -> None:
        mission = self.active.pop(mission_id)
        self.flown.setdefault(mission.incident_id, set()).add(mission.slot)

    def check(self, core: DispatchCore) -> None:
        # No drone on two missions, and the stored missions are the core's missions.
        drones = [m.drone_id for m in self.active.values()]
        assert len(drones) == len(set(drones)), "a drone holds two missions"
        assert {m: (x.drone_id, x.incident_id, x.slot) for m, x in self.active.items()} == {
            m: (x.drone_id, x.incident_id, x.slot) for m, x in core.missions.items()
        }
        assert core.busy == {m.drone_id: m.id for m in core.missions.values()}
        busy_slots = [(m.incident_id, m.slot) for m in self.active.values()]
        assert len(busy_slots) == len(set(busy_slots)), "two drones for one slot"
        # Every incident has an outcome; every slot is covered, waits with a reason, or flew.
        for incident_id, request in self.requests.items():
            if incident_id in self.cancelled or incident_id in self.linked:
                continue
            covered = {m.slot for m in self.active.values() if m.incident_id == incident_id}
            waits, reason = self.waiting.get(incident_id, ((), ""))
            flown = self.flown.get(incident_id, set())
            assert not (covered & set(waits)), f"{incident_id}: a slot both covered and queued"
            assert covered | set(waits) | flown == set(range(request.drones_needed)), (
                f"{incident_id}: a slot without an outcome"
            )
            assert not waits or reason, f"{incident_id} waits without a reason"
            entry = core.incidents.get(incident_id)
            open_slots = entry.open_slots if entry is not None else set()
            assert open_slots == set(waits), f"{incident_id}: the core and its decisions differ"


def is_feasible(core: DispatchCore, drone: DroneView, request: IncidentRequest) -> bool:
    """Independent of the core's planner: a straight line is never longer than the detour,
    so a drone that cannot make the straight trip cannot make the real one."""
    straight = estimate(drone, request, core.nests, reserve_pct=core.reserve_pct)
    return straight.feasible and core.estimate_for(drone, request).feasible


def healthy(drone: DroneView) -> bool:
    return drone.active and drone.link_ok and not drone.faults and drone.has_position


def check_assignments(core: DispatchCore, referee: Referee, decisions: list[Decision]) -> None:
    for d in decisions:
        if not isinstance(d, Assigned):
            continue
        request = referee.requests[d.incident_id]
        rank = core.incidents[d.incident_id].rank if d.incident_id in core.incidents else 9
        for a in d.assignments:
            drone = core.drones[a.drone_id]
            assert healthy(drone), f"{a.drone_id} assigned while unhealthy"
            assert request.required_capabilities <= drone.capabilities
            assert drone.battery_pct >= core.reserve_pct
            assert is_feasible(core, drone, request), f"{a.drone_id} cannot do {d.incident_id}"
            # Priority order: nothing more urgent still waits that this drone could serve.
            for entry in core.queued_incidents():
                if entry.rank < rank and entry.request.id != d.incident_id:
                    assert not is_feasible(core, drone, entry.request), (
                        f"{a.drone_id} went to {d.incident_id} (rank {rank}) while "
                        f"{entry.request.id} (rank {entry.rank}) waits for it"
                    )


# -- running a scenario ---------------------------------------------------------------------


def new_core(fleet: list[DroneView], with_zone: bool) -> DispatchCore:
    core = DispatchCore(settings=CoreSettings(reserve_pct=20.0), origin=(LON, LAT))
    if with_zone:
        core.upsert_zone(ZONE)
    for nest in NESTS:
        core.upsert_nest(nest)
    for drone in fleet:
        core.upsert_drone(drone, 0)
    return core


def restarted(
    core: DispatchCore, referee: Referee, with_zone: bool
) -> tuple[DispatchCore, list[Decision]]:
    """A new core restored from what the database holds, then fed the world again; the
    decisions that feeding makes count like any other (the worker stores them)."""
    live = [
        r for i, r in referee.requests.items()
        if i not in referee.cancelled and i not in referee.linked and i in core.incidents
    ]  # fmt: skip
    fresh = new_core([], with_zone)
    fresh.restore(
        incidents=live,
        missions=[replace(m) for m in referee.active.values()],
        attempts={i: n for i, n in referee.attempts.items()},
        links=dict(referee.linked),
        done_slots={i: set(s) for i, s in referee.flown.items()},
    )
    fresh.now_ms = core.now_ms
    decisions: list[Decision] = []
    for drone_id in sorted(core.drones):
        decisions += fresh.upsert_drone(core.drones[drone_id], core.now_ms)
    return fresh, decisions


def run(
    fleet: list[DroneView], operations: list[tuple[Any, ...]], with_zone: bool
) -> tuple[list[list[Decision]], DispatchCore]:
    core = new_core(fleet, with_zone)
    referee = Referee()
    now = 1_000
    log: list[list[Decision]] = []
    accepted: list[str] = []
    for n, op in enumerate(operations):
        now += 1_000
        kind = op[0]
        decisions: list[Decision] = []
        if kind == "incident":
            _, priority, (dx, dy), needs, needed, department, type_, on_scene = op
            request = IncidentRequest(
                id=f"inc-{n:03d}", priority=priority, lon=LON + dx, lat=LAT + dy,
                required_capabilities=needs, drones_needed=needed, on_scene_seconds=on_scene,
                accepted_ms=now, type=type_, department=department,
            )  # fmt: skip
            referee.requests[request.id] = request
            accepted.append(request.id)
            decisions = core.accept(request, now)
            outcome = [
                d for d in decisions
                if isinstance(d, Assigned | Queued | Linked) and d.incident_id == request.id
            ]  # fmt: skip
            assert outcome, f"{request.id} got no outcome"
        elif kind == "state" and fleet:
            _, i, (dx, dy), battery, airborne = op
            old = core.drones[fleet[i % len(fleet)].id]
            nest = next(x for x in NESTS if x.id == old.home_nest)
            lon, lat = (nest.lon + dx, nest.lat + dy) if airborne else (nest.lon, nest.lat)
            moved = replace(
                old, lon=lon, lat=lat, battery_pct=battery, airborne=airborne, link_ok=True,
                faults=(),
            )  # fmt: skip
            decisions = core.upsert_drone(moved, now)
        elif kind == "move" and fleet:
            _, i, (dx, dy), drained = op
            old = core.drones[fleet[i % len(fleet)].id]
            if old.airborne:
                moved = replace(
                    old, lon=LON + dx, lat=LAT + dy, battery_pct=max(0.0, old.battery_pct - drained)
                )
                decisions = core.upsert_drone(moved, now)
        elif kind == "progress" and core.missions:
            _, k, phase, (dx, dy), drained = op
            mission = core.missions[sorted(core.missions)[k % len(core.missions)]]
            old = core.drones[mission.drone_id]
            scene = referee.requests.get(mission.incident_id)
            nest = next(x for x in NESTS if x.id == old.home_nest)
            lon, lat = LON + dx, LAT + dy
            if phase == "scene" and scene is not None:
                lon, lat = scene.lon, scene.lat
            elif phase == "docked":
                lon, lat = nest.lon, nest.lat
            mode = {
                "out": FlightMode.FLIGHT_MODE_CRUISING,
                "scene": FlightMode.FLIGHT_MODE_HOVERING,
                "home": FlightMode.FLIGHT_MODE_RETURNING,
                "docked": FlightMode.FLIGHT_MODE_DOCKED,
            }[phase]
            reported = replace(
                old, lon=lon, lat=lat, airborne=phase != "docked", mode=mode,
                reported_mission=mission.id,
                battery_pct=max(core.reserve_pct, old.battery_pct - drained),
            )  # fmt: skip
            decisions = core.upsert_drone(reported, now)
        elif kind == "fail" and core.missions:
            _, k, how = op
            mission = core.missions[sorted(core.missions)[k % len(core.missions)]]
            old = core.drones[mission.drone_id]
            broken = {
                "link": replace(old, link_ok=False),
                "fault": replace(old, faults=("motor",)),
                "battery": replace(old, battery_pct=5.0),
            }[how]
            decisions = core.upsert_drone(broken, now)
        elif kind == "cancel" and accepted:
            incident_id = accepted[op[1] % len(accepted)]
            referee.cancelled.add(incident_id)
            decisions = core.cancel(incident_id, now)
        elif kind == "end" and core.missions:
            mission_id = sorted(core.missions)[op[1] % len(core.missions)]
            referee.mission_ended(mission_id)
            decisions = core.mission_ended(mission_id, now)
        elif kind == "tick":
            now += op[1] * 1_000
            decisions = core.tick(now)
        elif kind == "restart":
            core, decisions = restarted(core, referee, with_zone)
            decisions += core.drain_queue()
            # The worker reports every incident still waiting once it is back.
            decisions += [
                Queued(e.request.id, tuple(sorted(e.open_slots)), e.reason or "waiting")
                for e in core.queued_incidents()
            ]
        referee.record(decisions, now)
        check_assignments(core, referee, decisions)
        referee.check(core)
        log.append(decisions)
    return log, core


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(fleets(), ops, st.booleans())
def test_invariants_hold_after_every_operation(
    fleet: list[DroneView], operations: list[tuple[Any, ...]], with_zone: bool
) -> None:
    run(fleet, operations, with_zone)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets(), ops, st.booleans())
def test_same_inputs_give_the_same_outputs(
    fleet: list[DroneView], operations: list[tuple[Any, ...]], with_zone: bool
) -> None:
    first, a = run(fleet, operations, with_zone)
    second, b = run(fleet, operations, with_zone)
    assert first == second
    assert {m.id: m.drone_id for m in a.missions.values()} == {
        m.id: m.drone_id for m in b.missions.values()
    }


def test_a_queued_incident_keeps_its_rank_over_a_later_lower_one() -> None:
    """A drone that becomes feasible by moving (no availability change) goes to the more
    urgent waiting incident, not to a less urgent one that arrives afterwards."""
    drone = DroneView(
        id="drone-00", home_nest="nest-a", capabilities=frozenset({"visual"}),
        cruise_speed_mps=15.0, climb_rate_mps=5.0, cruise_altitude_m=120.0, launch_delay_s=10.0,
        endurance_s=1800.0, lon=LON - 0.2, lat=LAT, battery_pct=60.0, airborne=True, link_ok=True,
    )  # fmt: skip
    core = new_core([drone], with_zone=False)
    urgent = IncidentRequest("inc-1", 1, LON, LAT, frozenset(), 1, 300, 1_000, "fire", "fire")
    [queued] = core.accept(urgent, 1_000)
    assert isinstance(queued, Queued)
    core.upsert_drone(replace(drone, lon=LON - 0.001, battery_pct=58.0), 2_000)
    later = IncidentRequest("inc-2", 4, LON, LAT + 0.001, frozenset(), 1, 60, 3_000, "flood", "ems")
    decisions = core.accept(later, 3_000)
    [assigned] = [d for d in decisions if isinstance(d, Assigned)]
    assert assigned.incident_id == "inc-1"
    assert any(isinstance(d, Queued) and d.incident_id == "inc-2" for d in decisions)
