"""A routine-inspection patrol flown closed-loop: the dispatch core's orders obeyed by the
twin's physics, the drone's state fed back to the core. The sortie must end at its last
waypoint and come home (a hold of 0 means loiter until told otherwise, to the twin as to a
MAVLink LOITER_UNLIM: a drone left holding there would hover until its battery fell under the
reserve, and the patrol would fail for "low battery")."""

from __future__ import annotations

from airgrid.geo import LocalProjection
from airgrid.reference import load_reference
from airgrid.sim.physics import DOCKED, SimDrone, apply_command, step
from airgrid.v1 import command_pb2
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import (
    Decision,
    DroneOrder,
    DroneView,
    MissionStage,
    NestView,
    OrderKind,
    Redispatched,
    StageReached,
)
from services.dispatch.domain.patrols import patrol_routes

REFERENCE = load_reference(None)
_KINDS = {
    OrderKind.LAUNCH: command_pb2.COMMAND_KIND_LAUNCH,
    OrderKind.GOTO: command_pb2.COMMAND_KIND_GOTO,
    OrderKind.RETURN: command_pb2.COMMAND_KIND_RETURN,
}


def command_of(order: DroneOrder) -> command_pb2.DroneCommand:
    command = command_pb2.DroneCommand(
        drone_id=order.drone_id,
        mission_id=order.mission_id,
        kind=_KINDS[order.kind],
        hold_seconds=order.hold_seconds,
        nest_id=order.nest_id,
    )
    if order.target is not None:
        command.target_lon, command.target_lat = order.target
    command.path_lon.extend(p[0] for p in order.path)
    command.path_lat.extend(p[1] for p in order.path)
    return command


def test_a_patrol_sortie_ends_at_its_last_waypoint_and_comes_home() -> None:
    nest = REFERENCE.nests[0]
    projection = LocalProjection(*REFERENCE.zone.centre)
    routes = patrol_routes(
        REFERENCE.zone.boundary, [(n.id, n.lon, n.lat) for n in REFERENCE.nests], projection
    )
    core = DispatchCore(origin=REFERENCE.zone.centre)
    core.set_patrol_routes([r for r in routes if r.nest_id == nest.id][:1])
    core.upsert_nest(NestView(nest.id, nest.lon, nest.lat))
    specs = [d for d in REFERENCE.drones if d.home_nest == nest.id]
    assert len(specs) > core.settings.patrol_keep_docked
    drones = {s.id: SimDrone.docked_at(s, nest.id, nest.lon, nest.lat) for s in specs}
    decisions: list[Decision] = []

    def view(drone: SimDrone) -> DroneView:
        s = drone.spec
        return DroneView(
            s.id, s.home_nest, frozenset(s.capabilities), s.cruise_speed_mps, s.climb_rate_mps,
            s.cruise_altitude_m, s.launch_delay_s, s.endurance_s, lon=drone.lon, lat=drone.lat,
            battery_pct=drone.battery_pct, airborne=drone.mode != DOCKED, link_ok=True,
            mode=drone.mode, reported_mission=drone.mission_id,
        )  # fmt: skip

    def obey(made: list[Decision]) -> None:
        decisions.extend(made)
        for decision in made:
            if isinstance(decision, DroneOrder):
                assert apply_command(drones[decision.drone_id], command_of(decision))

    now_ms = 1_000_000
    for drone in drones.values():
        obey(core.upsert_drone(view(drone), now_ms))
    obey(core.tick(now_ms))
    launched = [d for d in decisions if isinstance(d, DroneOrder)]
    assert len(launched) == 1 and launched[0].kind == OrderKind.LAUNCH
    flyer = drones[launched[0].drone_id]
    for _ in range(3600):  # an hour of one-second steps, far more than the sortie takes
        now_ms += 1000
        step(flyer, 1.0)
        obey(core.upsert_drone(view(flyer), now_ms))
        if flyer.mode == DOCKED:
            break
    stages = [d.stage for d in decisions if isinstance(d, StageReached)]
    assert not any(isinstance(d, Redispatched) for d in decisions)
    assert flyer.mode == DOCKED
    assert stages[-2:] == [MissionStage.RETURNING, MissionStage.COMPLETED]
    assert flyer.battery_pct > core.settings.reserve_pct
