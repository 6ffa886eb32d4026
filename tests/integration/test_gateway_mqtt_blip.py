"""The MQTT gateway through a broker blip: a Mosquitto of this test's own is stopped and
started again; the gateway reconnects and resubscribes by itself, and a services request
made while the broker was away waits in the bounded queue and is answered afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import aiomqtt
import orjson
import pytest

from airgrid.servers.mosquitto import MosquittoUnavailable, PrivateMosquitto
from airgrid.v1 import telemetry_pb2
from gateways.airgrid_link import RegisteredDrone
from gateways.dji_codec import ServiceCall, topic_of
from gateways.mqtt_gateway import MqttGateway
from tests.eventually import eventually

DRONE = RegisteredDrone("drone-001", "nest-01", 120.0)
DOCK_OSD = {
    "mode_code": 0,
    "longitude": 114.4,
    "latitude": 30.5,
    "wind_speed": 2.0,
    "drone_in_dock": 1,
    "sub_device": {"device_sn": "AC1"},
    "drone_charge_state": {"capacity_percent": 90},
}


@pytest.fixture
def broker() -> Iterator[PrivateMosquitto]:
    try:
        b = PrivateMosquitto().__enter__()
    except MosquittoUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield b
    finally:
        b.__exit__(None, None, None)


async def _publish(port: int, topic: str, payload: bytes) -> bool | None:
    try:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.publish(topic, payload, qos=1)
        return True
    except aiomqtt.MqttError:
        return None


@contextlib.asynccontextmanager
async def responder(port: int, dock_sn: str) -> AsyncIterator[list[str]]:
    """A dock that answers every services request with success."""
    methods: list[str] = []

    async def serve() -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", port) as client:
                    await client.subscribe(topic_of(dock_sn, "services"), qos=1)
                    async for message in client.messages:
                        request = orjson.loads(bytes(message.payload))  # type: ignore[arg-type,unused-ignore]
                        methods.append(request["method"])
                        reply = {**request, "data": {"result": 0}}
                        await client.publish(
                            topic_of(dock_sn, "services_reply"), orjson.dumps(reply), qos=1
                        )
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    task = asyncio.create_task(serve())
    try:
        yield methods
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_gateway_reconnects_and_delivers_queued_requests(broker: PrivateMosquitto) -> None:
    records: list[telemetry_pb2.Telemetry] = []
    gateway = MqttGateway(
        docks={"DOCK1": "nest-01"},
        aircraft={"AC1": DRONE.id},
        registered=lambda: {DRONE.id: DRONE},
        submit=records.append,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(gateway.run("127.0.0.1", broker.port, stop, "gw-blip"))
    osd = orjson.dumps({"tid": "t", "bid": "b", "timestamp": 1, "data": DOCK_OSD})
    try:

        async def heard(count: int) -> bool | None:
            await _publish(broker.port, topic_of("DOCK1", "osd"), osd)
            await asyncio.sleep(0.2)
            return True if len(records) >= count else None

        await eventually(lambda: heard(1), 20, "the dock's OSD before the blip")
        assert records[-1].flight_mode == telemetry_pb2.FLIGHT_MODE_DOCKED

        broker.stop()
        await eventually(
            lambda: asyncio.sleep(0.1, True if gateway.client is None else None),
            20,
            "the gateway to notice the broker is gone",
        )
        call = asyncio.create_task(gateway.call("DOCK1", ServiceCall("return_home", {})))
        await asyncio.sleep(0.5)
        assert not call.done()  # waits in the queue while the broker is away
        broker.start()

        async with responder(broker.port, "DOCK1") as methods:
            await asyncio.wait_for(call, 30)
            assert "return_home" in methods
        before = len(records)
        await eventually(lambda: heard(before + 1), 20, "the dock's OSD after the blip")
    finally:
        stop.set()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
