"""Runs a scenario of the dispatch-core properties: a core fed the fleet, the no-fly zones and
the operations one at a time, as the worker feeds it, with the referee's checks after every
operation; a restart restores a new core from the referee's record alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from airgrid.nofly import NoFlyZone
from airgrid.v1.telemetry_pb2 import FlightMode
from services.dispatch.domain.core import CoreSettings, DispatchCore
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneView,
    IncidentRequest,
    Linked,
    Queued,
)
from tests.unit.dispatch_referee import (
    RESERVE_PCT,
    Airspace,
    Referee,
    check_assignments,
    check_liveness,
)
from tests.unit.dispatch_strategies import LAT, LON, NESTS


def new_core(fleet: list[DroneView], zones: tuple[NoFlyZone, ...]) -> DispatchCore:
    core = DispatchCore(settings=CoreSettings(reserve_pct=RESERVE_PCT), origin=(LON, LAT))
    for zone in zones:
        core.upsert_zone(zone)
    for nest in NESTS:
        core.upsert_nest(nest)
    for drone in fleet:
        core.upsert_drone(drone, 0)
    return core


def restarted(
    now: int, referee: Referee, world: dict[str, DroneView], zones: tuple[NoFlyZone, ...]
) -> tuple[DispatchCore, list[Decision]]:
    """A new core restored from what the database holds (the referee's record, never the
    old core), checked against that record before it decides anything, then fed the world
    again; the decisions that feeding makes count like any other (the worker stores them)."""
    live = [r for i, r in referee.requests.items() if referee.is_live(i)]
    fresh = new_core([], zones)
    fresh.restore(
        incidents=live,
        missions=[replace(m) for m in referee.active.values()],
        attempts=dict(referee.attempts),
        links={d: (p, referee.requests[d].priority) for d, p in referee.linked.items()},
        done_slots={i: set(s) for i, s in referee.flown.items()},
    )
    fresh.now_ms = now
    assert {
        m.id: (m.drone_id, m.incident_id, m.slot, m.stage) for m in fresh.missions.values()
    } == {m.id: (m.drone_id, m.incident_id, m.slot, m.stage) for m in referee.active.values()}, (
        "the restored missions differ from those recorded"
    )
    assert {e.request.id: e.open_slots for e in fresh.queued_incidents()} == referee.queue(), (
        "the restored queue differs from the one recorded"
    )
    assert [e.request.id for e in fresh.queued_incidents()] == referee.queue_order(), (
        "the restored queue is in another order"
    )
    decisions: list[Decision] = []
    for drone_id in sorted(world):
        decisions += fresh.upsert_drone(world[drone_id], now)
    decisions += fresh.drain_queue()
    return fresh, decisions


def run(
    fleet: list[DroneView], operations: list[tuple[Any, ...]], zones: tuple[NoFlyZone, ...]
) -> tuple[list[list[Decision]], DispatchCore]:
    core = new_core(fleet, zones)
    airspace = Airspace.of(zones)
    world = {d.id: d for d in fleet}
    referee = Referee()
    now = 1_000
    log: list[list[Decision]] = []
    accepted: list[str] = []
    # Set when an idle drone only reported (the worker's flag): the core need not try its
    # queue again until the next tick, so liveness is checked only while it is clear.
    moved = False
    for n, op in enumerate(operations):
        now += 1_000
        kind = op[0]
        decisions: list[Decision] = []
        reported: DroneView | None = None
        if kind == "incident":
            _, priority, (dx, dy), needs, needed, department, type_, on_scene = op
            request = IncidentRequest(
                id=f"inc-{n:03d}", priority=priority, lon=LON + dx, lat=LAT + dy,
                required_capabilities=needs, drones_needed=needed, on_scene_seconds=on_scene,
                accepted_ms=now, type=type_, department=department,
            )  # fmt: skip
            referee.requests[request.id] = request
            accepted.append(request.id)
            decisions = core.accept(request, now)
            outcome = [
                d for d in decisions
                if isinstance(d, Assigned | Queued | Linked) and d.incident_id == request.id
            ]  # fmt: skip
            assert outcome, f"{request.id} got no outcome"
        elif kind == "state" and fleet:
            _, i, (dx, dy), battery, airborne = op
            old = world[fleet[i % len(fleet)].id]
            nest = next(x for x in NESTS if x.id == old.home_nest)
            lon, lat = (nest.lon + dx, nest.lat + dy) if airborne else (nest.lon, nest.lat)
            reported = replace(
                old, lon=lon, lat=lat, battery_pct=battery, airborne=airborne, link_ok=True,
                faults=(),
            )  # fmt: skip
        elif kind == "move" and fleet:
            _, i, (dx, dy), drained = op
            old = world[fleet[i % len(fleet)].id]
            if old.airborne:
                reported = replace(
                    old, lon=LON + dx, lat=LAT + dy, battery_pct=max(0.0, old.battery_pct - drained)
                )
        elif kind == "progress" and referee.active:
            _, k, phase, (dx, dy), drained = op
            mission = referee.active[sorted(referee.active)[k % len(referee.active)]]
            old = world[mission.drone_id]
            scene = referee.requests.get(mission.incident_id)
            nest = next(x for x in NESTS if x.id == old.home_nest)
            lon, lat = LON + dx, LAT + dy
            if phase == "scene" and scene is not None:
                lon, lat = scene.lon, scene.lat
            elif phase == "docked":
                lon, lat = nest.lon, nest.lat
            mode = {
                "out": FlightMode.FLIGHT_MODE_CRUISING,
                "scene": FlightMode.FLIGHT_MODE_HOVERING,
                "home": FlightMode.FLIGHT_MODE_RETURNING,
                "docked": FlightMode.FLIGHT_MODE_DOCKED,
            }[phase]
            reported = replace(
                old, lon=lon, lat=lat, airborne=phase != "docked", mode=mode,
                reported_mission=mission.id,
                battery_pct=max(RESERVE_PCT, old.battery_pct - drained),
            )  # fmt: skip
        elif kind == "fail" and referee.active:
            _, k, how = op
            mission = referee.active[sorted(referee.active)[k % len(referee.active)]]
            old = world[mission.drone_id]
            reported = {
                "link": replace(old, link_ok=False),
                "fault": replace(old, faults=("motor",)),
                "battery": replace(old, battery_pct=5.0),
            }[how]
        elif kind == "cancel" and accepted:
            incident_id = accepted[op[1] % len(accepted)]
            referee.cancelled.add(incident_id)
            decisions = core.cancel(incident_id, now)
            moved = False  # a cancel drains the queue
        elif kind == "end" and referee.active:
            mission_id = sorted(referee.active)[op[1] % len(referee.active)]
            referee.mission_ended(mission_id)
            decisions = core.mission_ended(mission_id, now)
            moved = False  # a drone freed drains the queue
        elif kind == "tick":
            now += op[1] * 1_000
            decisions = core.tick(now)
            if moved:
                decisions += core.drain_queue()
                moved = False
        elif kind == "restart":
            core, decisions = restarted(core.now_ms, referee, world, zones)
            moved = False
        if reported is not None:
            world[reported.id] = reported
            decisions = core.upsert_drone(reported, now)
        referee.record(decisions, now)
        if reported is not None and reported.id not in referee.busy_drones():
            moved = True
        check_assignments(referee, world, airspace, decisions)
        referee.check(core)
        if not moved:
            check_liveness(referee, world, airspace)
        log.append(decisions)
    return log, core
