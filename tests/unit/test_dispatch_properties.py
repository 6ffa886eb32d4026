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

The world and the strategies are in dispatch_strategies.py, the referee and its oracle in
dispatch_referee.py, and the loop that runs a scenario in dispatch_scenario_runner.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings

from airgrid.nofly import NoFlyZone
from services.dispatch.domain.model import Assigned, DroneView, IncidentRequest, Queued
from tests.unit.dispatch_scenario_runner import new_core, run
from tests.unit.dispatch_strategies import LAT, LON, fleets, ops, zone_sets

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
