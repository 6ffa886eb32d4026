"""Unit tests of the simulator's pure parts: flight physics, fleet telemetry, incident draws."""

from __future__ import annotations

import itertools

import pytest

from airgrid.geo import destination_point, haversine_m, point_in_polygon
from airgrid.reference import DroneSpec, load_reference
from airgrid.sim.fleet import Fleet, ReportRates
from airgrid.sim.incidents import NO_FLY_KINDS, IncidentGenerator
from airgrid.sim.physics import (
    ARRIVAL_RADIUS_M,
    CHARGE_PCT_PER_S,
    CRITICAL_BATTERY_PCT,
    CRUISING,
    DOCKED,
    HOVERING,
    LANDING,
    RETURNING,
    TAKING_OFF,
    SimDrone,
    apply_command,
    step,
)
from airgrid.v1 import command_pb2, telemetry_pb2

NEST = (114.40, 30.48)


def make_spec(**overrides: object) -> DroneSpec:
    fields: dict[str, object] = {
        "id": "drone-001",
        "model": "test quad",
        "home_nest": "nest-01",
        "capabilities": ("visual", "thermal"),
        "cruise_speed_mps": 15.0,
        "max_speed_mps": 20.0,
        "climb_rate_mps": 5.0,
        "cruise_altitude_m": 100.0,
        "endurance_s": 1800.0,
        "launch_delay_s": 10.0,
        "payload_kg": 1.0,
    }
    fields.update(overrides)
    return DroneSpec(**fields)  # type: ignore[arg-type]


def docked_drone(**overrides: object) -> SimDrone:
    return SimDrone.docked_at(make_spec(**overrides), "nest-01", *NEST)


def command(
    kind: int, *, target: tuple[float, float] = (0.0, 0.0), hold: int = 0, mission: str = "m-1"
) -> command_pb2.DroneCommand:
    return command_pb2.DroneCommand(
        command_id=f"c-{kind}-{mission}",
        drone_id="drone-001",
        mission_id=mission,
        kind=kind,  # type: ignore[arg-type]
        target_lon=target[0],
        target_lat=target[1],
        hold_seconds=hold,
        nest_id="nest-01",
    )


def run_until(drone: SimDrone, mode: int, *, dt: float = 0.5, limit_s: float = 3600.0) -> float:
    """Seconds of simulated time until the drone is in `mode`."""
    elapsed = 0.0
    while drone.mode != mode:
        step(drone, dt)
        elapsed += dt
        assert elapsed <= limit_s, f"never reached mode {mode}; stuck in {drone.mode}"
    return elapsed


def test_a_launched_drone_flies_to_the_scene_hovers_returns_and_docks() -> None:
    drone = docked_drone()
    scene = destination_point(*NEST, 45.0, 3000.0)
    assert apply_command(drone, command(command_pb2.COMMAND_KIND_LAUNCH, target=scene, hold=60))
    assert drone.mode == TAKING_OFF and drone.mission_id == "m-1"

    # launch delay 10 s + climb 100 m at 5 m/s = 30 s, then 3 km at 15 m/s = 200 s
    to_cruise = run_until(drone, CRUISING)
    assert to_cruise == pytest.approx(30.0, abs=1.0)
    assert drone.alt_m == pytest.approx(100.0)
    to_scene = run_until(drone, HOVERING)
    assert to_scene == pytest.approx(200.0, abs=2.0)
    assert haversine_m(drone.lon, drone.lat, *scene) <= ARRIVAL_RADIUS_M
    assert drone.mission_id == "m-1"

    on_scene = run_until(drone, RETURNING)
    assert on_scene == pytest.approx(60.0, abs=1.0)
    assert drone.mission_id == "m-1"  # dispatch sees the return as part of the mission
    back = run_until(drone, LANDING)
    assert back == pytest.approx(200.0, abs=2.0)
    landing = run_until(drone, DOCKED)
    assert landing == pytest.approx(20.0, abs=1.0)

    assert (drone.lon, drone.lat, drone.alt_m) == (*NEST, 0.0)
    assert drone.mission_id == "" and drone.target is None


