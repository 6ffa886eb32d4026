"""The coverage edge's patrol budget: the dispatch core is handed only the patrol routes it
may start now, so routine inspection never takes the drones a surge needs."""

from __future__ import annotations

import math

from airgrid.config import Settings
from airgrid.geo import LocalProjection
from airgrid.reference import load_reference
from services.dispatch.coverage import CoverageKeeper
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import DroneView, NestView
from services.dispatch.domain.patrols import patrol_routes


def _docked_reference_fleet() -> DispatchCore:
    ref = load_reference(None)
    core = DispatchCore(origin=ref.zone.centre)
    for n in ref.nests:
        core.upsert_nest(NestView(n.id, n.lon, n.lat))
    nests = {n.id: n for n in ref.nests}
    for d in ref.drones:
        home = nests[d.home_nest]
        view = DroneView(
            id=d.id,
            home_nest=d.home_nest,
            capabilities=frozenset(d.capabilities),
            cruise_speed_mps=d.cruise_speed_mps,
            climb_rate_mps=d.climb_rate_mps,
            cruise_altitude_m=d.cruise_altitude_m,
            launch_delay_s=d.launch_delay_s,
            endurance_s=d.endurance_s,
            lon=home.lon,
            lat=home.lat,
            battery_pct=100.0,
            link_ok=True,
        )
        core.upsert_drone(view, 1000)
    return core


def test_the_keeper_hands_the_core_patrols_only_within_the_patrol_budget() -> None:
    reference = load_reference(None)
    core = _docked_reference_fleet()
    projection = LocalProjection(*reference.zone.centre)
    routes = patrol_routes(
        reference.zone.boundary, [(n.id, n.lon, n.lat) for n in reference.nests], projection
    )
    core.set_patrol_routes(routes)
    keeper = CoverageKeeper(reference, Settings())
    fleet = len(core.drones)
    budget = keeper.gate_patrols(core, coverage=1.0, idle=fleet)
    assert budget == math.floor(keeper.patrol_policy.max_share * fleet) < len(routes)
    assert len(core.routes) == budget
    core.tick(2000)
    started = {e.request.patrol_route for e in core.incidents.values() if e.request.patrol_route}
    assert 0 < len(started) <= budget
    # The fleet stretched (few idle drones, coverage down): no new patrol, the flying keep on.
    assert keeper.gate_patrols(core, coverage=0.9, idle=fleet // 3) == 0
    assert set(core.routes) == started
    core.tick(3000)
    assert {e.request.patrol_route for e in core.incidents.values()} == started
    # Room again: the routes not flown yet come back, oldest first.
    assert keeper.gate_patrols(core, coverage=1.0, idle=fleet) == max(
        0, math.floor(keeper.patrol_policy.max_share * fleet) - len(started)
    )
