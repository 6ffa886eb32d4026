"""End to end through the protocol gateways: the three services and both gateways as
processes, a simulated MAVLink drone (UDP) and a simulated DJI-style dock (on a private
Mosquitto, under a topic prefix of this run's own). Telemetry becomes live state, incidents
dispatch the two drones, the commands arrive as MAVLink and as `services` requests, and both
missions complete. Bad input on both protocols is counted, and the gateways carry on."""

from __future__ import annotations

import asyncio
import math
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
import httpx
import pytest
from pymavlink.dialects.v20 import common as mavlink

from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.migrate import upgrade
from airgrid.reference import DroneSpec, NestSpec, load_reference
from gateways.simulated_dock import SimulatedDock
from gateways.simulated_mavlink import SimulatedMavlinkDrone
from tests.conftest import _recreate_database, free_port
from tests.e2e.conftest import RunningServices, ServiceStack, issue_keys
from tests.eventually import eventually

pytestmark = pytest.mark.e2e

TIME_SCALE = 20.0
SYSTEM_ID = 7


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pick_drones() -> tuple[tuple[DroneSpec, NestSpec], tuple[DroneSpec, NestSpec]]:
    """Two thermal drones at nests far apart, so each incident has one nearest drone."""
    reference = load_reference()
    nests = {n.id: n for n in reference.nests}
    thermal = [d for d in reference.drones if "thermal" in d.capabilities]
    first = thermal[-1]
    second = next(d for d in thermal if d.home_nest != first.home_nest)
    return (first, nests[first.home_nest]), (second, nests[second.home_nest])


def scene_near(nest: NestSpec) -> list[float]:
    """A point about 400 m from the nest, toward the zone's centre (so inside the zone)."""
    centre_lon, centre_lat = load_reference().zone.centre
    d_lon, d_lat = centre_lon - nest.lon, centre_lat - nest.lat
    norm = math.hypot(d_lon, d_lat) or 1.0
    return [nest.lon + 0.004 * d_lon / norm, nest.lat + 0.004 * d_lat / norm]


@dataclass
class Stack(ServiceStack):
    """The services with both gateways in front and a simulated drone speaking to each."""

    mavlink: tuple[DroneSpec, NestSpec]
    dock: tuple[DroneSpec, NestSpec]
    udp_port: int
    metrics: dict[str, str]
    mqtt_prefix: str
    mqtt: tuple[str, int]
    simulated_drone: SimulatedMavlinkDrone
    simulated_dock: SimulatedDock


@pytest.fixture(scope="module")
async def e2e_settings(settings: Settings) -> AsyncIterator[Settings]:
    """A database of this module's own: missions of other tests never make these drones busy."""
    run = uuid.uuid4().hex[:8]
    database = f"{settings.sqlalchemy_url}_gw{run}"
    await _recreate_database(database)
    s = settings.model_copy(update={"topic_prefix": f"g{run}.", "database_url": database})
    try:
        await asyncio.to_thread(upgrade, s)
        await ensure_topics(s)
        yield s
    finally:
        await _recreate_database(database, create=False)


