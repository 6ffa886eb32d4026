"""Integration: two telemetry workers share the raw topic through the consumer group; when one
stops, the other takes its partitions over and continues each drone from the state topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from airgrid.bus import Producer, TopicView, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.topics import REGISTRY_CHANGES, TELEMETRY_RAW
from airgrid.v1 import registry_pb2, telemetry_pb2
from services.telemetry.feeds import FeedRouting, incident_view, mission_view
from services.telemetry.store import track_points
from services.telemetry.stream import TelemetryWorker, registry_view, state_view

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0


def rejected(reason: str) -> float:
    """This process's count of records sent to the DLQ for `reason`."""
    value = REGISTRY.get_sample_value("airgrid_telemetry_rejected_total", {"reason": reason})
    return value or 0.0


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


class RunningWorker:
    """One worker with its own views, as one process would have them."""

    def __init__(self, settings: Settings, producer: Producer) -> None:
        self.views: list[TopicView] = [
            registry_view(settings),
            state_view(settings),
            incident_view(settings),
            mission_view(settings),
        ]
        self.engine = create_engine(settings)
        self.worker = TelemetryWorker(
            settings=settings,
            producer=producer,
            registry=self.views[0],
            states=self.views[1],
            engine=self.engine,
            routing=FeedRouting(self.views[2], self.views[3]),
        )
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for view in self.views:
            await view.start()
        self.task = asyncio.create_task(self.worker.run(self.stop_event))

    def last_seq(self, drone_id: str) -> int:
        state = self.views[1].items.get(drone_id)
        return int(state.last_seq) if state is not None else 0

    async def stop(self) -> None:
        self.stop_event.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, DEADLINE_S)
        for view in self.views:
            await view.stop()
        await self.engine.dispose()


async def test_two_workers_share_the_load_and_one_takes_over_when_the_other_stops(
    fresh_prefix: Settings,
) -> None:
    settings = fresh_prefix
    await ensure_topics(settings)
    producer = Producer(settings, source="airgrid/test")
    await producer.start()
    run = uuid.uuid4().hex[:6]
    drones = [f"dr-w{i}-{run}" for i in range(24)]
    for drone_id in drones:
        change = registry_pb2.RegistryChange(
            entity_id=drone_id,
            version=1,
            drone=registry_pb2.Drone(id=drone_id, home_nest="nest-a", status="active"),
        )
        await producer.send(
            REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="test"
        )
    await producer.flush()

    async def produce(first_seq: int, last_seq: int) -> None:
        base = now_ms()
        for seq in range(first_seq, last_seq + 1):
            for drone_id in drones:
                value = telemetry_pb2.Telemetry(
                    drone_id=drone_id,
                    seq=seq,
                    event_time_ms=base + seq,
                    lon=121.4,
                    lat=31.1,
                    alt_m=80.0,
                    battery_pct=90.0,
                    flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
                )
                await producer.send(
                    TELEMETRY_RAW, value.SerializeToString(), key=drone_id, ce_type="test"
                )
        await producer.flush()

    rejected_before = {reason: rejected(reason) for reason in ("duplicate", "out_of_order")}
    first, second = RunningWorker(settings, producer), RunningWorker(settings, producer)
    try:
        await first.start()
        await second.start()
        await eventually(
            lambda: len(first.worker.assigned | second.worker.assigned) == 12,
            "the group to assign every partition",
        )
        await eventually(
            lambda: bool(first.worker.assigned) and bool(second.worker.assigned),
            "both workers to own partitions",
        )
        assert not first.worker.assigned & second.worker.assigned
        await produce(1, 20)
        await eventually(
            lambda: all(second.last_seq(d) == 20 for d in drones), "every drone at seq 20"
        )

        await first.stop()
        await produce(21, 40)
        await eventually(
            lambda: len(second.worker.assigned) == 12, "the second worker to own every partition"
        )
        await eventually(
            lambda: all(second.last_seq(d) == 40 for d in drones), "every drone at seq 40"
        )
    finally:
        await second.stop()
        await producer.stop()

    # Taken-over drones continued from their newest state: nothing rejected as already seen.
    for reason, before in rejected_before.items():
        assert rejected(reason) == before, reason
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.select(track_points.c.drone_id, sa.func.count())
                    .where(track_points.c.drone_id.in_(drones))
                    .group_by(track_points.c.drone_id)
                )
            ).all()
    finally:
        await engine.dispose()
    assert sorted(rows) == sorted((d, 40) for d in drones)


async def test_a_batch_whose_track_write_fails_is_read_again_and_every_point_is_stored_once(
    fresh_prefix: Settings,
) -> None:
    """The database refuses one track write: the worker rewinds to its last commit and reads
    the records again. Its state had already been published, so the replayed records are now
    duplicates or out of order for live state; the track still gets every point exactly once
    and live state ends at the newest seq."""
    settings = fresh_prefix
    await ensure_topics(settings)
    producer = Producer(settings, source="airgrid/test")
    await producer.start()
    run = uuid.uuid4().hex[:6]
    drones = [f"dr-r{i}-{run}" for i in range(12)]
    for drone_id in drones:
        change = registry_pb2.RegistryChange(
            entity_id=drone_id,
            version=1,
            drone=registry_pb2.Drone(id=drone_id, home_nest="nest-a", status="active"),
        )
        await producer.send(
            REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="test"
        )
    await producer.flush()

    async def produce(first_seq: int, last_seq: int) -> None:
        base = now_ms()
        for seq in range(first_seq, last_seq + 1):
            for drone_id in drones:
                value = telemetry_pb2.Telemetry(
                    drone_id=drone_id,
                    seq=seq,
                    event_time_ms=base + seq,
                    lon=121.4,
                    lat=31.1,
                    alt_m=80.0,
                    battery_pct=90.0,
                    flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
                )
                await producer.send(
                    TELEMETRY_RAW, value.SerializeToString(), key=drone_id, ce_type="test"
                )
        await producer.flush()

    running = RunningWorker(settings, producer)
    track = running.worker.track
    real_write = track._write
    refused = asyncio.Event()

    async def refuse_once(engine: Any, records: Any) -> None:
        if not refused.is_set() and any(r.seq > 10 for r in records):
            refused.set()
            raise ConnectionError("the database went away for this write")
        await real_write(engine, records)

    track._write = refuse_once
    try:
        await running.start()
        await produce(1, 10)
        await eventually(lambda: all(running.last_seq(d) == 10 for d in drones), "seq 10")
        await produce(11, 20)
        await eventually(refused.is_set, "the refused track write")
        await eventually(lambda: all(running.last_seq(d) == 20 for d in drones), "seq 20")
        await produce(21, 25)
        await eventually(lambda: all(running.last_seq(d) == 25 for d in drones), "seq 25")

        async def stored() -> list[tuple[str, int, int]]:
            async with running.engine.connect() as connection:
                rows = await connection.execute(
                    sa.select(
                        track_points.c.drone_id,
                        sa.func.count(),
                        sa.func.count(sa.distinct(track_points.c.seq)),
                    )
                    .where(track_points.c.drone_id.in_(drones))
                    .group_by(track_points.c.drone_id)
                )
                return sorted((r[0], r[1], r[2]) for r in rows)

        expected = sorted((d, 25, 25) for d in drones)
        deadline = time.monotonic() + DEADLINE_S
        while (rows := await stored()) != expected:
            assert time.monotonic() < deadline, f"track rows {rows}"
            await asyncio.sleep(0.2)
    finally:
        await running.stop()
        await producer.stop()
