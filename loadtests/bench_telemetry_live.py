"""The telemetry benchmark's live load at a fixed rate (in a child process), and what is watched
in the worker's process meanwhile: event-loop stalls, garbage collections, an optional profile."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airgrid.bus import (
    Producer,
    now_ms,
    topic_name,
)
from airgrid.config import Settings
from airgrid.topics import (
    TELEMETRY_RAW,
)
from loadtests.bench_telemetry_records import telemetry_value
from services.telemetry.batched_sends import PartitionedBatches


def live_load(
    settings_json: str,
    drones: list[str],
    missions: dict[str, str],
    first_seq: int,
    cfg: Any,
    produced: Any,
    produced_seconds: Any,
) -> None:
    """Child process: produces at a fixed rate (by elapsed time, so a late tick catches up),
    stamping each record with its send time; `produced` counts what it sent and
    `produced_seconds` the time it took from its first record, not from the process start.
    Partition batches keep the generator cheap on a machine whose cores it shares with what
    it measures."""
    settings = Settings.model_validate_json(settings_json)

    async def produce() -> None:
        producer = Producer(settings, source="airgrid/bench-load")
        await producer.start()
        batches = PartitionedBatches(producer.raw)
        topic = topic_name(settings, TELEMETRY_RAW)
        await batches.know([topic])
        fixed = [
            ("ce_specversion", b"1.0"),
            ("ce_source", b"airgrid/bench-load"),
            ("ce_type", b"bench"),
            ("content-type", TELEMETRY_RAW.content_type.encode()),
        ]
        tick_s = 0.01
        sent, index, seq = 0, 0, first_seq
        started = time.perf_counter()
        next_tick = started
        try:
            while (elapsed := time.perf_counter() - started) < cfg["seconds"]:
                stamp = now_ms()
                ce_time = datetime.now(UTC).isoformat().encode()
                due = int(cfg["rate"] * elapsed) - sent
                for _ in range(due):
                    drone_id = drones[index]
                    value = telemetry_value(drone_id, seq, stamp, missions.get(drone_id, ""))
                    headers = [
                        *fixed,
                        ("ce_id", f"{drone_id}:{seq}".encode()),
                        ("ce_time", ce_time),
                    ]
                    batches.add(topic, drone_id.encode(), value, headers)
                    index += 1
                    if index == len(drones):
                        index, seq = 0, seq + 1
                await batches.send()
                sent += max(due, 0)
                produced.value = sent
                produced_seconds.value = time.perf_counter() - started
                next_tick += tick_s
                await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())


class PhaseProfile:
    """cProfile of one phase of the worker's process when AIRGRID_BENCH_PROFILE names a
    directory (`<phase>.prof` there; read with `python -m pstats`); otherwise nothing."""

    def __init__(self, phase: str) -> None:
        folder = os.environ.get("AIRGRID_BENCH_PROFILE")
        self.path = Path(folder) / f"{phase}.prof" if folder else None
        self.profiler = cProfile.Profile() if self.path else None
        if self.profiler is not None:
            self.profiler.enable()

    def save(self) -> None:
        if self.profiler is not None and self.path is not None:
            self.profiler.disable()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.profiler.dump_stats(self.path)
            self.profiler = None


class LoopWatch:
    """Samples how late a 5 ms sleep wakes up (event-loop stalls, wall time) and the CPU time
    of every garbage collection, in the worker's process, while running."""

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        # CPU time of the collecting thread: on a shared machine wall time would add the
        # time the process waited for a core.
        if phase == "start":
            self._gc_started = time.thread_time()
        elif self._gc_started:
            self.gc_pauses.append((time.thread_time() - self._gc_started) * 1000)

    async def _sample(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(0.005)
            self.stalls.append((time.perf_counter() - asked) * 1000 - 5)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._sample())

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
