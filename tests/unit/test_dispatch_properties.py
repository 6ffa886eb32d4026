"""Hypothesis properties of the dispatch core on random fleets, no-fly zones and event sequences.

A scenario is a fleet, up to two convex no-fly zones and a list of operations: incidents (some
of them duplicate reports of another department), drone-state updates, failures,
cancellations, missions ending, clock ticks and restarts. A referee replays the core's
decisions the way the worker stores them and checks, after every operation:

- no drone holds two missions, and the decisions agree with the core's own state;
- every assignment is feasible by an oracle of this module, not the core's estimator: the
  drone flies the path it was sent along (measured here), stays on scene, and a straight
  return to the nearest nest (a lower bound on any return) leaves the reserve; its ETA is
  the time to fly that path;
- every dispatched path keeps out of the active no-fly zones, by a segment-polygon clipping
  written here (Cyrus-Beck), independent of the core's visibility-graph planner;
- every incident is assigned, queued with a reason, linked as a duplicate, cancelled or done:
  each of its slots is covered by an active mission, waits in the queue, or was flown;
- liveness: no incident waits while an idle, healthy drone could surely serve it (straight
  legs clear of every zone, battery to spare), once the core has had its chance to drain the
  queue (as the worker drains it on the tick after an idle drone only moved);
- priority order: no incident gets a drone while a more urgent one waits that the same drone
  could surely serve;
- the same inputs give the same outputs, and a core rebuilt from what the database holds
  (a restart) holds exactly the missions and the queue recorded before the restart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airgrid.nofly import NoFlyZone
from airgrid.v1.telemetry_pb2 import FlightMode
from services.dispatch.domain.core import CoreSettings, DispatchCore
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneOrder,
    DroneView,
    IncidentRequest,
    Linked,
    Mission,
    MissionStage,
    NestView,
    OrderKind,
    Preempted,
    Queued,
    Redispatched,
    StageReached,
)

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
RESERVE_PCT = 20.0

# -- geometry of the referee ------------------------------------------------------------------
# Its own flat metres around (LON, LAT) and its own clipping, so that a fault in the core's
# projection or planner cannot hide in the check. The map from lon/lat is affine, so segments
# and convex polygons stay segments and convex polygons.

M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT))
XY = tuple[float, float]


def metres(lon: float, lat: float) -> XY:
    return ((lon - LON) * M_PER_DEG_LON, (lat - LAT) * M_PER_DEG_LAT)


def counter_clockwise(ring: Sequence[tuple[float, float]]) -> list[XY]:
    points = [metres(lon, lat) for lon, lat in ring]
    if points[0] == points[-1]:
        points.pop()
    area2 = sum(a[0] * b[1] - b[0] * a[1] for a, b in pairwise([*points, points[0]]))
    return points if area2 > 0 else points[::-1]


def length_inside(a: XY, b: XY, polygon: list[XY], inset_m: float) -> float:
    """Metres of the segment a-b inside a convex counter-clockwise polygon whose edges are
    moved inward by inset_m (outward when negative): Cyrus-Beck clipping of the segment's
    parameter against each edge's half-plane."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    t_in, t_out = 0.0, 1.0
    for p, q in pairwise([*polygon, polygon[0]]):
        ex, ey = q[0] - p[0], q[1] - p[1]
        norm = math.hypot(ex, ey)
        nx, ny = ey / norm, -ex / norm  # outward normal of a counter-clockwise edge
        # Inside the half-plane: n.(a + t d - p) <= -inset_m.
        room = -inset_m - (nx * (a[0] - p[0]) + ny * (a[1] - p[1]))
        rate = nx * dx + ny * dy
        if rate == 0.0:
            if room < 0.0:
                return 0.0
            continue
        t = room / rate
        if rate > 0.0:
            t_out = min(t_out, t)
        else:
            t_in = max(t_in, t)
        if t_in >= t_out:
            return 0.0
    return (t_out - t_in) * math.hypot(dx, dy)


