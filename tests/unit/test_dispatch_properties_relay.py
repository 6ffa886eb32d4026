"""Hypothesis properties of relay chains: an incident longer than one drone can stay on scene
is covered by a chain of drones, each relieved before it must turn home.

A small flight simulator here flies the core's orders (launch and climb, cruise, hold on
scene, the way home and the descent, the battery draining with flight time) and reports every
drone to the core; the clock ticks every STEP_S. A referee checks:

- no gap: while a feasible relief exists, some drone of the incident holds the scene from
  the first arrival until its time on scene is over, and every relief reaches the scene while
  the drone it relieves can still get home with its reserve;
- no drone lands below its reserve, and no two active missions share a slot (as the
  database requires);
- priority: a relief never takes a drone that a waiting, more urgent incident could use;
- relay_at_risk is raised before the drone on scene must leave, when no relief can come;
- the same inputs give the same decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from airgrid.geo import LocalProjection
from airgrid.v1.telemetry_pb2 import FlightMode
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.core_state import CoreSettings
from services.dispatch.domain.eta import estimate
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneOrder,
    DroneView,
    IncidentRequest,
    MissionStage,
    NestView,
    OrderKind,
    SlaAlert,
    SlaAlertKind,
    StageReached,
)
from tests.builders import BASE_LAT, BASE_LON, drone_view

RESERVE_PCT = 20.0
STEP_S = 10
SCENE_RADIUS_M = 20.0
PROJECTION = LocalProjection(BASE_LON, BASE_LAT)
NEST = NestView("nest-01", BASE_LON, BASE_LAT)


@dataclass
class SimDrone:
    view: DroneView
    phase: str = "docked"  # docked, launching, out, hover, home, landing
    timer_s: float = 0.0
    mission: str = ""
    target: tuple[float, float] = (0.0, 0.0)  # metres
    hold_until_ms: int = 0
    landed_pct: float | None = None  # battery at the latest landing

    @property
    def xy(self) -> tuple[float, float]:
        v = self.view
        assert v.lon is not None and v.lat is not None
        return PROJECTION.to_xy(v.lon, v.lat)


def _drain(d: SimDrone, dt: float) -> None:
    pct = d.view.battery_pct - 100.0 * dt / d.view.endurance_s
    d.view = replace(d.view, battery_pct=pct)


def _move(d: SimDrone, dt: float) -> float:
    """Cruise toward the target for up to dt seconds; returns the time left when there."""
    x, y = d.xy
    tx, ty = d.target
    left = math.hypot(tx - x, ty - y)
    step = d.view.cruise_speed_mps * dt
    if step >= left:
        x, y, spare = tx, ty, dt - left / d.view.cruise_speed_mps
    else:
        x, y, spare = x + (tx - x) * step / left, y + (ty - y) * step / left, 0.0
    lon, lat = PROJECTION.to_lon_lat(x, y)
    d.view = replace(d.view, lon=lon, lat=lat)
    return spare


def _fly(d: SimDrone, dt: float, now_ms: int) -> None:
    """Fly dt seconds, phase after phase, the battery draining while airborne."""
    t0 = now_ms - dt * 1000.0
    while dt > 1e-9 and d.phase != "docked":
        if d.phase in ("launching", "landing"):
            used = min(dt, d.timer_s)
            d.timer_s -= used
            if d.timer_s <= 1e-9:
                if d.phase == "launching":
                    d.phase = "out"
                else:
                    d.phase, d.mission = "docked", ""
                    d.view = replace(d.view, airborne=False)
        elif d.phase == "out":
            used = dt - _move(d, dt)
            if d.phase == "out" and math.dist(d.xy, d.target) < 1e-6:
                d.phase = "hover"
                d.hold_until_ms = int(t0 + used * 1000.0) - d.hold_until_ms * 1000
        elif d.phase == "hover":
            used = min(dt, max(0.0, (d.hold_until_ms - t0) / 1000.0))
            if used < dt:
                d.phase, d.target = "home", (0.0, 0.0)
        else:  # home
            used = dt - _move(d, dt)
            if math.dist(d.xy, d.target) < 1e-6:
                d.phase, d.timer_s = "landing", d.view.cruise_altitude_m / d.view.climb_rate_mps
        _drain(d, used)
        dt -= used
        t0 += used * 1000.0
        if d.phase == "docked":
            d.landed_pct = d.view.battery_pct


class Sim:
    def __init__(self, drones: list[DroneView], settings_: CoreSettings | None = None) -> None:
        self.core = DispatchCore(settings=settings_ or CoreSettings(reserve_pct=RESERVE_PCT))
        self.core.upsert_nest(NEST)
        self.drones = {v.id: SimDrone(v) for v in drones}
        self.now = 0
        self.log: list[tuple[int, Decision]] = []
        self.requests: dict[str, IncidentRequest] = {}
        for v in drones:
            self._note(self.core.upsert_drone(v, now_ms=0))

    def _note(self, decisions: list[Decision]) -> None:
        for d in decisions:
            self.log.append((self.now, d))
            if isinstance(d, DroneOrder):
                self._obey(d)

    def _obey(self, order: DroneOrder) -> None:
        d = self.drones[order.drone_id]
        if order.kind == OrderKind.RETURN:
            if d.phase != "docked":
                d.phase, d.target = "home", (0.0, 0.0)
            return
        assert order.target is not None
        d.mission = order.mission_id
        d.target = PROJECTION.to_xy(*order.target)
        d.hold_until_ms = -order.hold_seconds  # set on arrival
        if order.kind == OrderKind.LAUNCH:
            v = d.view
            d.phase, d.timer_s = (
                "launching",
                v.launch_delay_s + v.cruise_altitude_m / v.climb_rate_mps,
            )
            d.view = replace(v, airborne=True)
        else:
            d.phase = "out"

    def accept(self, request: IncidentRequest) -> None:
        self.requests[request.id] = request
        self._note(self.core.accept(request, now_ms=self.now))

    def step(self) -> None:
        self.now += STEP_S * 1000
        for drone_id in sorted(self.drones):
            d = self.drones[drone_id]
            if d.phase == "docked":
                continue
            _fly(d, STEP_S, self.now)
            mode = {
                "launching": FlightMode.FLIGHT_MODE_TAKING_OFF,
                "out": FlightMode.FLIGHT_MODE_CRUISING,
                "hover": FlightMode.FLIGHT_MODE_HOVERING,
                "home": FlightMode.FLIGHT_MODE_RETURNING,
                "landing": FlightMode.FLIGHT_MODE_LANDING,
                "docked": FlightMode.FLIGHT_MODE_DOCKED,
            }[d.phase]
            d.view = replace(d.view, mode=mode, reported_mission=d.mission)
            self._note(self.core.upsert_drone(d.view, now_ms=self.now))
        self._note(self.core.tick(self.now))

    def on_scene(self, incident_id: str) -> list[str]:
        """The drones hovering at the scene on a mission of the incident."""
        request = self.requests[incident_id]
        scene = PROJECTION.to_xy(request.lon, request.lat)
        mission_incident = self.core.mission_incident
        return [
            d.view.id
            for d in self.drones.values()
            if d.phase == "hover"
            and mission_incident.get(d.mission) == incident_id
            and math.dist(d.xy, scene) <= SCENE_RADIUS_M
        ]


def fire(n: int, *, x: float, y: float, on_scene_s: int, priority: int = 1) -> IncidentRequest:
    lon, lat = PROJECTION.to_lon_lat(x, y)
    return IncidentRequest(
        id=f"fire-{n}", priority=priority, lon=lon, lat=lat, required_capabilities=frozenset(),
        drones_needed=1, on_scene_seconds=on_scene_s, accepted_ms=0, type="fire",
    )  # fmt: skip


def fleet(batteries: list[float], endurance_s: float) -> list[DroneView]:
    return [drone_view(i, battery_pct=b, endurance_s=endurance_s) for i, b in enumerate(batteries)]


def return_pct(d: SimDrone) -> float:
    """The battery a drone needs to fly home from where it is and land."""
    v = d.view
    back_s = math.hypot(*d.xy) / v.cruise_speed_mps + v.cruise_altitude_m / v.climb_rate_mps
    return 100.0 * back_s / v.endurance_s


scenes = st.tuples(st.floats(300.0, 2500.0), st.floats(0.0, 2 * math.pi))
# Enough drones that a relief always exists: each can stay at least ~500 s on scene.
fleets = st.tuples(
    st.lists(st.floats(75.0, 100.0), min_size=9, max_size=9),
    st.sampled_from([1800.0, 2400.0]),
)


def _run_chain(
    scene: tuple[float, float], fleet_in: tuple[list[float], float], on_scene_s: int
) -> tuple[Sim, list[int], int]:
    """Runs one long fire to its end; returns the sim and the times with nobody on scene
    between the first arrival and the end of the time on scene."""
    distance, angle = scene
    sim = Sim(fleet(*fleet_in))
    sim.accept(
        fire(1, x=distance * math.cos(angle), y=distance * math.sin(angle), on_scene_s=on_scene_s)
    )
    first: int | None = None
    gaps: list[int] = []
    handovers_checked = 0
    while sim.now < 1000 * (on_scene_s + 3000):
        before = len(sim.log)
        sim.step()
        here = sim.on_scene("fire-1")
        slots = [m.slot for m in sim.core.missions.values() if m.incident_id == "fire-1"]
        assert len(slots) == len(set(slots)), f"two active missions share a slot: {slots}"
        if first is None and here:
            first = sim.now
        if first is not None and sim.now < first + on_scene_s * 1000 and not here:
            gaps.append(sim.now)
        for _, d in sim.log[before:]:
            if isinstance(d, StageReached) and d.reason.startswith("relieved on scene"):
                held = sim.drones[d.drone_id]
                left = held.view.battery_pct - return_pct(held)
                assert left >= RESERVE_PCT - 0.5, (
                    f"{d.drone_id} relieved with {left:.1f} % above its way home"
                )
                handovers_checked += 1
    assert first is not None, "the fire never got a drone"
    return sim, gaps, handovers_checked


@settings(max_examples=25, deadline=None)
@given(scenes, fleets, st.sampled_from([2400, 3600]))
def test_a_long_fire_is_held_without_a_gap_and_no_drone_lands_below_reserve(  # type: ignore[no-untyped-def]
    scene, fleet_in, on_scene_s
) -> None:
    sim, gaps, handovers = _run_chain(scene, fleet_in, on_scene_s)
    assert not gaps, f"nobody on scene at {gaps[:3]} ms"
    assert handovers >= 1
    for d in sim.drones.values():
        if d.landed_pct is not None:
            assert d.landed_pct >= RESERVE_PCT - 0.5, f"{d.view.id} landed at {d.landed_pct:.1f} %"
    assert "fire-1" not in sim.core.incidents, "the chain did not end"


@settings(max_examples=10, deadline=None)
@given(scenes, fleets)
def test_the_same_inputs_give_the_same_chain(scene, fleet_in) -> None:  # type: ignore[no-untyped-def]
    a, _, _ = _run_chain(scene, fleet_in, 2400)
    b, _, _ = _run_chain(scene, fleet_in, 2400)
    assert a.log == b.log


@settings(max_examples=20, deadline=None)
@given(
    scenes,
    st.lists(st.floats(75.0, 100.0), min_size=3, max_size=6),
    st.integers(1, 8),
    st.integers(0, 5000),
)
def test_a_relief_never_takes_a_drone_a_more_urgent_incident_waits_for(  # type: ignore[no-untyped-def]
    scene, batteries, urgent_needs, urgent_at_s
) -> None:
    """A priority-3 chain and a priority-1 incident that arrives later, wanting more drones
    than may be idle: at every relief, no more urgent incident waits that its drone could
    serve (an oracle here: straight legs, the reserve with a margin)."""
    distance, angle = scene
    sim = Sim(fleet(batteries, 2400.0))
    sim.accept(
        fire(
            1,
            x=distance * math.cos(angle),
            y=distance * math.sin(angle),
            on_scene_s=3600,
            priority=3,
        )
    )
    urgent = replace(
        fire(2, x=-distance * math.cos(angle), y=-distance * math.sin(angle), on_scene_s=600),
        drones_needed=urgent_needs,
    )
    reliefs = 0
    while sim.now < 1000 * 6600:
        if sim.now == urgent_at_s // STEP_S * STEP_S * 1000:
            sim.accept(replace(urgent, accepted_ms=sim.now))
        views = {i: d.view for i, d in sim.drones.items()}
        before = len(sim.log)
        sim.step()
        for _, d in sim.log[before:]:
            if not (isinstance(d, Assigned) and d.incident_id == "fire-1"):
                continue
            for a in d.assignments:
                if not any(m.relieves for m in sim.core.missions.values() if m.id == a.mission_id):
                    continue
                reliefs += 1
                for entry in sim.core.incidents.values():
                    if entry.open_slots and entry.rank < 3:
                        found = estimate(
                            views[a.drone_id], entry.request, sim.core.nests,
                            reserve_pct=RESERVE_PCT + 1.0,
                        )  # fmt: skip
                        assert not found.feasible, (
                            f"relief {a.drone_id} of fire-1 while {entry.request.id} waits for it"
                        )


def test_relay_at_risk_is_raised_before_the_drone_on_scene_must_leave() -> None:
    """One drone and an hour-long fire: it is accepted (the drone covers some time on scene),
    with nobody to relieve it the alert and the reason come before it must turn home, and it
    holds only as long as its battery allows: it lands with its reserve."""
    sim = Sim(fleet([100.0], 2400.0))
    sim.accept(fire(1, x=1500.0, y=0.0, on_scene_s=3600))
    assert any(isinstance(d, Assigned) for _, d in sim.log)
    alert_at: int | None = None
    left_home_at: int | None = None
    while sim.now < 3_000_000 and left_home_at is None:
        sim.step()
        for at, d in sim.log:
            if (
                isinstance(d, SlaAlert)
                and d.kind == SlaAlertKind.RELAY_AT_RISK
                and alert_at is None
            ):
                alert_at = at
                assert sim.core.incidents["fire-1"].reason.startswith("relay at risk")
            if isinstance(d, StageReached) and d.stage == MissionStage.RETURNING:
                left_home_at = at
    assert alert_at is not None and left_home_at is not None
    assert alert_at < left_home_at
    lone = sim.drones["drone-000"]
    while lone.phase != "docked":
        sim.step()
    assert lone.landed_pct is not None and lone.landed_pct >= RESERVE_PCT - 0.5
    alerts = [d for _, d in sim.log if isinstance(d, SlaAlert)]
    assert [a.kind for a in alerts].count(SlaAlertKind.RELAY_AT_RISK) == 1