@pytest.fixture(scope="module")
async def stack(
    running_services: RunningServices, mqtt_broker: tuple[str, int]
) -> AsyncIterator[Stack]:
    mqtt_host, mqtt_port = mqtt_broker
    services = running_services
    run = uuid.uuid4().hex[:8]
    mav, dock = pick_drones()
    keys = await issue_keys(services.settings, [mav[1].id, dock[1].id])
    mav_key, dock_key = keys.gateways
    metrics = {"mavlink": free_port(), "mqtt": free_port()}
    udp_port = free_udp_port()
    mqtt_prefix = f"airgrid-test/{run}/"
    services.spawn(
        "gateway-mavlink",
        [
            "gateway",
            "mavlink",
            "--key",
            mav_key,
            "--system",
            f"{SYSTEM_ID}={mav[0].id}",
            "--listen",
            f"127.0.0.1:{udp_port}",
            "--metrics-port",
            str(metrics["mavlink"]),
        ],
    )
    services.spawn(
        "gateway-mqtt",
        [
            "gateway",
            "mqtt",
            "--key",
            dock_key,
            "--dock",
            f"DOCK-{run}={dock[1].id}",
            "--aircraft",
            f"AC-{run}={dock[0].id}",
            "--broker",
            f"{mqtt_host}:{mqtt_port}",
            "--topic-prefix",
            mqtt_prefix,
            "--metrics-port",
            str(metrics["mqtt"]),
        ],
    )
    metric_urls = {k: f"http://127.0.0.1:{p}/metrics" for k, p in metrics.items()}
    async with httpx.AsyncClient(timeout=2.0) as client:
        for name, url in metric_urls.items():

            async def up(name: str = name, url: str = url) -> bool | None:
                services.check_running(f"gateway-{name}")
                try:
                    return True if (await client.get(url)).status_code == 200 else None
                except httpx.HTTPError:
                    return None

            await eventually(up, 60, f"gateway {name} serving /metrics")
    simulated_drone = SimulatedMavlinkDrone(
        *mav, system_id=SYSTEM_ID, gateway=("127.0.0.1", udp_port), time_scale=TIME_SCALE
    )
    simulated_dock = SimulatedDock(
        *dock,
        dock_sn=f"DOCK-{run}",
        aircraft_sn=f"AC-{run}",
        host=mqtt_host,
        port=mqtt_port,
        topic_prefix=mqtt_prefix,
        time_scale=TIME_SCALE,
    )
    stop = asyncio.Event()
    simulations = [
        asyncio.create_task(simulated_drone.run(stop)),
        asyncio.create_task(simulated_dock.run(stop)),
    ]
    try:
        yield Stack(
            services.settings,
            services.urls,
            keys.fire,
            keys.operator,
            mav,
            dock,
            udp_port,
            metric_urls,
            mqtt_prefix,
            mqtt_broker,
            simulated_drone,
            simulated_dock,
        )
    finally:
        stop.set()
        await asyncio.gather(*simulations, return_exceptions=True)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition; 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_telemetry_from_both_gateways_becomes_live_state(stack: Stack) -> None:
    operator = {"Authorization": f"Bearer {stack.operator_key}"}
    async with httpx.AsyncClient(base_url=stack.urls["telemetry"], timeout=5.0) as client:
        for spec, nest in (stack.mavlink, stack.dock):

            async def docked(drone_id: str = spec.id) -> dict[str, Any] | None:
                r = await client.get(f"/v1/drones/{drone_id}/state", headers=operator)
                return r.json() if r.status_code == 200 else None

            state = await eventually(docked, 45, f"live state of {spec.id}")
            assert state["flight_mode"] == "docked"
            assert state["nest_id"] == nest.id
            assert state["link_ok"] is True
            assert abs(state["lon"] - nest.lon) < 1e-4 and abs(state["lat"] - nest.lat) < 1e-4
            assert 0 < state["battery_pct"] <= 100


async def test_incidents_dispatch_each_drone_in_its_protocol_to_completion(stack: Stack) -> None:
    fire = {"Authorization": f"Bearer {stack.fire_key}"}
    operator = {"Authorization": f"Bearer {stack.operator_key}"}
    async with httpx.AsyncClient(timeout=5.0) as client:
        for spec, _ in (stack.mavlink, stack.dock):

            async def known(drone_id: str = spec.id) -> bool | None:
                r = await client.get(
                    f"{stack.urls['telemetry']}/v1/drones/{drone_id}/state", headers=operator
                )
                return True if r.status_code == 200 else None

            await eventually(known, 45, f"live state of {spec.id}")
        incidents: dict[str, str] = {}
        for spec, nest in (stack.mavlink, stack.dock):
            body = {
                "type": "fire",
                "priority": 1,
                "location": {"type": "Point", "coordinates": scene_near(nest)},
                "required_capabilities": ["thermal"],
                "drones_needed": 1,
                "on_scene_seconds": 3,
                "description": f"smoke near {nest.id}",
            }
            created = await client.post(
                f"{stack.urls['dispatch']}/v1/incidents", json=body, headers=fire
            )
            assert created.status_code == 201, created.text
            incidents[spec.id] = created.json()["id"]

        async def completed(incident_id: str) -> dict[str, Any] | None:
            r = await client.get(
                f"{stack.urls['dispatch']}/v1/incidents/{incident_id}", headers=fire
            )
            data: dict[str, Any] = r.json()
            return data if data["status"] == "completed" else None

        for drone_id, incident_id in incidents.items():
            done = await eventually(
                lambda incident_id=incident_id: completed(incident_id),  # type: ignore[misc]
                90,
                f"incident {incident_id} completed by {drone_id}",
            )
            assert [m["drone_id"] for m in done["missions"]] == [drone_id]
            stages = [entry["stage"] for entry in done["timeline"]]
            assert stages[0] == "accepted" and "on_scene" in stages and stages[-1] == "completed"

    # The commands arrived in each drone's own protocol.
    received = stack.simulated_drone.received
    assert "MISSION_COUNT" in received and "MISSION_ITEM_INT" in received
    assert "COMMAND_LONG" in received
    # (The dispatch core may also try to reposition an idle drone: a `return_home` to another
    # nest, which a docked aircraft refuses.)
    methods = stack.simulated_dock.methods
    assert "takeoff_to_point" in methods
    assert "return_home" in methods[methods.index("takeoff_to_point") :]
    async with httpx.AsyncClient(timeout=5.0) as client:
        for name in ("mavlink", "mqtt"):
            text = (await client.get(stack.metrics[name])).text
            assert (
                metric(text, "airgrid_gateway_commands_total", gateway=name, outcome="accepted")
                >= 1
            )
            assert (
                metric(text, "airgrid_gateway_command_round_trip_seconds_count", gateway=name) >= 1
            )
            assert metric(text, "airgrid_gateway_telemetry_forwarded_total", gateway=name) > 0


