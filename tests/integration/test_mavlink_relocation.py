"""A PX4-style vehicle (pymavlink only, none of the gateway's codec) docked and disarmed at its
nest, moved to another nest by the rebalancer through the real MAVLink gateway over UDP: it
gets a mission that takes off, flies the path and lands at the new nest, never an RTL."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from pymavlink.dialects.v20 import common as mavlink

from airgrid.config import Settings
from airgrid.geo import haversine_m
from airgrid.reference import load_reference
from airgrid.v1 import command_pb2, telemetry_pb2
from gateways.airgrid_link import RegisteredDrone
from gateways.mavlink_gateway import MavlinkGateway
from gateways.simulated_mavlink import SimulatedMavlinkDrone
from services.dispatch.coverage import CoverageKeeper
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import DroneOrder, DroneView, NestView, OrderKind
from tests.eventually import until

pytestmark = pytest.mark.integration

TIME_SCALE = 40.0
KINDS = {
    OrderKind.LAUNCH: command_pb2.COMMAND_KIND_LAUNCH,
    OrderKind.GOTO: command_pb2.COMMAND_KIND_GOTO,
    OrderKind.RETURN: command_pb2.COMMAND_KIND_RETURN,
}


def docked_fleet(out_of_service: set[str]) -> DispatchCore:
    """The reference fleet docked and charged at home; the drones of some nests lost link,
    which opens holes in coverage for the rebalancer to close."""
    reference = load_reference(None)
    core = DispatchCore(origin=reference.zone.centre)
    nests = {n.id: NestView(n.id, n.lon, n.lat) for n in reference.nests}
    for nest in nests.values():
        core.upsert_nest(nest)
    for d in reference.drones:
        home = nests[d.home_nest]
        core.upsert_drone(
            DroneView(
                id=d.id, home_nest=d.home_nest, capabilities=frozenset(d.capabilities),
                cruise_speed_mps=d.cruise_speed_mps, climb_rate_mps=d.climb_rate_mps,
                cruise_altitude_m=d.cruise_altitude_m, launch_delay_s=d.launch_delay_s,
                endurance_s=d.endurance_s, lon=home.lon, lat=home.lat, battery_pct=100.0,
                link_ok=d.home_nest not in out_of_service,
            ),
            1000,
        )  # fmt: skip
    return core


def as_command(order: DroneOrder, cruise_alt_m: float) -> command_pb2.DroneCommand:
    """The order as the dispatch worker publishes it on airgrid.drone.commands."""
    target = order.target or (0.0, 0.0)
    return command_pb2.DroneCommand(
        command_id="relocation-1", drone_id=order.drone_id, mission_id=order.mission_id,
        kind=KINDS[order.kind], target_lon=target[0], target_lat=target[1],
        target_alt_m=cruise_alt_m, hold_seconds=order.hold_seconds,
        nest_id=order.nest_id, path_lon=[p[0] for p in order.path],
        path_lat=[p[1] for p in order.path],
    )  # fmt: skip


async def test_a_docked_vehicle_moved_between_nests_lands_there_and_is_never_told_to_rtl() -> None:
    reference = load_reference(None)
    core = docked_fleet(set(sorted(n.id for n in reference.nests)[::2]))
    orders = [
        d for d in CoverageKeeper(reference, Settings()).rebalance(core, 10_000)
        if isinstance(d, DroneOrder)
    ]  # fmt: skip
    assert orders, "the rebalancer moved nothing"
    order = orders[0]
    spec = next(d for d in reference.drones if d.id == order.drone_id)
    nests = {n.id: n for n in reference.nests}
    home, there = nests[spec.home_nest], nests[order.nest_id]
    records: list[telemetry_pb2.Telemetry] = []
    registered = {spec.id: RegisteredDrone(spec.id, spec.home_nest, spec.cruise_altitude_m)}
    gateway = MavlinkGateway(
        systems={1: spec.id}, registered=lambda: registered, submit=records.append
    )
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: gateway, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    vehicle = SimulatedMavlinkDrone(
        replace(spec), home, system_id=1, gateway=("127.0.0.1", port), time_scale=TIME_SCALE,
        nests={there.id: (there.lon, there.lat)},
    )  # fmt: skip
    stop = asyncio.Event()
    flying = asyncio.create_task(vehicle.run(stop))
    try:
        await until(lambda: gateway.serves(spec.id) and bool(records), 30, "the vehicle linked")
        assert records[-1].flight_mode == telemetry_pb2.FLIGHT_MODE_DOCKED
        await gateway.deliver(as_command(order, spec.cruise_altitude_m))
        assert mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH not in vehicle.commands
        assert vehicle.commands == [mavlink.MAV_CMD_MISSION_START]
        assert "MISSION_COUNT" in vehicle.received
        drone = vehicle.drone
        await until(
            lambda: (
                drone.home_nest_id == there.id and drone.mode == telemetry_pb2.FLIGHT_MODE_DOCKED
            ),
            120,
            f"{spec.id} landed at {there.id}",
        )
        assert haversine_m(drone.lon, drone.lat, there.lon, there.lat) < 1.0
        assert vehicle.commands == [mavlink.MAV_CMD_MISSION_START]  # and nothing since
    finally:
        stop.set()
        await asyncio.gather(flying, return_exceptions=True)
        transport.close()
