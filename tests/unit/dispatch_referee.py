"""The referee of the dispatch-core properties: what the worker would store from the core's
decisions, and the checks on it after every operation, by its own no-fly clipping and a
feasibility oracle written from the contract, not from the core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from airgrid.nofly import NoFlyZone
from services.dispatch.domain.core import DispatchCore
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
from tests.unit.dispatch_strategies import NESTS, XY, metres

TERMINAL = (MissionStage.COMPLETED, MissionStage.CANCELLED, MissionStage.FAILED)
RESERVE_PCT = 20.0

# -- geometry of the referee ------------------------------------------------------------------
# Its own clipping, in the flat metres of dispatch_strategies.py, so that a fault in the core's
# planner cannot hide in the check.


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
            # A relay relief holds slot s + k·drones_needed of the slot s it keeps covered.
            n = request.drones_needed
            covered = {m.slot % n for m in self.active.values() if m.incident_id == incident_id}
            waits, reason = self.waiting.get(incident_id, ((), ""))
            flown = {s % n for s in self.flown.get(incident_id, set())}
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
