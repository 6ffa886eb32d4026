"""Drones whose work yields: one flying home from a finished mission takes a new incident when
its battery allows (and is the best choice); a patrol gives its drone to any incident for
which it is the best choice."""

from __future__ import annotations

from dataclasses import replace

from airgrid.v1.telemetry_pb2 import FlightMode
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import (
    Assigned,
    DroneOrder,
    DroneView,
    IncidentRequest,
    MissionStage,
    NestView,
    OrderKind,
    PatrolStarted,
    Preempted,
    Queued,
    StageReached,
)
from services.dispatch.domain.patrols import PatrolRoute
from tests.builders import BASE_LAT, BASE_LON, drone_view, incident_request

LON, LAT = BASE_LON, BASE_LAT
FAR_LON = LON + 0.05  # about 4.8 km east of the nest


def drone(i: int, **kw: object) -> DroneView:
    """A visual drone docked at the nest."""
    return drone_view(i, **{"mode": FlightMode.FLIGHT_MODE_DOCKED, **kw})


def incident(n: int, lon: float, lat: float, **kw: object) -> IncidentRequest:
    return incident_request(n, lon=lon, lat=lat, **kw)


def core_with(*drones: DroneView) -> DispatchCore:
    core = DispatchCore(reserve_pct=20.0, origin=(LON, LAT))
    core.upsert_nest(NestView("nest-01", LON, LAT))
    for d in drones:
        core.upsert_drone(d, 0)
    return core


def fly_mission_home(core: DispatchCore, drone_id: str, at_lon: float, battery: float) -> str:
    """Assign drone_id to a scene far east, fly it there and turn it home at at_lon."""
    [assigned] = [
        d for d in core.accept(incident(1, FAR_LON, LAT), 1_000) if isinstance(d, Assigned)
    ]
    mission_id = assigned.assignments[0].mission_id
    d = core.drones[drone_id]
    flying = replace(d, airborne=True, reported_mission=mission_id)
    core.upsert_drone(replace(flying, mode=FlightMode.FLIGHT_MODE_CRUISING, lon=LON + 0.02), 2_000)
    core.upsert_drone(
        replace(flying, mode=FlightMode.FLIGHT_MODE_HOVERING, lon=FAR_LON, battery_pct=battery + 5),
        3_000,
    )
    decisions = core.upsert_drone(
        replace(flying, mode=FlightMode.FLIGHT_MODE_RETURNING, lon=at_lon, battery_pct=battery),
        4_000,
    )
    assert [d.stage for d in decisions if isinstance(d, StageReached)] == [MissionStage.RETURNING]
    return mission_id


def test_a_drone_heading_home_takes_a_new_incident_near_it() -> None:
    core = core_with(drone(1), drone(2))
    first = fly_mission_home(core, "drone-001", FAR_LON - 0.005, battery=80.0)
    decisions = core.accept(incident(2, FAR_LON - 0.01, LAT + 0.005), 5_000)
    [done] = [d for d in decisions if isinstance(d, StageReached)]
    assert (done.mission_id, done.stage) == (first, MissionStage.COMPLETED)
    assert "retasked" in done.reason
    [assigned] = [d for d in decisions if isinstance(d, Assigned)]
    a = assigned.assignments[0]
    assert a.drone_id == "drone-001" and a.airborne  # not the docked drone-002, 4 km away
    [order] = [d for d in decisions if isinstance(d, DroneOrder)]
    assert order.kind == OrderKind.GOTO
    # Its finished mission's StageReached comes before the new assignment.
    assert decisions.index(done) < decisions.index(assigned)
    assert core.busy["drone-001"] == a.mission_id
    assert "inc-1" not in core.incidents  # the first incident's only slot was flown


def test_a_drone_heading_home_without_battery_for_the_new_trip_is_left_alone() -> None:
    core = core_with(drone(1), drone(2))
    first = fly_mission_home(core, "drone-001", FAR_LON - 0.005, battery=27.0)
    decisions = core.accept(incident(2, FAR_LON - 0.01, LAT + 0.005), 5_000)
    [assigned] = [d for d in decisions if isinstance(d, Assigned)]
    assert assigned.assignments[0].drone_id == "drone-002"
    assert core.missions[first].stage == MissionStage.RETURNING


def test_a_waiting_incident_gets_a_drone_the_moment_it_turns_home() -> None:
    core = core_with(drone(1))
    [assigned] = [
        d for d in core.accept(incident(1, FAR_LON, LAT), 1_000) if isinstance(d, Assigned)
    ]
    mission_id = assigned.assignments[0].mission_id
    waiting = core.accept(incident(2, FAR_LON - 0.01, LAT), 1_500)
    assert any(isinstance(d, Queued) for d in waiting)
    flying = replace(core.drones["drone-001"], airborne=True, reported_mission=mission_id)
    core.upsert_drone(replace(flying, mode=FlightMode.FLIGHT_MODE_HOVERING, lon=FAR_LON), 2_000)
    decisions = core.upsert_drone(
        replace(flying, mode=FlightMode.FLIGHT_MODE_RETURNING, lon=FAR_LON, battery_pct=85.0),
        3_000,
    )
    stages = [(d.mission_id, d.stage) for d in decisions if isinstance(d, StageReached)]
    assert stages == [
        (mission_id, MissionStage.RETURNING),
        (mission_id, MissionStage.COMPLETED),
    ]
    [again] = [d for d in decisions if isinstance(d, Assigned)]
    assert again.incident_id == "inc-2" and again.assignments[0].drone_id == "drone-001"


def test_a_docked_drone_still_wins_when_it_is_sooner() -> None:
    core = core_with(drone(1), drone(2))
    fly_mission_home(core, "drone-001", FAR_LON, battery=80.0)
    decisions = core.accept(incident(2, LON + 0.001, LAT), 5_000)  # next to the nest
    [assigned] = [d for d in decisions if isinstance(d, Assigned)]
    assert assigned.assignments[0].drone_id == "drone-002"
    assert not any(isinstance(d, StageReached) for d in decisions)


def test_a_patrol_yields_its_drone_to_a_routine_incident_when_it_is_the_best_choice() -> None:
    # Three docked drones (two stay docked); one flies the patrol along the far east.
    core = core_with(drone(1), drone(2), drone(3))
    route = PatrolRoute("r1", "nest-01", ((FAR_LON, LAT), (FAR_LON, LAT + 0.02)), 5_000.0)
    core.set_patrol_routes([route])
    started = core.tick(1_000)
    [patrol] = [d for d in started if isinstance(d, PatrolStarted)]
    [sortie] = [d for d in started if isinstance(d, Assigned)]
    patrol_drone = sortie.assignments[0].drone_id
    mission_id = sortie.assignments[0].mission_id
    d = core.drones[patrol_drone]
    core.upsert_drone(
        replace(
            d, airborne=True, reported_mission=mission_id,
            mode=FlightMode.FLIGHT_MODE_CRUISING, lon=FAR_LON, lat=LAT + 0.01,
        ),
        2_000,
    )  # fmt: skip
    # A priority 4 incident next to the patrol: the patrol drone is far sooner than a launch.
    decisions = core.accept(incident(5, FAR_LON, LAT + 0.012, priority=4), 3_000)
    [preempted] = [d for d in decisions if isinstance(d, Preempted)]
    assert preempted.incident_id == patrol.incident_id
    [assigned] = [d for d in decisions if isinstance(d, Assigned)]
    assert assigned.assignments[0].drone_id == patrol_drone
    assert patrol.incident_id not in core.incidents