def test_a_large_step_follows_phase_changes_within_it() -> None:
    fine, coarse = docked_drone(), docked_drone()
    scene = destination_point(*NEST, 120.0, 1500.0)
    for drone in (fine, coarse):
        apply_command(drone, command(command_pb2.COMMAND_KIND_LAUNCH, target=scene, hold=30))
    assert run_until(fine, HOVERING, dt=0.1) == pytest.approx(
        run_until(coarse, HOVERING, dt=7.0), abs=7.0
    )


def test_battery_drains_in_flight_faster_when_climbing_and_charges_docked() -> None:
    drone = docked_drone(endurance_s=1000.0, launch_delay_s=0.0)
    apply_command(drone, command(command_pb2.COMMAND_KIND_LAUNCH, target=(114.45, 30.50)))
    step(drone, 10.0)  # climbing the whole time: 1.3 × 0.1 %/s
    assert drone.mode == TAKING_OFF
    assert drone.battery_pct == pytest.approx(100.0 - 1.3, abs=1e-6)
    run_until(drone, CRUISING)
    before = drone.battery_pct
    step(drone, 10.0)
    assert drone.battery_pct == pytest.approx(before - 1.0, abs=1e-6)

    docked = docked_drone()
    docked.battery_pct = 40.0
    step(docked, 600.0)
    assert docked.battery_pct == pytest.approx(40.0 + 600 * CHARGE_PCT_PER_S)
    step(docked, 4 * 3600.0)
    assert docked.battery_pct == 100.0


def test_commands_retarget_hold_and_return_an_airborne_drone() -> None:
    drone = docked_drone(launch_delay_s=0.0)
    far = destination_point(*NEST, 0.0, 5000.0)
    apply_command(drone, command(command_pb2.COMMAND_KIND_LAUNCH, target=far, hold=30))
    run_until(drone, CRUISING)
    step(drone, 20.0)

    elsewhere = destination_point(*NEST, 90.0, 800.0)
    assert apply_command(
        drone, command(command_pb2.COMMAND_KIND_GOTO, target=elsewhere, mission="m-2")
    )
    assert drone.mission_id == "m-2"
    run_until(drone, HOVERING)
    assert haversine_m(drone.lon, drone.lat, *elsewhere) <= ARRIVAL_RADIUS_M

    assert apply_command(drone, command(command_pb2.COMMAND_KIND_HOLD))
    step(drone, 600.0)
    assert drone.mode == HOVERING  # a HOLD without a time lasts until the next command

    assert apply_command(drone, command(command_pb2.COMMAND_KIND_RETURN))
    assert drone.mode == RETURNING
    run_until(drone, DOCKED)
    assert (drone.lon, drone.lat) == NEST


def test_the_failsafe_brings_a_drone_home_on_critical_battery() -> None:
    drone = docked_drone(launch_delay_s=0.0, endurance_s=600.0)
    scene = destination_point(*NEST, 200.0, 500.0)
    apply_command(drone, command(command_pb2.COMMAND_KIND_LAUNCH, target=scene))
    run_until(drone, HOVERING)
    assert drone.hold_remaining_s is None  # no hold time: loiter until told otherwise
    run_until(drone, RETURNING, limit_s=600.0)
    assert drone.battery_pct == pytest.approx(CRITICAL_BATTERY_PCT, abs=0.5)
    run_until(drone, DOCKED)
    assert drone.battery_pct > 0.0


