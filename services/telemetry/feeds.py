"""Department feeds over SSE: one consumer of the feed topics fanned out to the streams.

Which department an item goes to is feed_routing.py's to say."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from airgrid.bus import client_options, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.topics import FEEDS, feed_topic
from airgrid.worker_runs import stop_quietly
from services.telemetry.feed_cursor import encode_cursor
from services.telemetry.metrics import SSE_CLIENTS, SSE_DROPPED

log = logging.getLogger("airgrid.telemetry")


@dataclass(frozen=True)
class FeedEvent:
    """One item as an SSE event: its id (the stream's Kafka positions), type and JSON data."""

    id: str
    type: str
    data: bytes

    def sse(self) -> bytes:
        lines = [b"id: " + self.id.encode()]
        if self.type and "\n" not in self.type and "\r" not in self.type:
            lines.append(b"event: " + self.type.encode())
        lines.extend(b"data: " + line for line in self.data.splitlines() or [b""])
        return b"\n".join(lines) + b"\n\n"


def parse_item(value: bytes | None) -> dict[str, Any] | None:
    try:
        item = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return item if isinstance(item, dict) else None


@dataclass(eq=False)
class Subscription:
    """One stream's filters and its position on each partition of its department's feed:
    every record before `positions[p]` was either passed to the client or filtered out."""

    department: str
    event_types: frozenset[str]
    bbox: tuple[float, float, float, float] | None
    credential_id: str = ""
    positions: dict[int, int] = field(default_factory=dict)
    queue: asyncio.Queue[FeedEvent] = field(default_factory=lambda: asyncio.Queue(maxsize=256))
    dropped: bool = False
    closed: str = ""
    """Why the server ends this stream (its credential was revoked or expired); empty while
    it may go on."""

    def wants(self, item: dict[str, Any]) -> bool:
        if self.event_types and item.get("type") not in self.event_types:
            return False
        if self.bbox is not None:
            lon, lat = item.get("lon"), item.get("lat")
            if not isinstance(lon, float | int) or not isinstance(lat, float | int):
                return False
            box = self.bbox
            return box[0] <= lon <= box[2] and box[1] <= lat <= box[3]
        return True

    def offer(
        self, partition: int, offset: int, value: bytes, item: dict[str, Any] | None
    ) -> FeedEvent | None:
        """The event for this record, or None when the stream already passed it or its filters
        leave it out. A record at or after the position moves the position past it, so a
        record the catch-up read and the hub both offer is sent once."""
        if offset < self.positions.get(partition, 0):
            return None
        self.positions[partition] = offset + 1
        if item is None or not self.wants(item):
            return None
        kind = item.get("type")
        return FeedEvent(
            encode_cursor(self.positions), kind if isinstance(kind, str) else "", value
        )


class FeedHub:
    """One consumer per process over every feed topic, from the latest offset, fanned out to
    bounded per-client queues. A client whose queue is full is dropped, never waited for; it
    comes back with its Last-Event-ID and catches up on a consumer of its own (`replay`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._subscribers: set[Subscription] = set()
        self._replaying: set[Subscription] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        # Per department, partition → the next offset the hub fans out.
        self._next: dict[str, dict[int, int]] = {}
        self.ready = asyncio.Event()

    async def start(self, *, from_beginning: bool = False) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=self.settings.telemetry_fetch_wait_ms,
        )
        await consumer.start()
        tps = []
        for topic in FEEDS:
            tps.extend(await topic_partitions(consumer, topic_name(self.settings, topic)))
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        positions: dict[str, dict[int, int]] = {}
        for tp in tps:  # resolve the end offsets now, so nothing after start() is skipped
            department = self._department_of(tp.topic)
            positions.setdefault(department, {})[tp.partition] = await consumer.position(tp)
        self._next = positions
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="feed-hub")
        self.ready.set()

    def partitions(self, department: str) -> int:
        return len(self._next.get(department, {}))

    def subscribe(self, subscription: Subscription) -> None:
        """Live from here on: the stream's positions become the hub's."""
        subscription.positions = dict(self._next.get(subscription.department, {}))
        self._add(subscription)

    def _add(self, subscription: Subscription) -> None:
        SSE_CLIENTS.labels(subscription.department).inc(int(subscription not in self._subscribers))
        self._subscribers.add(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        SSE_CLIENTS.labels(subscription.department).dec(int(subscription in self._subscribers))
        self._subscribers.discard(subscription)
        self._replaying.discard(subscription)

    def close_streams_of(self, credential_id: str, reason: str) -> None:
        """End every stream of a credential (revoked): each closes on its next tick."""
        for subscription in self._subscribers | self._replaying:
            if subscription.credential_id == credential_id:
                subscription.closed = reason

    def _caught_up(self, subscription: Subscription) -> bool:
        hub = self._next.get(subscription.department, {})
        return all(subscription.positions.get(p, 0) >= offset for p, offset in hub.items())

    async def replay(self, subscription: Subscription) -> AsyncIterator[FeedEvent]:
        """The records after the subscription's positions that the broker still holds, read on
        a consumer of this stream's own (a slow client slows nobody else), until it has passed
        the hub on every partition; then the hub carries it on, in the same step, so nothing
        falls between. Records both offer are sent once (`Subscription.offer`)."""
        name = topic_name(self.settings, feed_topic(subscription.department))
        tps = [TopicPartition(name, p) for p in sorted(self._next[subscription.department])]
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.telemetry_fetch_wait_ms,
        )
        self._replaying.add(subscription)
        try:
            await consumer.start()
            consumer.assign(tps)
            first = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            for tp in tps:
                wanted = subscription.positions.get(tp.partition, 0)
                if wanted > end[tp]:
                    # Past the end: the id came from a log the broker no longer has (an empty
                    # broker on the same address); all of the new log came after it.
                    wanted = first[tp]
                wanted = max(wanted, first[tp])  # older records are past retention
                subscription.positions[tp.partition] = wanted
                consumer.seek(tp, wanted)
            while not self._caught_up(subscription):
                if subscription.closed:
                    return
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                events = [
                    event
                    for tp, records in batches.items()
                    for record in records
                    if (
                        event := subscription.offer(
                            tp.partition,
                            record.offset,
                            record.value or b"",
                            parse_item(record.value),
                        )
                    )
                    is not None
                ]
                for tp in tps:  # past control records too, which carry no item
                    position = await consumer.position(tp)
                    if position > subscription.positions.get(tp.partition, 0):
                        subscription.positions[tp.partition] = position
                for event in events:
                    yield event
            self._replaying.discard(subscription)
            self._add(subscription)
        finally:
            self._replaying.discard(subscription)
            await stop_quietly(consumer.stop, "feed replay consumer")

    def _department_of(self, topic: str) -> str:
        return topic.rsplit(".", 1)[-1]

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                department = self._department_of(tp.topic)
                if records:
                    next_offsets = self._next.setdefault(department, {})
                    next_offsets[tp.partition] = max(
                        next_offsets.get(tp.partition, 0), records[-1].offset + 1
                    )
                listeners = [s for s in self._subscribers if s.department == department]
                if not listeners:
                    continue
                for record in records:
                    value = record.value or b""
                    item = parse_item(value)
                    for subscription in listeners:
                        if subscription.dropped:
                            continue
                        event = subscription.offer(tp.partition, record.offset, value, item)
                        if event is None:
                            continue
                        try:
                            subscription.queue.put_nowait(event)
                        except asyncio.QueueFull:
                            subscription.dropped = True
                            SSE_DROPPED.inc()
                            log.info("slow SSE client dropped", extra={"department": department})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await stop_quietly(self._consumer.stop, "feed consumer")

    async def read_new_log(self) -> None:
        """After the broker came back without its data: its positions lie past the end of the
        new log, where Tansu answers with nothing, so the subscribers would hear nothing until
        the new log grew past them. Everything in the new log came after the loss: read it from
        its beginning, and so do the subscribers, which stay connected."""
        await self.stop()
        self._task = self._consumer = None
        await self.start(from_beginning=True)
        for subscription in self._subscribers:
            subscription.positions = dict(self._next.get(subscription.department, {}))


def feed_of(department: str) -> str:
    return feed_topic(department).name
