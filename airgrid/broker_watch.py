"""Notices, for the dispatch worker, that the broker is gone or came back without its data.

While the broker is down the Kafka clients only retry, and when an empty broker (the embedded
one keeps its data in memory) comes back on the same address they carry on as if nothing had
happened: the views jump to the new end, and the first metadata request re-creates a topic
with the broker's defaults instead of the declared partitions and configs. So the worker ends
its run when the broker has been unreachable for `grace_seconds`, or when a topic it reads is
missing or one of its partitions ends before an offset already seen there (the log was lost);
the next run waits for the broker, re-creates the declared topics, and rebuilds everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from airgrid.bus import (
    client_options,
    ensure_topics,
    topic_name,
    wait_for_broker,
)
from airgrid.config import Settings
from airgrid.topics import Topic
from airgrid.worker_runs import RunEnded, stop_quietly

log = logging.getLogger("airgrid.broker")


class BrokerLost(RunEnded):
    """The broker is unreachable, or lost the data the worker had read."""

    def __init__(self, message: str) -> None:
        super().__init__("broker", message)


class BrokerWatch:
    """Probes the broker every `period_seconds` with requests that never create a topic (a
    metadata request for all topics, then the end offsets of the watched partitions)."""

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[Topic],
        *,
        period_seconds: float = 1.0,
        grace_seconds: float = 10.0,
        timeout_seconds: float = 5.0,
        probed: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        # Set once a probe has seen the watched partitions' ends: a loss before that, to an
        # empty broker whose topics another client re-creates, would go unnoticed.
        self.probed = probed or asyncio.Event()
        self.names = [topic_name(settings, t) for t in topics]
        self.period_seconds = period_seconds
        self.grace_seconds = grace_seconds
        self.timeout_seconds = timeout_seconds
        self.ends: dict[TopicPartition, int] = {}
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def watch(self) -> None:
        """Return never; raise BrokerLost."""
        unreachable_since: float | None = None
        try:
            while True:
                try:
                    await asyncio.wait_for(self.probe(), timeout=self.timeout_seconds)
                    unreachable_since = None
                except BrokerLost:
                    raise
                except (KafkaError, OSError, TimeoutError) as error:
                    await self._close()
                    now = time.monotonic()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since >= self.grace_seconds:
                        raise BrokerLost(
                            f"the broker has been unreachable for {self.grace_seconds:.0f} s "
                            f"({type(error).__name__})"
                        ) from error
                await asyncio.sleep(self.period_seconds)
        finally:
            await self._close()

    async def probe(self) -> None:
        admin, offsets = await self._clients()
        # All topics, although only a few are watched: aiokafka's public admin call asks for
        # named topics with allow_auto_topic_creation set, and a broker that auto-creates
        # would bring a lost topic back with its defaults, hiding the very loss watched for.
        described = await admin.describe_topics()
        partitions = {
            t["topic"]: [p["partition"] for p in t["partitions"]]
            for t in described
            if not t.get("error_code")
        }
        missing = [name for name in self.names if name not in partitions]
        if missing:
            raise BrokerLost(f"the broker lost topics this worker reads: {', '.join(missing)}")
        tps = [TopicPartition(n, p) for n in self.names for p in sorted(partitions[n])]
        ends: dict[TopicPartition, int] = await offsets.end_offsets(tps)
        for tp, end in ends.items():
            seen = self.ends.get(tp, 0)
            if end < seen:
                raise BrokerLost(
                    f"{tp.topic}[{tp.partition}] ends at {end}, before offset {seen} seen "
                    "there: the broker lost its log"
                )
            self.ends[tp] = end
        self.probed.set()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            options = client_options(self.settings)
            admin = AIOKafkaAdminClient(**options, request_timeout_ms=3_000)
            offsets = AIOKafkaConsumer(
                **options, group_id=None, enable_auto_commit=False, request_timeout_ms=3_000
            )
            try:
                await admin.start()
                await offsets.start()
            except BaseException:
                await stop_quietly(admin.close, "broker watch admin")
                await stop_quietly(offsets.stop, "broker watch offsets")
                raise
            self._admin, self._offsets = admin, offsets
        return self._admin, self._offsets

    async def _close(self) -> None:
        admin, offsets = self._admin, self._offsets
        self._admin = self._offsets = None
        if admin is not None:
            with contextlib.suppress(Exception):
                await stop_quietly(admin.close, "broker watch admin")
        if offsets is not None:
            await stop_quietly(offsets.stop, "broker watch offsets")


async def recover_after_each_loss(
    settings: Settings,
    topics: Sequence[Topic],
    recover: Callable[[], Awaitable[None]],
    *,
    what: str,
    period_seconds: float = 1.0,
    grace_seconds: float = 10.0,
    probed: asyncio.Event | None = None,
) -> None:
    """Never returns: watch the broker, and each time it is lost (or back without its data),
    once it answers again and the declared topics exist (an empty broker has none), run
    `recover`; a recovery that fails (the broker or the database again) is tried again."""
    while True:
        watch = BrokerWatch(
            settings,
            topics,
            period_seconds=period_seconds,
            grace_seconds=grace_seconds,
            probed=probed,
        )
        try:
            await watch.watch()
        except BrokerLost as lost:
            log.warning(f"broker lost; {what}", extra={"why": str(lost)})
        while True:
            try:
                await wait_for_broker(settings, timeout=30)
                await ensure_topics(settings)
                await recover()
                break
            except Exception as error:  # the broker or the database again: try again
                log.warning(f"not done yet: {what}", extra={"error": repr(error)})
                await asyncio.sleep(period_seconds)
