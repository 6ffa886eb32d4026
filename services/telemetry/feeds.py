"""Department feeds: which department an item belongs to, and the SSE fan-out from Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter

from airgrid.bus import TopicView, client_options, topic_name
from airgrid.config import Settings
from airgrid.topics import DEPARTMENT_CODES, FEEDS, INCIDENTS, MISSION_EVENTS, feed_topic
from airgrid.v1 import incident_pb2, mission_pb2
from airgrid.worker_runs import stop_quietly
from services.telemetry.metrics import SSE_CLIENTS

log = logging.getLogger("airgrid.telemetry")

SSE_DROPPED = Counter(
    "airgrid_feed_sse_dropped_total", "SSE clients dropped because their queue was full."
)


def incident_view(settings: Settings) -> TopicView:
    return TopicView(settings, INCIDENTS, incident_pb2.IncidentEvent.FromString)


def mission_view(settings: Settings) -> TopicView:
    return TopicView(settings, MISSION_EVENTS, mission_pb2.MissionEvent.FromString)


class FeedRouting:
    """A drone on a mission belongs to the feeds of the mission's incident department and of
    the departments the incident is shared with; read from the incident and mission views."""

    def __init__(self, incidents: TopicView, missions: TopicView) -> None:
        self.incidents = incidents
        self.missions = missions

    def departments_of(self, mission_id: str) -> tuple[str, ...]:
        if not mission_id:
            return ()
        mission: mission_pb2.MissionEvent | None = self.missions.items.get(mission_id)
        if mission is None:
            return ()
        event: incident_pb2.IncidentEvent | None = self.incidents.items.get(mission.incident_id)
        if event is None or not event.HasField("accepted"):
            return ()
        incident = event.accepted
        codes = [incident.department, *incident.shared_with]
        return tuple(dict.fromkeys(code for code in codes if code in DEPARTMENT_CODES))


def encode_item(kind: str, body: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, **body})


@dataclass(eq=False)
class Subscription:
    department: str
    event_types: frozenset[str]
    bbox: tuple[float, float, float, float] | None
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(maxsize=256))
    dropped: bool = False

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


class FeedHub:
    """One consumer per process over every feed topic, from the latest offset, fanned out to
    bounded per-client queues. A client whose queue is full is dropped, never waited for."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._subscribers: set[Subscription] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
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
            name = topic_name(self.settings, topic)
            for partition in sorted(consumer.partitions_for_topic(name) or ()):
                tps.append(TopicPartition(name, partition))
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, so nothing after start() is skipped
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="feed-hub")
        self.ready.set()

    def subscribe(self, subscription: Subscription) -> None:
        SSE_CLIENTS.labels(subscription.department).inc(int(subscription not in self._subscribers))
        self._subscribers.add(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        SSE_CLIENTS.labels(subscription.department).dec(int(subscription in self._subscribers))
        self._subscribers.discard(subscription)

    def _department_of(self, topic: str) -> str:
        return topic.rsplit(".", 1)[-1]

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                department = self._department_of(tp.topic)
                listeners = [s for s in self._subscribers if s.department == department]
                if not listeners:
                    continue
                for record in records:
                    try:
                        item = orjson.loads(record.value or b"")
                    except orjson.JSONDecodeError:
                        continue
                    for subscription in listeners:
                        if subscription.dropped or not subscription.wants(item):
                            continue
                        try:
                            subscription.queue.put_nowait(record.value or b"")
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
        its beginning. The subscribers stay connected."""
        await self.stop()
        self._task = self._consumer = None
        await self.start(from_beginning=True)


def feed_of(department: str) -> str:
    return feed_topic(department).name
