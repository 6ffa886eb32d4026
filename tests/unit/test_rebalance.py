"""Unit tests of the rebalancing planner: pure, deterministic, closes holes without opening
bigger ones."""

from __future__ import annotations

from airgrid.geo import LocalProjection
from services.dispatch.domain.coverage import CoverageGrid, Reacher
from services.dispatch.domain.rebalance import (
    Donor,
    NestSite,
    Rebalancer,
    RebalanceSettings,
)

PROJECTION = LocalProjection(114.40, 30.48)
REACH = 3000.0


def strip_grid() -> CoverageGrid:
    """A 20 km x 4 km strip; nests at x = -8, 0 and +8 km cover it only all together."""
    ring = [
        PROJECTION.to_lon_lat(x, y)
        for x, y in [(-10_000, -2000), (10_000, -2000), (10_000, 2000), (-10_000, 2000)]
    ]
    ring.append(ring[0])
    return CoverageGrid(ring, PROJECTION, cell_m=250.0)


SITES = [NestSite("west", -7000.0, 0.0), NestSite("mid", 0.0, 0.0), NestSite("east", 7000.0, 0.0)]


def donor(drone_id: str, site: NestSite, battery: float = 100.0) -> Donor:
    return Donor(drone_id, site.id, site.x, site.y, REACH, battery)


def reacher(d: Donor) -> Reacher:
    return Reacher(d.drone_id, d.x, d.y, d.reach_m)


def test_a_spare_drone_moves_to_the_empty_nest() -> None:
    west, mid, _ = SITES
    # Two drones at west, one at mid, none at east: east is a hole.
    donors = [donor("d1", west), donor("d2", west), donor("d3", mid)]
    planner = Rebalancer()
    moves = planner.plan(
        grid=strip_grid(),
        reachers=[reacher(d) for d in donors],
        donors=donors,
        sites=SITES,
        now_ms=1000,
    )
    assert [(m.drone_id, m.from_nest_id, m.to_nest_id) for m in moves] == [("d1", "west", "east")]
    assert moves[0].loss_cells == 0 and moves[0].gain_cells > 0
    assert planner.in_transit == {"d1": ("east", 1000)}


def test_the_same_inputs_give_the_same_moves() -> None:
    west, mid, _ = SITES
    donors = [donor("d2", west), donor("d1", west), donor("d3", mid)]

    def run() -> list[object]:
        return list(
            Rebalancer().plan(
                grid=strip_grid(),
                reachers=[reacher(d) for d in donors],
                donors=donors,
                sites=SITES,
                now_ms=5,
            )
        )

    assert run() == run()


def test_a_drone_in_transit_counts_at_its_destination_and_is_not_sent_twice() -> None:
    west, mid, _ = SITES
    donors = [donor("d1", west), donor("d2", west), donor("d3", mid), donor("d4", mid)]
    planner = Rebalancer()
    grid = strip_grid()
    first = planner.plan(
        grid=grid, reachers=[reacher(d) for d in donors], donors=donors, sites=SITES, now_ms=0
    )
    assert len(first) == 1
    again = planner.plan(
        grid=grid, reachers=[reacher(d) for d in donors], donors=donors, sites=SITES, now_ms=5000
    )
    assert again == []


def test_no_move_opens_a_bigger_hole_than_it_closes() -> None:
    west, mid, _ = SITES
    # One drone per nest at west and mid: moving either uncovers as much as it covers.
    donors = [donor("d1", west), donor("d3", mid)]
    moves = Rebalancer().plan(
        grid=strip_grid(),
        reachers=[reacher(d) for d in donors],
        donors=donors,
        sites=SITES,
        now_ms=0,
    )
    assert moves == []


def test_low_batteries_disabled_planner_and_full_coverage_move_nothing() -> None:
    west, mid, east = SITES
    grid = strip_grid()
    weak = [donor("d1", west, battery=40.0), donor("d2", west, battery=40.0), donor("d3", mid)]
    assert (
        Rebalancer().plan(
            grid=grid, reachers=[reacher(d) for d in weak], donors=weak, sites=SITES, now_ms=0
        )
        == []
    )
    spare = [donor("d1", west), donor("d2", west), donor("d3", mid)]
    off = Rebalancer(RebalanceSettings(enabled=False))
    assert (
        off.plan(
            grid=grid, reachers=[reacher(d) for d in spare], donors=spare, sites=SITES, now_ms=0
        )
        == []
    )
    full = [donor("d1", west), donor("d2", west), donor("d3", mid), donor("d4", east)]
    assert (
        Rebalancer().plan(
            grid=grid, reachers=[reacher(d) for d in full], donors=full, sites=SITES, now_ms=0
        )
        == []
    )