def test_docked_drone_ignores_goto_hold_and_return_but_obeys_launch_at_low_battery() -> None:
    drone = docked_drone()
    drone.battery_pct = 10.0
    for kind in (
        command_pb2.COMMAND_KIND_GOTO,
        command_pb2.COMMAND_KIND_HOLD,
        command_pb2.COMMAND_KIND_RETURN,
    ):
        assert not apply_command(drone, command(kind, target=(114.45, 30.5)))
        assert drone.mode == DOCKED
    assert apply_command(drone, command(command_pb2.COMMAND_KIND_LAUNCH, target=(114.45, 30.5)))
    assert drone.mode == TAKING_OFF


def test_return_during_the_launch_delay_calls_the_launch_off() -> None:
    drone = docked_drone(launch_delay_s=10.0)
    apply_command(drone, command(command_pb2.COMMAND_KIND_LAUNCH, target=(114.45, 30.5)))
    step(drone, 2.0)
    assert apply_command(drone, command(command_pb2.COMMAND_KIND_RETURN))
    assert drone.mode == DOCKED and drone.mission_id == ""


def test_return_to_another_nest_repositions_a_docked_drone() -> None:
    drone = docked_drone(launch_delay_s=5.0)
    other = destination_point(*NEST, 300.0, 2000.0)
    relocate = command(command_pb2.COMMAND_KIND_RETURN, mission="")
    relocate.nest_id = "nest-02"
    assert apply_command(drone, relocate, nests={"nest-01": NEST, "nest-02": other})
    assert drone.mode == TAKING_OFF and drone.home_nest_id == "nest-02"
    run_until(drone, RETURNING)
    run_until(drone, DOCKED)
    assert (drone.lon, drone.lat) == other


def test_a_launch_without_a_mission_naming_another_nest_relocates_a_docked_drone() -> None:
    drone = docked_drone(launch_delay_s=5.0)
    other = destination_point(*NEST, 300.0, 2000.0)
    relocate = command(command_pb2.COMMAND_KIND_LAUNCH, target=other, mission="")
    relocate.nest_id = "nest-02"
    assert apply_command(drone, relocate, nests={"nest-01": NEST, "nest-02": other})
    assert drone.mode == TAKING_OFF and drone.home_nest_id == "nest-02"
    run_until(drone, DOCKED)
    assert (drone.lon, drone.lat) == other and drone.mission_id == ""


def test_the_drone_follows_the_planned_path_before_the_target() -> None:
    drone = docked_drone(launch_delay_s=0.0)
    waypoint = destination_point(*NEST, 0.0, 1000.0)
    scene = destination_point(*waypoint, 90.0, 1000.0)
    launch = command(command_pb2.COMMAND_KIND_LAUNCH, target=scene, hold=10)
    launch.path_lon.append(waypoint[0])
    launch.path_lat.append(waypoint[1])
    apply_command(drone, launch)
    # the dog-leg is 2 km, the straight line about 1.41 km: 2000 / 15 ≈ 133 s of cruise
    cruise = run_until(drone, HOVERING) - 100.0 / 5.0
    assert cruise == pytest.approx(2000.0 / 15.0, abs=2.0)


# -- fleet ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    return load_reference()


def test_fleet_reports_docked_at_half_a_hertz_staggered_and_airborne_at_five(reference) -> None:  # type: ignore[no-untyped-def]
    start = 1_700_000_000_000
    fleet = Fleet(reference, start_ms=start, seq_base=500, rates=ReportRates())
    assert len(fleet) == len(reference.drones)

    per_tick: list[int] = []
    records = []
    assert not fleet.all_reported
    for i in range(1, 101):  # 10 s of 0.1 s ticks, all docked
        due = fleet.tick(start + i * 100, 0.1)
        per_tick.append(len(due))
        records.extend(due)
        if i == 6:  # the first reports are spread over the first half second
            assert fleet.all_reported
    # 0.5 Hz for 10 s: 5 reports each, spread over the ticks rather than in one burst
    assert len(records) == pytest.approx(5 * len(fleet), abs=len(fleet))
    assert max(per_tick) <= len(fleet) // 5 + 2

    drone_id = next(iter(fleet.drones))
    lon, lat = fleet.nests[fleet.drones[drone_id].home_nest_id]
    launch = command(command_pb2.COMMAND_KIND_LAUNCH, target=(lon + 0.02, lat))
    launch.drone_id = drone_id
    assert fleet.apply(launch)
    assert fleet.airborne == 1
    mine: list[telemetry_pb2.Telemetry] = []
    for i in range(101, 201):  # 10 s airborne
        mine.extend(r for r in fleet.tick(start + i * 100, 0.1) if r.drone_id == drone_id)
    assert len(mine) == pytest.approx(50, abs=2)
    assert all(r.mission_id == "m-1" and r.nest_id for r in mine)

    seqs = [r.seq for r in records if r.drone_id == drone_id] + [r.seq for r in mine]
    assert seqs[0] > 500
    assert all(b > a for a, b in itertools.pairwise(seqs))
    assert all(0.0 <= r.heading_deg < 360.0 for r in mine)


