"""The gateways' telemetry uplink through an outage: records wait in a bounded buffer (the
oldest dropped first) while the telemetry service cannot be reached, and once it is back on
the same address the records kept reach `airgrid.telemetry.raw`, in order and once each."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer

from airgrid.auth import Role, issue_credential
from airgrid.bus import client_options, ensure_topics, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.topics import TELEMETRY_RAW
from airgrid.v1 import telemetry_pb2
from gateways.airgrid_link import AirgridLink, GatewayRefused, LinkConfig
from services.telemetry.app import build_app
from tests.conftest import free_port
from tests.eventually import eventually, until

DRONE = "drone-uplink"


def _record(seq: int, drone_id: str = "drone-001") -> telemetry_pb2.Telemetry:
    return telemetry_pb2.Telemetry(drone_id=drone_id, seq=seq, lon=114.4, lat=30.5)


@contextlib.asynccontextmanager
async def telemetry_on(settings: Settings, port: int) -> AsyncIterator[None]:
    """The real telemetry service, with its lifespan, listening on the given port."""
    server = uvicorn.Server(
        uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 90, "telemetry serving")
        assert not task.done(), f"telemetry did not start: {task.exception()!r}"
        yield
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


async def gateway_key(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, key = issue_credential(session, role=Role.GATEWAY, nest_id="nest-a")
    finally:
        await engine.dispose()
    return key


async def raw_seqs(settings: Settings, drone_id: str) -> list[int]:
    """The seqs of the drone's records on the raw topic, from the beginning, in order."""
    name = topic_name(settings, TELEMETRY_RAW)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, name)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        pending = {tp: end for tp, end in (await consumer.end_offsets(partitions)).items() if end}
        seqs: list[int] = []
        while pending:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    value = telemetry_pb2.Telemetry.FromString(record.value or b"")
                    if value.drone_id == drone_id:
                        seqs.append(value.seq)
                if records and records[-1].offset + 1 >= pending.get(tp, 0):
                    pending.pop(tp, None)
        return seqs
    finally:
        await consumer.stop()


async def test_records_kept_through_an_outage_arrive_once_the_service_is_back(
    settings: Settings,
) -> None:
    s = settings.model_copy(update={"topic_prefix": f"up{uuid.uuid4().hex[:8]}."})
    await ensure_topics(s)
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # nothing listens there yet: an outage
    link = AirgridLink(
        s,
        LinkConfig(
            gateway="test",
            key=await gateway_key(s),
            registry_url=url,
            telemetry_url=url,
            consumer_group="unused",
            buffer_records=5,
        ),
    )
    try:
        for seq in range(1, 9):
            link.submit(_record(seq, DRONE))
        assert await link.send_once() is False
        assert [r.seq for r in link.buffer] == [4, 5, 6, 7, 8]
        async with telemetry_on(s, port):

            async def delivered() -> bool | None:
                return True if await link.send_once() and not link.buffer else None

            await eventually(delivered, 60, "the kept records taken by the telemetry service")
            # Records 1-3 went over the bound; the rest arrive in order, once each.
            assert await raw_seqs(s, DRONE) == [4, 5, 6, 7, 8]
    finally:
        await link.stop()


async def test_records_wait_through_an_outage_within_the_bound(settings: Settings) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens here: a network outage
    link = AirgridLink(
        settings,
        LinkConfig(
            gateway="test",
            key="ag_0000000000000000_not-a-real-key-000000",
            registry_url=nobody,
            telemetry_url=nobody,
            consumer_group="unused",
            buffer_records=5,
        ),
    )
    try:
        for seq in range(1, 4):
            link.submit(_record(seq))
        assert await link.send_once() is False
        assert [r.seq for r in link.buffer] == [1, 2, 3]  # kept, in order, for the retry
        for seq in range(4, 9):
            link.submit(_record(seq))
        assert [r.seq for r in link.buffer] == [4, 5, 6, 7, 8]  # bounded: oldest dropped
        assert await link.send_once() is False
        assert [r.seq for r in link.buffer] == [4, 5, 6, 7, 8]
    finally:
        await link.stop()


async def test_an_unreachable_registry_is_reported_at_start_and_tolerated_later(
    settings: Settings,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    link = AirgridLink(settings, LinkConfig("test", "bad", nobody, nobody, "unused"))
    try:
        with pytest.raises(GatewayRefused, match="is it running"):
            await link.refresh_registry(strict=True)
        await link.refresh_registry()  # while running: logged, the last known list is kept
        assert link.drones == {}
    finally:
        await link.stop()
