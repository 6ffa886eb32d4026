"""End to end through the protocol gateways: the three services and both gateways as
processes, a simulated MAVLink drone (UDP) and a simulated DJI-style dock (on the shared
Mosquitto, under a topic prefix of this run's own). Telemetry becomes live state, incidents
dispatch the two drones, the commands arrive as MAVLink and as `services` requests, and both
missions complete. Bad input on both protocols is counted, and the gateways carry on."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import httpx
import pytest
from pymavlink.dialects.v20 import common as mavlink

from airgrid.auth import Role, issue_credential
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from airgrid.reference import DroneSpec, NestSpec, load_reference
from gateways.simulated_dock import SimulatedDock
from gateways.simulated_mavlink import SimulatedMavlinkDrone
from tests.conftest import _recreate_database, free_port

pytestmark = pytest.mark.e2e

T = TypeVar("T")
SERVICES = ("registry", "telemetry", "dispatch")
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
TIME_SCALE = 20.0
SYSTEM_ID = 7


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


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
class Stack:
    settings: Settings
    urls: dict[str, str]
    fire_key: str
    operator_key: str
    mavlink: tuple[DroneSpec, NestSpec]
    dock: tuple[DroneSpec, NestSpec]
    udp_port: int
    metrics: dict[str, str]
    mqtt_prefix: str
    simulated_drone: SimulatedMavlinkDrone
    simulated_dock: SimulatedDock


async def _issue(settings: Settings, nests: list[str]) -> tuple[str, str, list[str]]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, fire = issue_credential(session, role=Role.DEPARTMENT, department="fire")
            _, operator = issue_credential(session, role=Role.OPERATOR)
            gateways = [
                issue_credential(session, role=Role.GATEWAY, nest_id=nest)[1] for nest in nests
            ]
    finally:
        await engine.dispose()
    return fire, operator, gateways


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "airgrid", *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
async def stack(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    run = uuid.uuid4().hex[:8]
    # A database of this module's own: missions of other tests never make these drones busy.
    database = f"{settings.sqlalchemy_url}_gw{run}"
    await _recreate_database(database)
    s = settings.model_copy(update={"topic_prefix": f"g{run}.", "database_url": database})
    await asyncio.to_thread(upgrade, s)
    await ensure_topics(s)
    mav, dock = pick_drones()
    fire_key, operator_key, (mav_key, dock_key) = await _issue(s, [mav[1].id, dock[1].id])
    ports = {name: free_port() for name in SERVICES}
    metrics = {"mavlink": free_port(), "mqtt": free_port()}
    udp_port = free_udp_port()
    mqtt_prefix = f"airgrid-test/{run}/"
    logs = tmp_path_factory.mktemp("gateway-logs")
    env = dict(os.environ)
    env.update(
        {
            "AIRGRID_KAFKA_BOOTSTRAP": s.bootstrap_servers,
            "AIRGRID_DATABASE_URL": s.sqlalchemy_url,
            "AIRGRID_TOPIC_PREFIX": s.topic_prefix,
            "AIRGRID_STATE_DIR": str(s.state_dir),
            "AIRGRID_OUTBOX_POLL_SECONDS": "0.2",
            **{f"AIRGRID_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        }
    )
    children = {name: _spawn(["serve", name], env, logs / f"{name}.log") for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    stop = asyncio.Event()
    simulations: list[asyncio.Task[None]] = []
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name in SERVICES:

                async def ready(name: str = name) -> bool | None:
                    if children[name].poll() is not None:
                        log = (logs / f"{name}.log").read_text()
                        raise AssertionError(f"{name} exited:\n{log[-3000:]}")
                    try:
                        r = await client.get(f"{urls[name]}/readyz")
                    except httpx.HTTPError:
                        return None
                    return True if r.status_code == 200 else None

                await eventually(ready, 60, f"{name} ready")
        children["gateway-mavlink"] = _spawn(
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
            env,
            logs / "gateway-mavlink.log",
        )
        children["gateway-mqtt"] = _spawn(
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
                f"{MQTT_HOST}:{MQTT_PORT}",
                "--topic-prefix",
                mqtt_prefix,
                "--metrics-port",
                str(metrics["mqtt"]),
            ],
            env,
            logs / "gateway-mqtt.log",
        )
        metric_urls = {k: f"http://127.0.0.1:{p}/metrics" for k, p in metrics.items()}
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name, url in metric_urls.items():

                async def up(name: str = name, url: str = url) -> bool | None:
                    child = children[f"gateway-{name}"]
                    if child.poll() is not None:
                        log = (logs / f"gateway-{name}.log").read_text()
                        raise AssertionError(f"gateway {name} exited:\n{log[-3000:]}")
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
            host=MQTT_HOST,
            port=MQTT_PORT,
            topic_prefix=mqtt_prefix,
            time_scale=TIME_SCALE,
        )
        simulations = [
            asyncio.create_task(simulated_drone.run(stop)),
            asyncio.create_task(simulated_dock.run(stop)),
        ]
        yield Stack(
            s,
            urls,
            fire_key,
            operator_key,
            mav,
            dock,
            udp_port,
            metric_urls,
            mqtt_prefix,
            simulated_drone,
            simulated_dock,
        )
    finally:
        stop.set()
        await asyncio.gather(*simulations, return_exceptions=True)
        for child in children.values():
            child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        await _recreate_database(database, create=False)


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
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as mqtt:
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