def test_fleet_reports_a_mode_change_at_once(reference) -> None:  # type: ignore[no-untyped-def]
    start = 1_700_000_000_000
    fleet = Fleet(reference, start_ms=start, rates=ReportRates(airborne_hz=0.1, docked_hz=0.1))
    drone_id = next(iter(fleet.drones))
    fleet.tick(start, 0.1)
    launch = command(command_pb2.COMMAND_KIND_LAUNCH, target=(114.45, 30.5))
    launch.drone_id = drone_id
    fleet.apply(launch)
    due = [r for r in fleet.tick(start + 100, 0.1) if r.drone_id == drone_id]
    assert [r.flight_mode for r in due] == [TAKING_OFF]


def test_unknown_drone_commands_do_not_apply(reference) -> None:  # type: ignore[no-untyped-def]
    fleet = Fleet(reference, start_ms=0)
    launch = command(command_pb2.COMMAND_KIND_LAUNCH, target=(114.45, 30.5))
    launch.drone_id = "no-such-drone"
    assert not fleet.apply(launch)


# -- incidents ------------------------------------------------------------------------------------


def test_generated_incidents_are_inside_the_zone_outside_no_fly_zones(reference) -> None:  # type: ignore[no-untyped-def]
    generator = IncidentGenerator(reference, seed=11)
    no_fly = [g.ring for g in reference.geofences if g.kind in NO_FLY_KINDS]
    assert no_fly
    codes = {t.code for t in reference.incident_types}
    for _ in range(300):
        incident = generator.next()
        lon, lat = incident.point
        assert point_in_polygon(lon, lat, reference.zone.boundary)
        assert not any(point_in_polygon(lon, lat, ring) for ring in no_fly)
        body = incident.body
        assert body["type"] in codes
        assert 1 <= body["priority"] <= 4
        assert body["location"]["type"] == "Point"
        assert body["drones_needed"] == 1 and body["on_scene_seconds"] == 120
        kind = next(t for t in reference.incident_types if t.code == body["type"])
        assert body["priority"] == kind.default_priority
        assert body["required_capabilities"] == list(kind.required_capabilities)


def test_generated_incidents_come_from_the_types_of_their_department(reference) -> None:  # type: ignore[no-untyped-def]
    generator = IncidentGenerator(reference, seed=3, departments=["fire"])
    fire_types = {t.code for t in reference.incident_types if "fire" in t.departments}
    for _ in range(50):
        incident = generator.next()
        assert incident.department == "fire"
        if fire_types:
            assert incident.body["type"] in fire_types


def test_the_same_seed_draws_the_same_incidents(reference) -> None:  # type: ignore[no-untyped-def]
    a, b = IncidentGenerator(reference, seed=5), IncidentGenerator(reference, seed=5)
    assert [a.next().body for _ in range(20)] == [b.next().body for _ in range(20)]
    assert (
        IncidentGenerator(reference, seed=5).next().body
        != IncidentGenerator(reference, seed=6).next().body
    )
