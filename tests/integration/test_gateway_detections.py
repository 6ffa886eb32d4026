"""Detections from simulated devices through the real gateways: a DJI-style dock's
`ai_detection` event over a real Mosquitto and a PX4-style vehicle's image capture + detection
TUNNEL over real UDP reach airgrid.detections through the detection uplink and the real
telemetry service; malformed device messages are counted by reason and the gateways go on.
The uplink keeps a batch through an outage and drops, without retrying, one the service
refuses (4xx)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import orjson
import pytest
from prometheus_client import REGISTRY
from pymavlink.dialects.v20 import common as mavlink

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.reference import load_reference
from airgrid.sim.physics import apply_command
from airgrid.topics import DETECTIONS
from airgrid.v1 import command_pb2, inspection_pb2
from gateways.airgrid_link import AirgridLink, LinkConfig, RegisteredDrone
from gateways.mavlink_codec import DETECTION_TUNNEL_TYPE
from gateways.mavlink_gateway import MavlinkGateway
from gateways.mqtt_gateway import MqttGateway
from gateways.simulated_dock import SimulatedDock
from gateways.simulated_mavlink import SimulatedMavlinkDrone
from tests.conftest import free_port
from tests.eventually import until
from tests.integration.inspection_rig import read_topic, register_drone, register_scenarios
from tests.integration.test_gateway_uplink import telemetry_on

pytestmark = pytest.mark.integration

REFERENCE = load_reference()
SPEC = REFERENCE.drones[0]
NEST = next(n for n in REFERENCE.nests if n.id == SPEC.home_nest)
SYSTEM_ID = 7
# Two sightings a second of flight: the first may come before the telemetry service has seen
# the drone airborne (and go to the DLQ), the following ones reach the topic.
RATE_PER_MINUTE = 120.0


def decode_errors(gateway: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "airgrid_gateway_decode_errors_total", {"gateway": gateway, "reason": reason}
    )
    return value or 0.0


async def gateway_key(settings: Settings, nest_id: str) -> str:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, key = issue_credential(session, role=Role.GATEWAY, nest_id=nest_id)
    finally:
        await engine.dispose()
    return key


def launch(target_lon: float, target_lat: float) -> command_pb2.DroneCommand:
    return command_pb2.DroneCommand(
        kind=command_pb2.COMMAND_KIND_LAUNCH, target_lon=target_lon, target_lat=target_lat
    )


@contextlib.asynccontextmanager
async def running(*coroutines: Any) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def garbage_tunnel() -> bytes:
    """A detection note from the admitted vehicle whose confidence is 6.0."""
    mav = mavlink.MAVLink(None, srcSystem=SYSTEM_ID, srcComponent=1)
    payload = struct.pack("<BiH32sB", 1, 99, 60_000, b"\0" * 32, 5) + b"smoke"
    message = mav.tunnel_encode(
        0, 0, DETECTION_TUNNEL_TYPE, len(payload), list(payload.ljust(128, b"\0"))
    )
    return bytes(message.pack(mav))


async def test_detections_from_simulated_devices_reach_the_topic_through_the_gateways(
    fresh_prefix: Settings, mqtt_broker: tuple[str, int]
) -> None:
    s = fresh_prefix
    run = uuid.uuid4().hex[:6]
    dji_drone, mav_drone = f"dr-dji-{run}", f"dr-mav-{run}"
    dock_sn, aircraft_sn, prefix = f"DOCK-{run}", f"AC-{run}", f"det{run}/"
    await ensure_topics(s)
    producer = Producer(s, source="airgrid/test")
    await producer.start()
    try:
        for drone_id in (dji_drone, mav_drone):
            await register_drone(producer, drone_id, NEST.id)
        await register_scenarios(producer)
    finally:
        await producer.stop()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    link = AirgridLink(
        s,
        LinkConfig(
            gateway="test",
            key=await gateway_key(s, NEST.id),
            registry_url=url,
            telemetry_url=url,
            consumer_group="unused",
        ),
    )
    link.drones = {
        d: RegisteredDrone(d, NEST.id, SPEC.cruise_altitude_m) for d in (dji_drone, mav_drone)
    }
    mqtt = MqttGateway(
        docks={dock_sn: NEST.id},
        aircraft={aircraft_sn: dji_drone},
        registered=lambda: link.drones,
        submit=link.submit,
        submit_detection=link.submit_detection,
        topic_prefix=prefix,
    )
    mav = MavlinkGateway(
        systems={SYSTEM_ID: mav_drone},
        registered=lambda: link.drones,
        submit=link.submit,
        submit_detection=link.submit_detection,
    )
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(lambda: mav, local_addr=("127.0.0.1", 0))
    gateway_address = udp.get_extra_info("sockname")
    dock = SimulatedDock(
        SPEC, NEST, dock_sn=dock_sn, aircraft_sn=aircraft_sn, host=mqtt_broker[0],
        port=mqtt_broker[1], topic_prefix=prefix, detections_per_minute=RATE_PER_MINUTE, seed=1,
    )  # fmt: skip
    vehicle = SimulatedMavlinkDrone(
        SPEC, NEST, system_id=SYSTEM_ID, gateway=gateway_address,
        detections_per_minute=RATE_PER_MINUTE, seed=2,
    )  # fmt: skip
    stop = asyncio.Event()
    events_topic = f"{prefix}thing/product/{dock_sn}/events"
    try:
        async with (
            telemetry_on(s, port),
            running(
                link.run_uplinks(stop),
                mqtt.run(*mqtt_broker, stop, client_id=f"gw-{run}"),
                dock.run(stop),
                vehicle.run(stop),
            ),
        ):
            # Both gateways hear their device, then garbage on both paths: counted by reason,
            # and the gateways go on.
            await until(lambda: dock_sn in mqtt.docks, 60, "the dock heard by the gateway")
            await until(lambda: SYSTEM_ID in mav.peers, 60, "the vehicle heard by the gateway")
            not_json = decode_errors("mqtt", "not_json")
            bad_field = decode_errors("mqtt", "detection_bad_field")
            bad_confidence = decode_errors("mavlink", "detection_bad_confidence")
            bad_event = {
                "tid": "t", "bid": "b", "timestamp": now_ms(), "method": "ai_detection",
                "data": {"sn": aircraft_sn, "confidence": "very"},
            }  # fmt: skip
            async with aiomqtt.Client(*mqtt_broker, identifier=f"junk-{run}") as junk:
                await junk.publish(events_topic, b"\xff{not json", qos=1)
                await junk.publish(events_topic, orjson.dumps(bad_event), qos=1)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
                raw.sendto(garbage_tunnel(), gateway_address)
            # Then both devices fly, and their detectors report.
            apply_command(dock.drone, launch(NEST.lon + 0.02, NEST.lat))
            apply_command(vehicle.drone, launch(NEST.lon, NEST.lat + 0.02))

            def both_arrived(rows: list[Any]) -> bool:
                return {dji_drone, mav_drone} <= {row.key for row in rows}

            rows = await read_topic(s, DETECTIONS, until=both_arrived)
            await until(
                lambda: (
                    decode_errors("mqtt", "not_json") == not_json + 1
                    and decode_errors("mqtt", "detection_bad_field") == bad_field + 1
                    and decode_errors("mavlink", "detection_bad_confidence") == bad_confidence + 1
                ),
                10,
                "each malformed message counted under its reason",
            )
    finally:
        stop.set()
        udp.close()
        await link.stop()
    codes = {spec.code for spec in REFERENCE.scenarios}
    found: dict[str, inspection_pb2.Detection] = {}
    for row in rows:
        value = inspection_pb2.Detection.FromString(row.value)
        found.setdefault(value.drone_id, value)
    for drone_id, prefix_of_id, media in (
        (dji_drone, f"dji-{aircraft_sn}-", "https://"),
        (mav_drone, f"mav-{mav_drone}-", "mavlink://"),
    ):
        seen = found[drone_id]
        assert seen.id.startswith(prefix_of_id)
        assert seen.scenario in codes and 0.5 < seen.confidence < 1.0
        assert len(seen.media.sha256) == 64 and seen.media.uri.startswith(media)
        assert abs(seen.lon - NEST.lon) < 0.05 and abs(seen.lat - NEST.lat) < 0.05
        assert abs(seen.observed_time_ms - now_ms()) < 120_000


async def test_the_detection_uplink_keeps_batches_through_an_outage_and_drops_refused_ones(
    fresh_prefix: Settings,
) -> None:
    s = fresh_prefix
    await ensure_topics(s)
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nothing listens there yet: an outage
    link = AirgridLink(
        s,
        LinkConfig(
            gateway="test-4xx",
            key=await gateway_key(s, "nest-a"),
            registry_url=url,
            telemetry_url=url,
            consumer_group="unused",
        ),
    )
    theirs = inspection_pb2.Detection(id="d-1", drone_id=f"dr-other-{uuid.uuid4().hex[:6]}")
    try:
        link.submit_detection(theirs)
        assert await link.send_detections_once() is False  # no service: kept for a retry
        assert [d.id for d in link.detections] == ["d-1"]
        producer = Producer(s, source="airgrid/test")
        await producer.start()
        try:
            await register_drone(producer, theirs.drone_id, "nest-b")
        finally:
            await producer.stop()
        async with telemetry_on(s, port):
            dropped = "airgrid_gateway_detections_dropped_total"
            labels = {"gateway": "test-4xx", "reason": "http_403"}
            before = REGISTRY.get_sample_value(dropped, labels) or 0.0

            async def refused() -> bool:
                # 403 once the service knows the drone is another nest's; until its registry
                # view has it, the detection may be taken and sent to the DLQ instead.
                await link.send_detections_once()
                if (REGISTRY.get_sample_value(dropped, labels) or 0.0) > before:
                    return True
                link.submit_detection(theirs)
                await asyncio.sleep(0.5)
                return False

            for _ in range(60):
                if await refused():
                    break
            assert (REGISTRY.get_sample_value(dropped, labels) or 0.0) == before + 1
            assert not link.detections  # refused: dropped, never retried
    finally:
        await link.stop()
