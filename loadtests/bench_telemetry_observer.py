"""The telemetry benchmark's observer, in a process of its own: it stamps when each raw record,
its state and its feed item reach the broker, so latencies are measured outside the worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from airgrid.bus import (
    client_options,
    now_ms,
    topic_name,
    topic_partitions,
)
from airgrid.config import Settings
from airgrid.topics import (
    DRONE_STATE,
    FEEDS,
    TELEMETRY_RAW,
)
from airgrid.v1 import drone_state_pb2, telemetry_pb2


class Observer:
    """Reads a topic from its end and records now − event time of each item, in ms."""

    def __init__(
        self, settings: Settings, topics: list[str], event_time: Callable[[bytes], int]
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.event_time = event_time
        self.samples: list[float] = []
        self.since_ms = 0  # items of records stamped before this (the pre-produced) are skipped
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.settings.telemetry_fetch_wait_ms,
        )
        await consumer.start()
        tps = [tp for name in self.topics for tp in await topic_partitions(consumer, name)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            arrived = time.time() * 1000
            if not self.since_ms:
                continue
            for batch in batches.values():
                for record in batch:
                    stamped = self.event_time(record.value or b"")
                    if stamped >= self.since_ms:
                        self.samples.append(arrived - stamped)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


def observe(settings_json: str, ready: Any, done: Any, results: Any) -> None:
    """Child process: both observers, from the topics' ends; their samples go back at `done`.
    Out of the worker's process, so measuring takes no CPU from what is measured."""
    settings = Settings.model_validate_json(settings_json)

    async def run() -> None:
        # The baseline: the same records seen on the raw topic by a bare consumer, i.e. the
        # producer -> broker -> consumer hop alone, with the same fetch wait as the worker.
        raw = Observer(settings, [topic_name(settings, TELEMETRY_RAW)], _raw_event_time)
        state = Observer(settings, [topic_name(settings, DRONE_STATE)], _state_event_time)
        feed = Observer(settings, [topic_name(settings, t) for t in FEEDS], _feed_event_time)
        observers = (raw, state, feed)
        for observer in observers:
            await observer.start()
        raw.since_ms = state.since_ms = feed.since_ms = now_ms()
        ready.set()
        await asyncio.to_thread(done.wait)
        for observer in observers:
            await observer.stop()
        results.send((raw.samples, state.samples, feed.samples))

    asyncio.run(run())


class ObserverProcess:
    """The observers' child process, seen from the bench."""

    def __init__(self, context: Any, settings: Settings) -> None:
        self.ready, self.done = context.Event(), context.Event()
        self.results, sender = context.Pipe(duplex=False)
        self.process = context.Process(
            target=observe, args=(settings.model_dump_json(), self.ready, self.done, sender)
        )

    async def start(self) -> None:
        self.process.start()
        if not await asyncio.to_thread(self.ready.wait, 60):
            raise RuntimeError("the observer process did not start within 60 s")

    async def samples(self) -> tuple[list[float], list[float], list[float]]:
        self.done.set()
        raw, state, feed = await asyncio.to_thread(self.results.recv)
        return list(raw), list(state), list(feed)

    def stop(self) -> None:
        self.done.set()
        if self.process.pid is not None:
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()


def _raw_event_time(value: bytes) -> int:
    return int(telemetry_pb2.Telemetry.FromString(value).event_time_ms)


def _state_event_time(value: bytes) -> int:
    return int(drone_state_pb2.DroneState.FromString(value).event_time_ms)


def _feed_event_time(value: bytes) -> int:
    return int(orjson.loads(value)["event_time_ms"])