def test_settle_forgets_arrived_reassigned_and_timed_out_moves() -> None:
    planner = Rebalancer(RebalanceSettings(transit_timeout_s=60))
    planner.in_transit = {"a": ("east", 0), "b": ("east", 0), "c": ("east", 0), "d": ("mid", 0)}
    planner.settle(docked_at={"a": "east"}, idle={"a", "c", "d"}, now_ms=10_000)
    assert planner.in_transit == {"c": ("east", 0), "d": ("mid", 0)}
    planner.settle(docked_at={}, idle={"c", "d"}, now_ms=61_000)
    assert planner.in_transit == {}


def test_patrol_budget_is_zero_while_the_fleet_is_stretched() -> None:
    from services.dispatch.domain.rebalance import PatrolPolicy, patrol_budget

    policy = PatrolPolicy(min_coverage=0.99, min_idle_share=0.5, max_share=0.2)
    # A quiet fleet of 100: at most 20 on patrol at once.
    assert patrol_budget(policy, fleet=100, idle=100, patrolling=0, coverage=1.0) == 20
    assert patrol_budget(policy, fleet=100, idle=80, patrolling=15, coverage=1.0) == 5
    # Only the idle drones above half the fleet may go.
    assert patrol_budget(policy, fleet=100, idle=53, patrolling=0, coverage=1.0) == 3
    assert patrol_budget(policy, fleet=100, idle=40, patrolling=0, coverage=1.0) == 0
    # A hole in coverage stops new patrols whatever the idle count.
    assert patrol_budget(policy, fleet=100, idle=100, patrolling=0, coverage=0.98) == 0
    assert patrol_budget(policy, fleet=0, idle=0, patrolling=0, coverage=1.0) == 0
    off = PatrolPolicy(enabled=False)
    assert patrol_budget(off, fleet=100, idle=10, patrolling=50, coverage=0.5) == 100


def test_the_keeper_moves_a_scarce_capability_into_the_cells_only_its_class_left() -> None:
    from dataclasses import replace

    from airgrid.config import Settings
    from airgrid.reference import load_reference
    from services.dispatch.coverage import CoverageKeeper
    from services.dispatch.domain.model import DroneOrder, OrderKind
    from tests.unit.test_patrol_budget import _docked_reference_fleet

    reference = load_reference(None)
    core = _docked_reference_fleet()
    gas = sorted(d.id for d in reference.drones if "gas_sensor" in d.capabilities)
    centre_lon = reference.zone.centre[0]
    east = {n.id for n in reference.nests if n.lon > centre_lon}
    kept = {core.drones[i].home_nest for i in gas} & east
    assert kept and len(kept) < len(gas)
    # Every gas-sensor drone in the west is busy elsewhere (lost link here).
    for drone_id in gas:
        if core.drones[drone_id].home_nest not in kept:
            core.upsert_drone(replace(core.drones[drone_id], link_ok=False), 2000)
    keeper = CoverageKeeper(reference, Settings())
    assert keeper.snapshot(core).ratio >= 0.995  # the zone itself is still covered
    orders = [o for o in keeper.rebalance(core, 10_000) if isinstance(o, DroneOrder)]
    moved = [o for o in orders if o.drone_id in gas]
    assert moved and all(o.kind == OrderKind.LAUNCH and o.nest_id not in kept for o in moved)
    assert all(core.drones[o.drone_id].home_nest in kept for o in moved)
    # A second keeper over the same world makes the same moves.
    again = CoverageKeeper(reference, Settings()).rebalance(core, 10_000)
    assert [(o.drone_id, o.nest_id) for o in again if isinstance(o, DroneOrder)] == [
        (o.drone_id, o.nest_id) for o in orders
    ]
