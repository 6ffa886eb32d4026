"""Freshness-driven patrols: the weighting, the greedy sortie, and hypothesis properties of the
core's tick on random fleets, freshness views and waiting incidents:

- no patrol starts while an incident waits (its drones are the incident's), and a patrol gives
  its drone up to an incident that needs it;
- every sortie's battery covers launch, the loop over its cells and back, and the reserve, by
  an oracle of this module (haversine lengths, not the core's projection);
- every cell a sortie flies over is overdue at the tick (weight above 1), no cell is on two
  sorties, and each nest keeps its docked drones and the patrol budget holds;
- the same inputs give the same decisions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airgrid.geo import haversine_m
from airgrid.v1.telemetry_pb2 import FlightMode
from services.dispatch.domain.core import CoreSettings, DispatchCore
from services.dispatch.domain.fresh_sorties import (
    NEVER_SEEN,
    NEVER_SEEN_WEIGHT,
    DueCell,
    FreshnessView,
    cell_weight,
    overdue_weights,
    plan_sortie,
)
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneView,
    IncidentRequest,
    NestView,
    PatrolStarted,
    Preempted,
)
from services.dispatch.domain.patrols import PatrolRoute

LON, LAT = 114.40, 30.48
NESTS = (
    NestView("nest-a", LON, LAT),
    NestView("nest-b", LON + 0.06, LAT + 0.03),
    NestView("nest-c", LON - 0.04, LAT + 0.05),
)
RESERVE_PCT = 20.0
NOW = 50_000_000


def drone(n: int, nest: NestView, battery: float = 100.0) -> DroneView:
    return DroneView(
        f"drone-{n:03d}", nest.id, frozenset({"visual"}), 15.0, 5.0, 120.0, 20.0, 1800.0,
        lon=nest.lon, lat=nest.lat, battery_pct=battery, airborne=False, link_ok=True,
    )  # fmt: skip


def due(cell: int, lon: float, lat: float, seen_s_ago: float | None, interval_s: float) -> DueCell:
    reference = NEVER_SEEN if seen_s_ago is None else NOW - int(seen_s_ago * 1000)
    return DueCell(cell, lon, lat, reference, interval_s)


def core_of(
    drones: list[DroneView], view: FreshnessView, *, keep: int = 1, budget: int | None = None
) -> DispatchCore:
    core = DispatchCore(
        settings=CoreSettings(reserve_pct=RESERVE_PCT, patrol_keep_docked=keep),
        origin=(LON, LAT),
    )
    for nest in NESTS:
        core.upsert_nest(nest)
    for d in drones:
        core.upsert_drone(d, NOW - 1000)
    core.set_freshness(view)
    core.patrol_budget = budget
    return core


# -- the weighting ----------------------------------------------------------------------------


def test_weight_is_time_since_reference_over_interval() -> None:
    assert cell_weight(NOW - 1_800_000, 1200.0, NOW) == 1.5
    assert cell_weight(NOW - 1_200_000, 1200.0, NOW) == 1.0
    assert cell_weight(NEVER_SEEN, 1200.0, NOW) == NEVER_SEEN_WEIGHT


def test_only_overdue_cells_weigh_and_the_strictest_plan_decides() -> None:
    view = FreshnessView(
        (
            due(1, LON, LAT, 1200.0, 1200.0),  # exactly at its deadline: still fresh
            due(2, LON, LAT, 3600.0, 86400.0),  # a daily plan, an hour since: fresh
            due(2, LON, LAT, 3600.0, 1200.0),  # the same cell, a 20-min corridor: weight 3
            due(3, LON, LAT, None, 600.0),
        ),
        planned=True,
    )
    weights = overdue_weights(view, NOW)
    assert set(weights) == {2, 3}
    assert weights[2][0] == 3.0
    assert weights[3][0] == NEVER_SEEN_WEIGHT


def test_the_sortie_prefers_weight_over_distance_and_fits_the_range() -> None:
    cells = {
        1: (1.1, (500.0, 0.0)),  # near, barely late
        2: (9.0, (2000.0, 0.0)),  # farther, very late
        3: (50.0, (40_000.0, 0.0)),  # latest of all, out of reach
    }
    assert plan_sortie((0.0, 0.0), cells, 10_000.0)[0] == 2
    assert plan_sortie((0.0, 0.0), cells, 10_000.0) == [2, 1]
    assert plan_sortie((0.0, 0.0), cells, 3_000.0) == [1]
    assert plan_sortie((0.0, 0.0), cells, 500.0) == []


def test_without_plans_the_lawn_mower_routes_fly_and_with_plans_only_overdue_cells() -> None:
    route = PatrolRoute("nest-a/r0", "nest-a", ((LON + 0.01, LAT),), 2000.0)
    fleet = [drone(i, NESTS[0]) for i in range(3)]
    core = core_of(fleet, FreshnessView())
    core.set_patrol_routes([route])
    [started] = [d for d in core.tick(NOW) if isinstance(d, PatrolStarted)]
    assert started.route_id == "nest-a/r0"
    # Plans known, nothing overdue: no sortie, and no lawn-mower either.
    fresh = FreshnessView((due(7, LON + 0.01, LAT, 60.0, 1200.0),), planned=True)
    core = core_of(fleet, fresh)
    core.set_patrol_routes([route])
    assert not [d for d in core.tick(NOW) if isinstance(d, PatrolStarted)]
    # One overdue cell: the sortie goes there, not along the lawn-mower route.
    late = FreshnessView(
        (due(7, LON + 0.01, LAT, 60.0, 1200.0), due(8, LON, LAT + 0.02, 4000.0, 1200.0)),
        planned=True,
    )
    core = core_of(fleet, late)
    core.set_patrol_routes([route])
    decisions = core.tick(NOW)
    [started] = [d for d in decisions if isinstance(d, PatrolStarted)]
    [assigned] = [d for d in decisions if isinstance(d, Assigned)]
    [(lon, lat)] = assigned.assignments[0].path
    assert haversine_m(lon, lat, LON, LAT + 0.02) < 1.0
    # Sent within the patrol interval: the cell is not sent again.
    assert not [d for d in core.tick(NOW + 1000) if isinstance(d, PatrolStarted)]


def test_a_fresh_patrol_gives_its_drone_to_an_incident_that_needs_it() -> None:
    far = LON + 0.05
    view = FreshnessView((due(1, far, LAT, None, 1200.0),), planned=True)
    core = core_of([drone(i, NESTS[0]) for i in range(2)], view)
    decisions = core.tick(NOW)
    [patrol] = [d for d in decisions if isinstance(d, PatrolStarted)]
    [sortie] = [d for d in decisions if isinstance(d, Assigned)]
    patrol_drone = sortie.assignments[0].drone_id
    d = core.drones[patrol_drone]
    airborne = replace(
        d, airborne=True, reported_mission=sortie.assignments[0].mission_id,
        mode=FlightMode.FLIGHT_MODE_CRUISING, lon=far, lat=LAT,
    )  # fmt: skip
    core.upsert_drone(airborne, NOW + 1000)
    request = IncidentRequest(
        id="inc-1", priority=1, lon=far, lat=LAT + 0.002, required_capabilities=frozenset(),
        drones_needed=1, on_scene_seconds=60, accepted_ms=NOW + 2000, type="fire",
        department="fire",
    )  # fmt: skip
    decisions = core.accept(request, NOW + 2000)
    [preempted] = [d for d in decisions if isinstance(d, Preempted)]
    assert preempted.incident_id == patrol.incident_id
    [assigned] = [d for d in decisions if isinstance(d, Assigned)]
    assert assigned.assignments[0].drone_id == patrol_drone


# -- properties -------------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[DroneView], FreshnessView, int, int | None, bool]:
    drones = []
    for n in range(draw(st.integers(1, 9))):
        nest = NESTS[draw(st.integers(0, len(NESTS) - 1))]
        drones.append(drone(n, nest, draw(st.floats(15.0, 100.0))))
    cells = []
    spots = draw(
        st.lists(st.tuples(st.integers(-12, 12), st.integers(-8, 12)), max_size=40, unique=True)
    )
    for cell, (i, j) in enumerate(spots):  # distinct centres on a 0.01 degree grid
        lon, lat = LON + 0.01 * i, LAT + 0.01 * j
        for _ in range(draw(st.integers(1, 2))):  # one or two plans hold the cell
            seen = draw(st.one_of(st.none(), st.floats(0.0, 20_000.0)))
            cells.append(due(cell, lon, lat, seen, draw(st.sampled_from((600.0, 1200.0, 7200.0)))))
    keep = draw(st.integers(0, 2))
    budget = draw(st.one_of(st.none(), st.integers(0, 4)))
    waiting = draw(st.booleans())
    return drones, FreshnessView(tuple(cells), planned=True), keep, budget, waiting


def run(
    drones: list[DroneView], view: FreshnessView, keep: int, budget: int | None, waiting: bool
) -> tuple[DispatchCore, list[Decision]]:
    core = core_of(drones, view, keep=keep, budget=budget)
    if waiting:  # an incident no drone can serve waits for one: every idle drone is its
        request = IncidentRequest(
            id="inc-w", priority=3, lon=LON, lat=LAT, required_capabilities=frozenset({"gas"}),
            drones_needed=1, on_scene_seconds=60, accepted_ms=NOW - 500, type="fire",
            department="fire",
        )  # fmt: skip
        core.accept(request, NOW - 500)
    return core, core.tick(NOW)


def loop_length_m(home: NestView, path: tuple[tuple[float, float], ...]) -> float:
    points = [(home.lon, home.lat), *path, (home.lon, home.lat)]
    return sum(haversine_m(*a, *b) for a, b in itertools.pairwise(points))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fresh_sorties_are_overdue_flyable_and_never_an_incidents_drones(
    scenario: tuple[list[DroneView], FreshnessView, int, int | None, bool],
) -> None:
    drones, view, keep, budget, waiting = scenario
    _, decisions = run(*scenario)
    started = [d for d in decisions if isinstance(d, PatrolStarted)]
    sorties = [d for d in decisions if isinstance(d, Assigned)]
    if waiting:
        assert not started and not sorties
        return
    assert len(started) == len(sorties)
    event(f"sorties: {min(len(sorties), 3)}")
    if budget is not None:
        assert len(started) <= budget
    weight: dict[int, float] = {}
    for c in view.cells:
        weight[c.cell] = max(
            weight.get(c.cell, -math.inf), cell_weight(c.reference_ms, c.interval_s, NOW)
        )
    centres = {c.cell: (c.lon, c.lat) for c in view.cells}
    by_id = {d.id: d for d in drones}
    nests = {n.id: n for n in NESTS}
    flown: list[int] = []
    sent_from: dict[str, int] = {}
    for sortie in sorties:
        [a] = sortie.assignments
        d = by_id[a.drone_id]
        sent_from[d.home_nest] = sent_from.get(d.home_nest, 0) + 1
        assert a.path
        for lon, lat in a.path:
            cell = min(centres, key=lambda c: haversine_m(lon, lat, *centres[c]))
            assert haversine_m(lon, lat, *centres[cell]) < 1.0
            assert weight[cell] > 1.0, "a sortie flies over a cell that is not overdue"
            flown.append(cell)
        length = loop_length_m(nests[d.home_nest], a.path)
        overhead = d.launch_delay_s + d.cruise_altitude_m / d.climb_rate_mps
        flight_s = 2 * overhead + length / d.cruise_speed_mps
        assert d.battery_pct - 100.0 * flight_s / d.endurance_s >= RESERVE_PCT - 1e-3
    assert len(flown) == len(set(flown)), "a cell on two sorties"
    for nest_id, sent in sent_from.items():
        docked = sum(1 for d in drones if d.home_nest == nest_id)
        assert docked - sent >= keep


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_same_inputs_give_the_same_sorties(
    scenario: tuple[list[DroneView], FreshnessView, int, int | None, bool],
) -> None:
    assert run(*scenario)[1] == run(*scenario)[1]
