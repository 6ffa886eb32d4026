"""Unit tests of coverage: reach of one drone, the grid, and the full reference fleet."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from airgrid.config import Settings
from airgrid.geo import LocalProjection, destination_point, point_in_polygon
from airgrid.nofly import NoFlyZone
from airgrid.reference import load_reference
from services.dispatch.coverage import CoverageKeeper
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.coverage import CoverageGrid, Reacher, reach_m, reachers_of
from services.dispatch.domain.model import DroneOrder, DroneView, NestView, OrderKind
from tests.builders import drone_view, nest_view

NEST = nest_view("nest-a")


def drone(**overrides: object) -> DroneView:
    """Drone d1, visual, docked at NEST."""
    values: dict[str, object] = {"home_nest": NEST.id, "lon": NEST.lon, "lat": NEST.lat}
    return drone_view("d1", **{**values, **overrides})


def test_a_docked_drone_reaches_what_it_can_cruise_after_launch_and_climb() -> None:
    # 300 s - 20 s launch - 24 s climb = 256 s at 15 m/s
    assert reach_m(drone(), {NEST.id: NEST}, sla_seconds=300, reserve_pct=20) == pytest.approx(
        256 * 15.0
    )


def test_an_airborne_drone_has_no_launch_overhead() -> None:
    reach = reach_m(drone(airborne=True), {}, sla_seconds=300, reserve_pct=20)
    assert reach == pytest.approx(300 * 15.0)


def test_the_battery_bounds_the_reach() -> None:
    low = reach_m(drone(battery_pct=30.0), {}, sla_seconds=300, reserve_pct=20)
    # usable 240 s - 44 s overhead - 120 s on scene = 76 s, half out: 38 s at 15 m/s
    assert low == pytest.approx(38 * 15.0)
    assert reach_m(drone(battery_pct=20.0), {}, sla_seconds=300, reserve_pct=20) == 0.0


@pytest.mark.parametrize(
    ("change", "nest"),
    [
        ({"link_ok": False}, NEST),
        ({"faults": ("battery_fault",)}, NEST),
        ({"active": False}, NEST),
        ({}, replace(NEST, online=False)),
        ({}, replace(NEST, wind_mps=15.0)),
    ],
)
def test_drones_that_cannot_fly_now_reach_nothing(
    change: dict[str, object], nest: NestView
) -> None:
    assert reach_m(drone(**change), {nest.id: nest}, sla_seconds=300, reserve_pct=20) == 0.0


def test_grid_counts_cells_within_reach_of_each_drone() -> None:
    projection = LocalProjection(NEST.lon, NEST.lat)
    square = [
        projection.to_lon_lat(x, y)
        for x, y in [(-5000, -5000), (5000, -5000), (5000, 5000), (-5000, 5000), (-5000, -5000)]
    ]
    grid = CoverageGrid(square, projection, cell_m=250.0)
    assert len(grid) == 40 * 40
    centre = grid.snapshot([Reacher("a", 0.0, 0.0, 3000.0)])
    # A disc of 3 km in a 10 km square: about pi * 9 / 100 of the area.
    assert centre.ratio == pytest.approx(math.pi * 9 / 100, abs=0.01)
    assert grid.snapshot([]).ratio == 0.0
    both = grid.counts([Reacher("a", 0.0, 0.0, 3000.0), Reacher("b", 0.0, 0.0, 3000.0)])
    assert int(both.max()) == 2
    everywhere = grid.snapshot([Reacher("a", 0.0, 0.0, 10_000.0)])
    assert everywhere.ratio == 1.0
    assert everywhere.uncovered() == []
    assert everywhere.area_km2 == pytest.approx(100.0)


def test_uncovered_cells_are_closed_rings_inside_the_zone() -> None:
    reference = load_reference(None)
    projection = LocalProjection(*reference.zone.centre)
    grid = CoverageGrid(reference.zone.boundary, projection)
    snapshot = grid.snapshot([])
    assert snapshot.uncovered()[:3] == [0, 1, 2]
    ring = grid.cell_ring(0)
    assert ring[0] == ring[-1] and len(ring) == 5
    lon = sum(p[0] for p in ring[:4]) / 4
    lat = sum(p[1] for p in ring[:4]) / 4
    assert point_in_polygon(lon, lat, reference.zone.boundary)


def test_the_reference_fleet_docked_and_charged_covers_the_whole_zone() -> None:
    reference = load_reference(None)
    projection = LocalProjection(*reference.zone.centre)
    grid = CoverageGrid(reference.zone.boundary, projection, cell_m=250.0)
    # The zone is about 518 km²: cells of 250 m cover it to within a few per cent.
    assert len(grid) * 0.0625 == pytest.approx(reference.zone.area_km2, rel=0.03)
    nests = {n.id: NestView(n.id, n.lon, n.lat) for n in reference.nests}
    drones = [
        drone(
            id=d.id,
            home_nest=d.home_nest,
            cruise_speed_mps=d.cruise_speed_mps,
            endurance_s=d.endurance_s,
            cruise_altitude_m=d.cruise_altitude_m,
            lon=nests[d.home_nest].lon,
            lat=nests[d.home_nest].lat,
        )
        for d in reference.drones
    ]
    reachers = reachers_of(drones, nests, projection, sla_seconds=300, reserve_pct=20)
    assert len(reachers) == len(reference.drones)
    assert grid.snapshot(reachers).ratio == 1.0
    # Far from every nest nothing reaches: a drone out of the zone covers none of it.
    away = destination_point(*reference.zone.centre, 90.0, 100_000.0)
    lone = reachers_of([drone(lon=away[0], lat=away[1])], {}, projection, sla_seconds=300,
                       reserve_pct=20)  # fmt: skip
    assert grid.snapshot(lone).ratio == 0.0


def _core_with_fleet(out_of_service: set[str]) -> DispatchCore:
    """The reference fleet docked and charged; drones of out_of_service nests lost link."""
    ref = load_reference(None)
    core = DispatchCore(origin=ref.zone.centre)
    nests = {n.id: NestView(n.id, n.lon, n.lat) for n in ref.nests}
    for nest in nests.values():
        core.upsert_nest(nest)
    for d in ref.drones:
        home = nests[d.home_nest]
        view = drone(
            id=d.id,
            home_nest=d.home_nest,
            capabilities=frozenset(d.capabilities),
            lon=home.lon,
            lat=home.lat,
            link_ok=d.home_nest not in out_of_service,
        )
        core.upsert_drone(view, 1000)
    return core


def test_the_keeper_fills_holes_but_never_at_a_nest_reported_offline() -> None:
    reference = load_reference(None)
    gone = set(sorted(n.id for n in reference.nests)[::2])  # every other nest's drones out
    core = _core_with_fleet(gone)
    keeper = CoverageKeeper(reference, Settings())
    assert keeper.snapshot(core).ratio < 0.95
    orders = [o for o in keeper.rebalance(core, 10_000) if isinstance(o, DroneOrder)]
    assert orders and all(o.kind == OrderKind.LAUNCH and o.nest_id for o in orders)
    first = orders[0].nest_id
    # Same world, but the gateway of the first target reports its docked drones offline.
    held = _core_with_fleet(gone)
    for d in reference.drones:
        if d.home_nest == first:
            held.upsert_drone(replace(held.drones[d.id], link_ok=True, faults=("nest_offline",)))
    again = [
        o for o in CoverageKeeper(reference, Settings()).rebalance(held, 10_000)
        if isinstance(o, DroneOrder)
    ]  # fmt: skip
    assert again and first not in {o.nest_id for o in again}
    assert keeper.rebalance(core, 11_000) == []  # within the interval: no second pass


def test_a_docked_drone_is_moved_by_a_launch_to_land_at_its_new_nest_never_a_return() -> None:
    """An autopilot reads RETURN as "back to your launch point", which a docked, disarmed
    vehicle refuses: a move between nests is a LAUNCH without a mission, along a path around
    the no-fly zones, to the nest it names, where the drone lands (no hold)."""
    reference = load_reference(None)
    core = _core_with_fleet(set(sorted(n.id for n in reference.nests)[::2]))
    for fence in reference.geofences:
        if fence.kind in ("no-fly", "temporary"):
            core.upsert_zone(NoFlyZone(fence.id, tuple((p[0], p[1]) for p in fence.ring)))
    decisions = CoverageKeeper(reference, Settings()).rebalance(core, 10_000)
    orders = [d for d in decisions if isinstance(d, DroneOrder)]
    assert orders and len(orders) == len(decisions)
    for order in orders:
        drone, nest = core.drones[order.drone_id], core.nests[order.nest_id]
        assert not drone.airborne and (drone.lon, drone.lat) != (nest.lon, nest.lat)
        assert order.kind == OrderKind.LAUNCH and order.mission_id == ""
        assert order.hold_seconds == 0 and order.target == (nest.lon, nest.lat)
        assert order.path and order.path[-1] == pytest.approx(order.target, abs=1e-9)
        assert order.path == core.path_to(drone, nest.lon, nest.lat)
