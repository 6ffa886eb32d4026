"""Integration: two telemetry workers share the raw topic through the consumer group; when one
stops, the other takes its partitions over and continues each drone from the state topic."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from airgrid.bus import Producer, ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine
from services.telemetry.models import track_points
from tests.eventually import until
from tests.integration.telemetry_rig import (
    DEADLINE_S,
    RunningWorker,
    register_drones,
    send_seqs,
)

pytestmark = pytest.mark.integration


def rejected(reason: str) -> float:
    """This process's count of records sent to the DLQ for `reason`."""
    value = REGISTRY.get_sample_value("airgrid_telemetry_rejected_total", {"reason": reason})
    return value or 0.0


async def test_two_workers_share_the_load_and_one_takes_over_when_the_other_stops(
    fresh_prefix: Settings,
) -> None:
    settings = fresh_prefix
    await ensure_topics(settings)
    producer = Producer(settings, source="airgrid/test")
    await producer.start()
    run = uuid.uuid4().hex[:6]
    drones = [f"dr-w{i}-{run}" for i in range(24)]
    await register_drones(producer, drones)

    rejected_before = {reason: rejected(reason) for reason in ("duplicate", "out_of_order")}
    first, second = RunningWorker(settings, producer), RunningWorker(settings, producer)
    try:
        await first.start()
        await second.start()
        await until(
            lambda: len(first.worker.assigned | second.worker.assigned) == 12,
            DEADLINE_S,
            "the group to assign every partition",
        )
        await until(
            lambda: bool(first.worker.assigned) and bool(second.worker.assigned),
            DEADLINE_S,
            "both workers to own partitions",
        )
        assert not first.worker.assigned & second.worker.assigned
        await send_seqs(producer, drones, 1, 20)
        await until(
            lambda: all(second.last_seq(d) == 20 for d in drones),
            DEADLINE_S,
            "every drone at seq 20",
        )

        await first.stop()
        await send_seqs(producer, drones, 21, 40)
        await until(
            lambda: len(second.worker.assigned) == 12,
            DEADLINE_S,
            "the second worker to own every partition",
        )
        await until(
            lambda: all(second.last_seq(d) == 40 for d in drones),
            DEADLINE_S,
            "every drone at seq 40",
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
    await register_drones(producer, drones)

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
        await send_seqs(producer, drones, 1, 10)
        await until(lambda: all(running.last_seq(d) == 10 for d in drones), DEADLINE_S, "seq 10")
        await send_seqs(producer, drones, 11, 20)
        await until(refused.is_set, DEADLINE_S, "the refused track write")
        await until(lambda: all(running.last_seq(d) == 20 for d in drones), DEADLINE_S, "seq 20")
        await send_seqs(producer, drones, 21, 25)
        await until(lambda: all(running.last_seq(d) == 25 for d in drones), DEADLINE_S, "seq 25")

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