def strictly_inside(p: XY, polygon: list[XY], inset_m: float = 0.0) -> bool:
    return length_inside(p, (p[0] + 1e-3, p[1]), polygon, inset_m) > 0.0


def polyline_m(points: list[XY]) -> float:
    return sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in pairwise(points))


@st.composite
def convex_zones(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    """A regular polygon of 3 to 6 corners, 0.6 to 6 km across, turned at random."""
    cx, cy = metres(LON + draw(st.floats(-0.04, 0.07)), LAT + draw(st.floats(-0.02, 0.06)))
    radius = draw(st.floats(300.0, 3000.0))
    corners = draw(st.integers(3, 6))
    turn = draw(st.floats(0.0, 2 * math.pi))
    ring = []
    for k in range(corners):
        angle = turn + 2 * math.pi * k / corners
        x, y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        ring.append((LON + x / M_PER_DEG_LON, LAT + y / M_PER_DEG_LAT))
    return tuple(ring)


zone_sets = st.lists(
    st.one_of(st.just(ZONE.ring), convex_zones()), min_size=1, max_size=2, unique=True
).map(lambda rings: tuple(NoFlyZone(f"nfz-{k}", ring) for k, ring in enumerate(rings)))

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

    def busy_drones(self) -> set[str]:
        return {m.drone_id for m in self.active.values()}

    def rank(self, incident_id: str) -> int:
        """Its priority, raised by any more urgent duplicate linked to it."""
        linked = [self.requests[d].priority for d, p in self.linked.items() if p == incident_id]
        return min([self.requests[incident_id].priority, *linked])

    def queue(self) -> dict[str, set[int]]:
        """The open slots of every live incident that waits."""
        return {
            i: set(slots) for i, (slots, _) in self.waiting.items()
            if slots and i not in self.cancelled and i not in self.linked
        }  # fmt: skip

    def queue_order(self) -> list[str]:
        return sorted(self.queue(), key=lambda i: (self.rank(i), self.requests[i].accepted_ms, i))

    def is_live(self, incident_id: str) -> bool:
        return incident_id in self.queue() or any(
            m.incident_id == incident_id for m in self.active.values()
        )

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


# -- the referee's feasibility oracle ---------------------------------------------------------
# Written from the contract (SPEC 5), not from the core: the battery must cover launch and
# climb when docked, the flight out, the time on scene, the flight back to a nest and the
# descent, with the reserve to spare; battery drains in proportion to flight time.


@dataclass(frozen=True)
class Airspace:
    zones: tuple[list[XY], ...]  # active no-fly polygons, counter-clockwise metres

    @staticmethod
    def of(zones: tuple[NoFlyZone, ...]) -> Airspace:
        return Airspace(tuple(counter_clockwise(z.ring) for z in zones))

    def clear(self, a: XY, b: XY, margin_m: float) -> bool:
        """The straight leg, ends included, passes no zone closer than margin_m (roughly:
        edges moved out)."""
        return not any(
            length_inside(a, b, z, -margin_m) > 0.0 or strictly_inside(b, z, -margin_m)
            for z in self.zones
        )


def healthy(drone: DroneView) -> bool:
    return drone.active and drone.link_ok and not drone.faults and drone.has_position


def where(drone: DroneView) -> XY:
    assert drone.lon is not None and drone.lat is not None
    return metres(drone.lon, drone.lat)


def battery_left_pct(drone: DroneView, out_m: float, on_scene_s: float, back_m: float) -> float:
    launch_s = 0.0 if drone.airborne else drone.launch_delay_s
    climb_s = drone.cruise_altitude_m / drone.climb_rate_mps
    flight_s = (
        launch_s
        + (0.0 if drone.airborne else climb_s)
        + out_m / drone.cruise_speed_mps
        + on_scene_s
        + back_m / drone.cruise_speed_mps
        + climb_s  # the descent at the nest
    )
    return drone.battery_pct - 100.0 * flight_s / drone.endurance_s


def nest_distances_m(scene: XY) -> list[tuple[float, NestView]]:
    return sorted(((math.dist(scene, metres(n.lon, n.lat)), n) for n in NESTS), key=lambda x: x[0])


def surely_feasible(drone: DroneView, request: IncidentRequest, airspace: Airspace) -> bool:
    """True only when the drone can certainly serve the incident: its straight legs out and
    back (to every nest that could count as the nearest) keep clear of the zones, so no
    planner may send it around, and the battery left has a margin for rounding."""
    if not healthy(drone) or not request.required_capabilities <= drone.capabilities:
        return False
    start, scene = where(drone), metres(request.lon, request.lat)
    if not airspace.clear(start, scene, 20.0):
        return False
    distances = nest_distances_m(scene)
    nearest = distances[0][0]
    back = [(d, n) for d, n in distances if d <= nearest * 1.01 + 50.0]
    if not all(airspace.clear(scene, metres(n.lon, n.lat), 20.0) for _, n in back):
        return False
    out_m, back_m = math.dist(start, scene) * 1.01, max(d for d, _ in back) * 1.01
    return battery_left_pct(drone, out_m, request.on_scene_seconds, back_m) >= RESERVE_PCT + 0.5


def check_flown_path(
    drone: DroneView,
    target: tuple[float, float],
    path: tuple[tuple[float, float], ...],
    airspace: Airspace,
) -> float:
    """The path ends at the target and keeps out of every zone (a drone inside one may fly
    its first leg out of it); returns its length in metres."""
    assert path, f"{drone.id} sent without a path"
    points = [where(drone), *(metres(lon, lat) for lon, lat in path)]
    assert math.dist(points[-1], metres(*target)) < 1.0, f"{drone.id}'s path misses its target"
    for k, (a, b) in enumerate(pairwise(points)):
        for zone in airspace.zones:
            if k == 0 and strictly_inside(a, zone):
                continue
            inside = length_inside(a, b, zone, 1.0)
            assert inside == 0.0, (
                f"{drone.id}'s leg {k} from {a} to {b} crosses a no-fly zone for {inside:.0f} m"
            )
    return polyline_m(points)


def check_assignments(
    referee: Referee,
    world: dict[str, DroneView],
    airspace: Airspace,
    decisions: list[Decision],
) -> None:
    queue = referee.queue()
    for d in decisions:
        if isinstance(d, DroneOrder) and d.kind != OrderKind.RETURN:
            drone = world[d.drone_id]
            assert d.kind == (OrderKind.GOTO if drone.airborne else OrderKind.LAUNCH)
            assert d.target is not None
            check_flown_path(drone, d.target, d.path, airspace)
        if not isinstance(d, Assigned):
            continue
        request = referee.requests[d.incident_id]
        scene = metres(request.lon, request.lat)
        rank = referee.rank(d.incident_id)
        for a in d.assignments:
            drone = world[a.drone_id]
            assert healthy(drone), f"{a.drone_id} assigned while unhealthy"
            assert request.required_capabilities <= drone.capabilities
            out_m = check_flown_path(drone, (request.lon, request.lat), a.path, airspace)
            launch_s = 0.0 if drone.airborne else (
                drone.launch_delay_s + drone.cruise_altitude_m / drone.climb_rate_mps
            )  # fmt: skip
            eta = launch_s + out_m / drone.cruise_speed_mps
            assert abs(a.eta_seconds - eta) <= 1.0 + 0.005 * eta, (
                f"{a.drone_id}: ETA {a.eta_seconds} s for a path of {eta:.1f} s"
            )
            back_m = nest_distances_m(scene)[0][0]  # no return is shorter
            left = battery_left_pct(drone, out_m, request.on_scene_seconds, back_m)
            assert left >= RESERVE_PCT - 0.1, (
                f"{a.drone_id} cannot do {d.incident_id}: {left:.1f} % left at the nest"
            )
            # Priority order: nothing more urgent still waits that this drone could serve.
            for waiting_id in queue:
                if referee.rank(waiting_id) < rank and waiting_id != d.incident_id:
                    assert not surely_feasible(drone, referee.requests[waiting_id], airspace), (
                        f"{a.drone_id} went to {d.incident_id} (rank {rank}) while "
                        f"{waiting_id} (rank {referee.rank(waiting_id)}) waits for it"
                    )


def check_liveness(referee: Referee, world: dict[str, DroneView], airspace: Airspace) -> None:
    """No incident waits that an idle drone could surely serve."""
    busy = referee.busy_drones()
    idle = [d for d in world.values() if d.id not in busy and healthy(d)]
    for incident_id in referee.queue():
        request = referee.requests[incident_id]
        for drone in idle:
            assert not surely_feasible(drone, request, airspace), (
                f"{incident_id} waits while idle {drone.id} can serve it"
            )


# -- running a scenario ---------------------------------------------------------------------


def new_core(fleet: list[DroneView], zones: tuple[NoFlyZone, ...]) -> DispatchCore:
    core = DispatchCore(settings=CoreSettings(reserve_pct=RESERVE_PCT), origin=(LON, LAT))
    for zone in zones:
        core.upsert_zone(zone)
    for nest in NESTS:
        core.upsert_nest(nest)
    for drone in fleet:
        core.upsert_drone(drone, 0)
    return core


def restarted(
    now: int, referee: Referee, world: dict[str, DroneView], zones: tuple[NoFlyZone, ...]
) -> tuple[DispatchCore, list[Decision]]:
    """A new core restored from what the database holds (the referee's record, never the
    old core), checked against that record before it decides anything, then fed the world
    again; the decisions that feeding makes count like any other (the worker stores them)."""
    live = [r for i, r in referee.requests.items() if referee.is_live(i)]
    fresh = new_core([], zones)
    fresh.restore(
        incidents=live,
        missions=[replace(m) for m in referee.active.values()],
        attempts=dict(referee.attempts),
        links=dict(referee.linked),
        done_slots={i: set(s) for i, s in referee.flown.items()},
    )
    fresh.now_ms = now
    assert {
        m.id: (m.drone_id, m.incident_id, m.slot, m.stage) for m in fresh.missions.values()
    } == {m.id: (m.drone_id, m.incident_id, m.slot, m.stage) for m in referee.active.values()}, (
        "the restored missions differ from those recorded"
    )
    assert {e.request.id: e.open_slots for e in fresh.queued_incidents()} == referee.queue(), (
        "the restored queue differs from the one recorded"
    )
    assert [e.request.id for e in fresh.queued_incidents()] == referee.queue_order(), (
        "the restored queue is in another order"
    )
    decisions: list[Decision] = []
    for drone_id in sorted(world):
        decisions += fresh.upsert_drone(world[drone_id], now)
    decisions += fresh.drain_queue()
    return fresh, decisions


def run(
    fleet: list[DroneView], operations: list[tuple[Any, ...]], zones: tuple[NoFlyZone, ...]
) -> tuple[list[list[Decision]], DispatchCore]:
    core = new_core(fleet, zones)
    airspace = Airspace.of(zones)
    world = {d.id: d for d in fleet}
    referee = Referee()
    now = 1_000
    log: list[list[Decision]] = []
    accepted: list[str] = []
    # Set when an idle drone only reported (the worker's flag): the core need not try its
    # queue again until the next tick, so liveness is checked only while it is clear.
    moved = False
    for n, op in enumerate(operations):
        now += 1_000
        kind = op[0]
        decisions: list[Decision] = []
        reported: DroneView | None = None
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
            old = world[fleet[i % len(fleet)].id]
            nest = next(x for x in NESTS if x.id == old.home_nest)
            lon, lat = (nest.lon + dx, nest.lat + dy) if airborne else (nest.lon, nest.lat)
            reported = replace(
                old, lon=lon, lat=lat, battery_pct=battery, airborne=airborne, link_ok=True,
                faults=(),
            )  # fmt: skip
        elif kind == "move" and fleet:
            _, i, (dx, dy), drained = op
            old = world[fleet[i % len(fleet)].id]
            if old.airborne:
                reported = replace(
                    old, lon=LON + dx, lat=LAT + dy, battery_pct=max(0.0, old.battery_pct - drained)
                )
        elif kind == "progress" and referee.active:
            _, k, phase, (dx, dy), drained = op
            mission = referee.active[sorted(referee.active)[k % len(referee.active)]]
            old = world[mission.drone_id]
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
                battery_pct=max(RESERVE_PCT, old.battery_pct - drained),
            )  # fmt: skip
        elif kind == "fail" and referee.active:
            _, k, how = op
            mission = referee.active[sorted(referee.active)[k % len(referee.active)]]
            old = world[mission.drone_id]
            reported = {
                "link": replace(old, link_ok=False),
                "fault": replace(old, faults=("motor",)),
                "battery": replace(old, battery_pct=5.0),
            }[how]
        elif kind == "cancel" and accepted:
            incident_id = accepted[op[1] % len(accepted)]
            referee.cancelled.add(incident_id)
            decisions = core.cancel(incident_id, now)
            moved = False  # a cancel drains the queue
        elif kind == "end" and referee.active:
            mission_id = sorted(referee.active)[op[1] % len(referee.active)]
            referee.mission_ended(mission_id)
            decisions = core.mission_ended(mission_id, now)
            moved = False  # a drone freed drains the queue
        elif kind == "tick":
            now += op[1] * 1_000
            decisions = core.tick(now)
            if moved:
                decisions += core.drain_queue()
                moved = False
        elif kind == "restart":
            core, decisions = restarted(core.now_ms, referee, world, zones)
            moved = False
        if reported is not None:
            world[reported.id] = reported
            decisions = core.upsert_drone(reported, now)
        referee.record(decisions, now)
        if reported is not None and reported.id not in referee.busy_drones():
            moved = True
        check_assignments(referee, world, airspace, decisions)
        referee.check(core)
        if not moved:
            check_liveness(referee, world, airspace)
        log.append(decisions)
    return log, core


PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(fleets(), ops, zone_sets)
def test_invariants_hold_after_every_operation(
    fleet: list[DroneView], operations: list[tuple[Any, ...]], zones: tuple[NoFlyZone, ...]
) -> None:
    run(fleet, operations, zones)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets(), ops, zone_sets)
def test_same_inputs_give_the_same_outputs(
    fleet: list[DroneView], operations: list[tuple[Any, ...]], zones: tuple[NoFlyZone, ...]
) -> None:
    first, a = run(fleet, operations, zones)
    second, b = run(fleet, operations, zones)
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
    core = new_core([drone], ())
    urgent = IncidentRequest("inc-1", 1, LON, LAT, frozenset(), 1, 300, 1_000, "fire", "fire")
    [queued] = core.accept(urgent, 1_000)
    assert isinstance(queued, Queued)
    core.upsert_drone(replace(drone, lon=LON - 0.001, battery_pct=58.0), 2_000)
    later = IncidentRequest("inc-2", 4, LON, LAT + 0.001, frozenset(), 1, 60, 3_000, "flood", "ems")
    decisions = core.accept(later, 3_000)
    [assigned] = [d for d in decisions if isinstance(d, Assigned)]
    assert assigned.incident_id == "inc-1"
    assert any(isinstance(d, Queued) and d.incident_id == "inc-2" for d in decisions)
