"""What the dispatch core keeps per incident is bounded: a closed incident leaves the live
structures at once, and its id leaves the replay set after the replay horizon (core time)."""

from __future__ import annotations

from dataclasses import replace

from services.dispatch.domain.core import CoreSettings, DispatchCore
from services.dispatch.domain.model import (
    Assigned,
    IncidentRequest,
    Linked,
    NestView,
    SlaAlert,
)
from tests.builders import BASE_LAT, BASE_LON
from tests.unit.test_dispatch_core import drone, incident, main

HORIZON_S = 1800.0
EVERY_S = 400  # one incident (and a duplicate report of it) every 400 s of core time


def core() -> DispatchCore:
    c = DispatchCore(settings=CoreSettings(replay_horizon_s=HORIZON_S))
    c.upsert_nest(NestView("nest-01", BASE_LON, BASE_LAT))
    c.upsert_drone(drone(1))
    return c


def report(n: int, at_ms: int, department: str = "fire") -> IncidentRequest:
    return incident(n, accepted_ms=at_ms, type="fire", department=department)


def serve_and_close(c: DispatchCore, n: int) -> None:
    """Incident n and a duplicate report, an SLA breach, then the mission ends."""
    at = n * EVERY_S * 1000
    [assigned] = main(c.accept(report(n, at)))
    assert isinstance(assigned, Assigned)
    [linked] = c.accept(replace(report(n, at + 1000, "police"), id=f"dup-{n}"))
    assert isinstance(linked, Linked) and linked.primary_id == f"inc-{n}"
    assert any(isinstance(d, SlaAlert) for d in c.tick(at + 301_000))
    c.mission_ended(assigned.assignments[0].mission_id, at + 302_000)


def test_closed_incidents_leave_the_live_structures() -> None:
    c = core()
    for n in range(1, 4):
        serve_and_close(c, n)
    assert c.incidents == {} and c.links == {} and c.on_scene == set() and c.alerted == set()
    assert {"inc-3", "dup-3"} <= c.seen_incidents


def test_a_replay_within_the_horizon_decides_nothing() -> None:
    c = core()
    serve_and_close(c, 1)
    late = 1 * EVERY_S * 1000 + int(HORIZON_S * 1000)  # closed at +302 s: still inside
    assert c.accept(report(1, 1 * EVERY_S * 1000), late) == []
    assert c.incidents == {}


def test_replay_ids_are_kept_for_the_horizon_only() -> None:
    c = core()
    rounds = 60  # 24,000 s of core time, 13x the horizon
    for n in range(1, rounds + 1):
        serve_and_close(c, n)
    # two ids per incident closed within the horizon, and never more
    kept = int(HORIZON_S // EVERY_S) + 1
    assert len(c.seen_incidents) <= 2 * kept
    assert {f"inc-{rounds}", f"dup-{rounds}"} <= c.seen_incidents
    assert "inc-1" not in c.seen_incidents and "dup-1" not in c.seen_incidents
    assert len(c._closed) == len(c.seen_incidents)


def test_a_duplicate_is_remembered_while_its_primary_is_live() -> None:
    c = core()
    c.upsert_drone(drone(2))
    [first] = main(c.accept(report(1, 0)))
    assert isinstance(first, Assigned)
    c.accept(report(2, 1000, "police"))  # linked to inc-1
    assert c.links == {"inc-2": "inc-1"}
    far = int(HORIZON_S * 1000) * 3
    c.tick(far)  # the horizon passes while inc-1 is still flying
    assert "inc-2" in c.seen_incidents
    assert c.accept(report(2, 1000, "police"), far) == []


def test_the_soak_compares_median_levels_not_single_samples() -> None:
    """RSS alternating between two levels is no growth; a steady rise still is."""
    from loadtests.soak import memory_growth

    times = [15.0 * i for i in range(1, 41)]  # 10 min of samples every 15 s
    swinging = [(t, {"dispatch": 153.0 if i % 3 else 169.0}) for i, t in enumerate(times)]
    *_, growth = memory_growth(swinging, 120.0, 120.0)["dispatch"]
    assert growth == 0.0
    leaking = [(t, {"dispatch": 150.0 + 3.0 * t / 60}) for t in times]  # +2 %/min
    base, end, growth = memory_growth(leaking, 120.0, 120.0)["dispatch"]
    assert base < end and growth > 10.0
