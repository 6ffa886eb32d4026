"""The twin's start states: all docked, or mid-operation (the fleet as the last half hour of
the same load leaves it). Pure: seeded, physically consistent, and the run's own incidents do
not change with the start."""

from __future__ import annotations

import pytest

from airgrid.geo import haversine_m, point_in_polygon
from airgrid.reference import load_reference
from airgrid.sim.faults import weather_of
from airgrid.sim.fleet import Fleet
from airgrid.sim.load import LoadModel
from airgrid.sim.physics import CRITICAL_BATTERY_PCT, DOCKED, LANDING, RETURNING, step
from airgrid.sim.start_state import RESERVE_PCT, PastLoad, Sortie, mid_operation

REFERENCE = load_reference(None)
NO_FLY = [g.ring for g in REFERENCE.geofences if g.kind in ("no-fly", "temporary")]


def mid_operation_fleet(
    seed: int, profile: str = "busy", rate_per_min: float | None = None
) -> tuple[Fleet, list[Sortie]]:
    load = LoadModel(REFERENCE, profile=profile, rate_per_min=rate_per_min, seed=seed)
    sorties: list[Sortie] = []
    past = PastLoad(load.rate_at, load.scene_point, load.on_scene_seconds, load.allowed)
    weather = weather_of(seed)
    fleet = Fleet(
        REFERENCE,
        start_ms=0,
        weather=weather,
        initial_state=lambda d: sorties.extend(mid_operation(d, past, weather=weather, seed=seed)),
    )
    return fleet, sorties


def state(fleet: Fleet) -> list[tuple[str, int, float, float, float, float]]:
    return [
        (d.spec.id, d.mode, d.lon, d.lat, round(d.alt_m, 6), round(d.battery_pct, 6)) for d in fleet
    ]


def test_the_docked_start_is_every_drone_docked_and_full() -> None:
    fleet = Fleet(REFERENCE, start_ms=0)
    assert fleet.airborne == 0
    assert all(d.battery_pct == 100.0 and (d.lon, d.lat) == (d.home_lon, d.home_lat) for d in fleet)


def test_mid_operation_is_reproducible_from_the_seed() -> None:
    a, sorties_a = mid_operation_fleet(7)
    b, sorties_b = mid_operation_fleet(7)
    c, _ = mid_operation_fleet(8)
    assert state(a) == state(b) and sorties_a == sorties_b
    assert state(a) != state(c)


def test_the_runs_incidents_do_not_change_with_the_start() -> None:
    # The warm-up draws its earlier incidents with a random of its own.
    load = LoadModel(REFERENCE, profile="busy", seed=7)
    before = LoadModel(REFERENCE, profile="busy", seed=7).schedule(600)
    past = PastLoad(load.rate_at, load.scene_point, load.on_scene_seconds, load.allowed)
    Fleet(
        REFERENCE,
        start_ms=0,
        initial_state=lambda d: mid_operation(d, past, weather=weather_of(7), seed=7),
    )
    assert load.schedule(600) == before


@pytest.mark.parametrize("seed", [1, 7, 12])
def test_mid_operation_is_physically_consistent(seed: int) -> None:
    fleet, sorties = mid_operation_fleet(seed)
    airborne = [d for d in fleet if d.mode != DOCKED]
    # Busy at 10:00 (~7 incidents a minute): about 200 sorties in the half hour, and some
    # ten to thirty drones still on their way home (rate x time home, Little's law).
    assert 150 < len(sorties) < 260
    assert 5 <= len(airborne) <= 40
    assert sum(s.airborne_at_start for s in sorties) == len(airborne)
    for d in airborne:
        assert d.mode in (RETURNING, LANDING)
        assert d.mission_id == "" and d.target is None and not d.path  # earlier missions closed
        if d.mode == RETURNING:
            assert d.alt_m == pytest.approx(d.spec.cruise_altitude_m)
        else:
            assert 0.0 < d.alt_m <= d.spec.cruise_altitude_m
            assert (d.lon, d.lat) == (d.home_lon, d.home_lat)  # landing is straight down
        assert point_in_polygon(d.lon, d.lat, REFERENCE.zone.boundary)
        assert not any(point_in_polygon(d.lon, d.lat, ring) for ring in NO_FLY)
    for d in fleet:
        # Every sortie comes home with the reserve; the docks charged the rest since.
        assert RESERVE_PCT <= d.battery_pct <= 100.0
        if d.mode == DOCKED:
            assert (d.lon, d.lat) == (d.home_lon, d.home_lat) and d.alt_m == 0.0
    docked_part_charged = [d for d in fleet if d.mode == DOCKED and d.battery_pct < 99.0]
    assert docked_part_charged  # drones back from earlier sorties are still charging


def test_drones_heading_home_at_the_start_land_at_their_nest_with_charge_left() -> None:
    fleet, _ = mid_operation_fleet(7)
    airborne = [d for d in fleet if d.mode != DOCKED]
    assert airborne
    assert any(haversine_m(d.lon, d.lat, d.home_lon, d.home_lat) > 500 for d in airborne)
    for d in airborne:
        for _ in range(3600):
            step(d, 1.0)
            if d.mode == DOCKED:
                break
        assert d.mode == DOCKED and (d.lon, d.lat) == (d.home_lon, d.home_lat)
        assert d.battery_pct > CRITICAL_BATTERY_PCT


def test_the_fleet_reports_drones_in_the_air_at_once_then_at_five_hertz() -> None:
    fleet, _ = mid_operation_fleet(7)
    airborne = {d.spec.id for d in fleet if d.mode != DOCKED}
    assert fleet.by_status()["returning"] + fleet.by_status()["landing"] == len(airborne)
    first_second: set[str] = set()
    second_second: dict[str, int] = {}
    for tick in range(1, 21):  # two seconds in ticks of 0.1 s
        for record in fleet.tick(tick * 100, 0.1):
            if tick <= 10:
                first_second.add(record.drone_id)
            else:
                second_second[record.drone_id] = second_second.get(record.drone_id, 0) + 1
    assert airborne <= first_second
    still_up = {d.spec.id for d in fleet if d.mode != DOCKED}
    assert still_up and all(second_second[drone_id] >= 5 for drone_id in still_up)


def test_no_load_before_means_no_sortie_and_a_quiet_load_means_fewer() -> None:
    fleet, sorties = mid_operation_fleet(7, rate_per_min=0.0)
    assert not sorties and fleet.airborne == 0
    assert all(d.battery_pct == 100.0 for d in fleet)
    _, nominal = mid_operation_fleet(7, profile="nominal")
    _, busy = mid_operation_fleet(7, profile="busy")
    assert len(nominal) < len(busy)
