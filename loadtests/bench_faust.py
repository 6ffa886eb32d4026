"""The faust-streaming side of the telemetry bench: a faust agent that only decodes the same
pre-produced records the bare aiokafka loop reads, so the two rates compare faust's per-record
stream machinery with aiokafka's batches. Runs in a child process (faust's app, threads and
event-loop hooks stay out of the process that measures the pipeline)."""

from __future__ import annotations

import asyncio
import time
import uuid
from tempfile import mkdtemp
from typing import Any

from airgrid.bus import topic_name
from airgrid.config import Settings
from airgrid.topics import TELEMETRY_RAW
from airgrid.v1 import telemetry_pb2

TAKE = 2000
WITHIN_S = 0.05
DEADLINE_S = 300.0


async def faust_decode_rate(settings: Settings, records: int) -> float:
    """Records/s of one faust agent decoding `records` raw records, from its first batch."""
    import faust

    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{settings.bootstrap_servers}",
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        datadir=mkdtemp(prefix="airgrid-bench-faust-"),
    )
    topic = app.topic(
        topic_name(settings, TELEMETRY_RAW),
        key_serializer="raw",
        value_serializer="raw",
        value_type=bytes,
    )
    count, started, ended = 0, 0.0, 0.0
    done = asyncio.Event()

    async def decode(stream: Any) -> None:
        nonlocal count, started, ended
        async for values in stream.take(TAKE, within=WITHIN_S):
            if not started:
                started = time.perf_counter()
            for value in values:
                telemetry_pb2.Telemetry.FromString(value)
            count += len(values)
            if count >= records and not done.is_set():
                ended = time.perf_counter()
                done.set()

    app.agent(topic, name="decode")(decode)
    await app.start()
    try:
        await asyncio.wait_for(done.wait(), DEADLINE_S)
    finally:
        await app.stop()
    return count / (ended - started)


def measure(settings_json: str, records: int, result: Any) -> None:
    """Child process entry: the rate goes to `result` (a shared double)."""
    settings = Settings.model_validate_json(settings_json)
    result.value = asyncio.run(faust_decode_rate(settings, records))