async def test_bad_input_is_counted_with_a_reason_and_never_stops_a_gateway(stack: Stack) -> None:
    # MAVLink: junk bytes, a frame with a broken CRC, a vehicle no drone maps to.
    good = mavlink.MAVLink(None, srcSystem=SYSTEM_ID, srcComponent=1)
    frame = bytearray(good.heartbeat_encode(2, 12, 0, 0, 3).pack(good))
    frame[-1] ^= 0xFF
    stranger = mavlink.MAVLink(None, srcSystem=99, srcComponent=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in (
            b"\x00\x01garbage that is not mavlink",
            bytes(frame),
            stranger.heartbeat_encode(2, 12, 0, 0, 3).pack(stranger),
        ):
            sock.sendto(datagram, ("127.0.0.1", stack.udp_port))
    # MQTT: not JSON, an envelope without data, OSD missing fields, an unknown aircraft.
    osd = f"{stack.mqtt_prefix}thing/product/AC-unknown/osd"
    aircraft_osd = f"{stack.mqtt_prefix}thing/product/{stack.simulated_dock.aircraft_sn}/osd"
    async with aiomqtt.Client(*stack.mqtt) as mqtt:
        await mqtt.publish(aircraft_osd, b"{not json")
        await mqtt.publish(aircraft_osd, b'{"tid": "1", "bid": "2", "timestamp": 3}')
        await mqtt.publish(
            aircraft_osd, b'{"tid": "1", "bid": "2", "timestamp": 3, "data": {"mode_code": 5}}'
        )
        await mqtt.publish(
            osd,
            b'{"tid": "1", "bid": "2", "timestamp": 3, "data": {"mode_code": 0, "longitude": 1,'
            b' "latitude": 2, "elevation": 0, "horizontal_speed": 0, "vertical_speed": 0,'
            b' "attitude_head": 0, "battery": {"capacity_percent": 50}}}',
        )

    expected = {
        "mavlink": ("corrupt_frame", "bad_crc", "unknown_system_id"),
        "mqtt": ("not_json", "missing_field", "unknown_device"),
    }
    async with httpx.AsyncClient(timeout=5.0) as client:
        for name, reasons in expected.items():

            async def counted(name: str = name, reasons: tuple[str, ...] = reasons) -> str | None:
                text = (await client.get(stack.metrics[name])).text
                seen = [
                    r
                    for r in reasons
                    if metric(text, "airgrid_gateway_decode_errors_total", gateway=name, reason=r)
                ]
                return text if len(seen) == len(reasons) else None

            await eventually(counted, 20, f"{name} bad input counted by reason")
        # Both gateways still take good input: fresh telemetry keeps arriving.
        for name in ("mavlink", "mqtt"):

            async def still_forwarding(name: str = name) -> bool | None:
                before = metric(
                    (await client.get(stack.metrics[name])).text,
                    "airgrid_gateway_messages_in_total",
                    gateway=name,
                    type="HEARTBEAT" if name == "mavlink" else "osd",
                )
                await asyncio.sleep(1.5)
                after = metric(
                    (await client.get(stack.metrics[name])).text,
                    "airgrid_gateway_messages_in_total",
                    gateway=name,
                    type="HEARTBEAT" if name == "mavlink" else "osd",
                )
                return True if after > before else None

            await eventually(still_forwarding, 20, f"{name} gateway still decoding")
