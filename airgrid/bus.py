"""Kafka adapter: topic creation, idempotent producer with CloudEvents headers, consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from airgrid import tracing
from airgrid.config import Settings
from airgrid.observability import watch_consumer
from airgrid.topics import ALL_TOPICS, Topic
from airgrid.worker_runs import stop_quietly

log = logging.getLogger("airgrid.bus")

TOPIC_ALREADY_EXISTS = 36
REASON_HEADER = "airgrid_reason"


class BrokerUnavailable(RuntimeError):
    """The Kafka broker could not be reached; the message says what to do."""


def topic_name(settings: Settings, topic: Topic | str) -> str:
    name = topic if isinstance(topic, str) else topic.name
    return f"{settings.topic_prefix}{name}"


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by producers, consumers and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
        options["ssl_context"].check_hostname = settings.kafka_ssl_check_hostname
    return options


def _unreachable(settings: Settings, error: BaseException) -> BrokerUnavailable:
    where = settings.bootstrap_servers
    hint = (
        "start it with `airgrid up` (or `airgrid broker`)"
        if settings.embedded_kafka
        else "check AIRGRID_KAFKA_BOOTSTRAP"
    )
    return BrokerUnavailable(f"Kafka broker at {where} is not reachable ({error}); {hint}.")


async def ensure_topics(settings: Settings, topics: Iterable[Topic] = ALL_TOPICS) -> list[str]:
    """Create every declared topic that does not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=10_000)
    try:
        await admin.start()
    except (KafkaConnectionError, KafkaError, OSError) as error:
        with contextlib.suppress(Exception):
            await admin.close()
        raise _unreachable(settings, error) from error
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                topic_name(settings, t),
                num_partitions=t.partitions,
                replication_factor=settings.topic_replication,
                topic_configs=dict(t.configs),
            )
            for t in topics
            if topic_name(settings, t) not in existing
        ]
        if wanted:
            response = await admin.create_topics(wanted)
            for name, code, message in _topic_errors(response):
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise BrokerUnavailable(f"could not create topic {name}: {code} {message}")
                if code == 0:
                    created.append(name)
    finally:
        await admin.close()
    if created:
        log.info("topics created", extra={"topics": created})
    return created


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    rows = []
    for item in response.topic_errors:
        name, code = item[0], item[1]
        message = item[2] if len(item) > 2 else None
        rows.append((name, code, message))
    return rows


def now_ms() -> int:
    return int(time.time() * 1000)


def cloudevent_headers(
    *, ce_type: str, source: str, content_type: str, ce_id: str | None = None
) -> list[tuple[str, bytes]]:
    """CloudEvents attributes in the Kafka binary content mode."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", (ce_id or uuid.uuid4().hex).encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("content-type", content_type.encode()),
    ]


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return None


class Producer:
    """Idempotent producer (when the broker supports it) that stamps CloudEvents headers."""

    def __init__(self, settings: Settings, *, source: str) -> None:
        self.settings = settings
        self.source = source
        self.idempotent = False
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        mode = self.settings.kafka_idempotence.lower()
        attempts = [True, False] if mode == "auto" else [mode in ("on", "true", "1")]
        last_error: BaseException | None = None
        sender_log = logging.getLogger("aiokafka.producer.sender")
        for idempotent in attempts:
            producer = AIOKafkaProducer(
                **client_options(self.settings),
                enable_idempotence=idempotent,
                acks="all",
                linger_ms=2,
                max_batch_size=256 * 1024,
                request_timeout_ms=15_000,
            )
            # A refusal of InitProducerId is expected on some brokers (Tansu); we log it once.
            quiet = sender_log.level
            sender_log.setLevel(logging.CRITICAL if len(attempts) > 1 else quiet)
            try:
                await asyncio.wait_for(producer.start(), timeout=20)
            except (KafkaError, OSError, TimeoutError) as error:
                last_error = error
                with contextlib.suppress(Exception):
                    await producer.stop()
                if isinstance(error, KafkaConnectionError | OSError | TimeoutError):
                    break
                log.info(
                    "the broker refuses idempotent producers; using acks=all without it",
                    extra={"error": repr(error)},
                )
                continue
            finally:
                sender_log.setLevel(quiet)
            self._producer = producer
            self.idempotent = idempotent
            return
        raise _unreachable(self.settings, last_error or RuntimeError("unknown"))

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def raw(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    async def send(
        self,
        topic: Topic | str,
        value: bytes,
        *,
        key: str | None,
        ce_type: str,
        ce_id: str | None = None,
        content_type: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[Any]:
        """Queue one record; await the returned future for the broker's acknowledgement."""
        ctype = content_type or (topic.content_type if isinstance(topic, Topic) else "")
        headers = cloudevent_headers(
            ce_type=ce_type, source=self.source, content_type=ctype, ce_id=ce_id
        )
        headers.extend(extra_headers)
        future: asyncio.Future[Any] = await self.raw.send(
            topic_name(self.settings, topic),
            value,
            key=key.encode() if key is not None else None,
            headers=headers,
        )
        return future

    async def send_and_wait(self, topic: Topic | str, value: bytes, **kwargs: Any) -> None:
        future = await self.send(topic, value, **kwargs)
        await future

    async def flush(self) -> None:
        await self.raw.flush()


class SeenIds:
    """Bounded memory of recently processed ce_ids, to drop redeliveries cheaply."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, ce_id: str | None) -> bool:
        """Check and remember at once: only for handlers whose effect cannot fail after it."""
        if self.contains(ce_id):
            return True
        self.remember(ce_id)
        return False

    def contains(self, ce_id: str | None) -> bool:
        return bool(ce_id) and ce_id in self._ids

    def remember(self, ce_id: str | None) -> None:
        """Call once the record's effects are done, so a retried batch is not skipped."""
        if not ce_id:
            return
        self._ids[ce_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


BatchHandler = Callable[[list[ConsumerRecord[bytes, bytes]]], Awaitable[None]]


@dataclass
class ConsumerSpec:
    topics: Sequence[Topic]
    group_id: str
    max_records: int = 2000
    timeout_ms: int = 100
    # How long the broker may hold a fetch that finds nothing new. Tansu answers only when
    # this runs out (new records do not wake it), so it is also a floor on delivery latency.
    fetch_max_wait_ms: int = 500


async def start_group_consumer(settings: Settings, spec: ConsumerSpec) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        *(topic_name(settings, t) for t in spec.topics),
        **client_options(settings),
        group_id=f"{settings.topic_prefix}{spec.group_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=spec.max_records,
        fetch_max_wait_ms=spec.fetch_max_wait_ms,
        # Short, so a restarted member rejoins fast: Tansu starts groups at generation 0 and
        # aiokafka then skips LeaveGroup, so the broker waits out the old member's session.
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_500,
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout=30)
    except (KafkaError, OSError, TimeoutError) as error:
        with contextlib.suppress(Exception):
            await consumer.stop()
        raise _unreachable(settings, error) from error
    watch_consumer(spec.group_id, consumer, settings.topic_prefix)
    return consumer


async def run_batches(
    consumer: AIOKafkaConsumer,
    handler: BatchHandler,
    *,
    spec: ConsumerSpec,
    name: str,
    stop: asyncio.Event | None = None,
) -> None:
    """At-least-once loop: fetch a batch, handle it, then commit its offsets.

    A handler error is logged and the batch retried after a pause: poison records are the
    handler's job (DLQ), so an exception here means an infrastructure fault (database down).
    """
    while stop is None or not stop.is_set():
        batches = await consumer.getmany(timeout_ms=spec.timeout_ms, max_records=spec.max_records)
        if not batches:
            continue
        # Each partition's records stay in offset order: per-key order is what Kafka promises.
        records = [r for partition in batches.values() for r in partition]
        while True:
            try:
                await handler(records)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch handler failed; retrying", extra={"consumer": name})
                await asyncio.sleep(1.0)
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}
        try:
            await consumer.commit(offsets)
        except KafkaError as error:
            # A rebalance took the partitions away; the new owner replays from the last commit.
            log.warning("commit failed", extra={"consumer": name, "error": repr(error)})


async def topic_partitions(consumer: AIOKafkaConsumer, name: str) -> list[TopicPartition]:
    """The partitions of topic `name`, for a consumer that assigns them itself (no group).

    Such a consumer knows no topic right after start(): its bootstrap metadata request names
    no topics, which Apache Kafka answers with none (Tansu with all). One full refresh fixes it.
    """
    partitions = consumer.partitions_for_topic(name)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(name)
    return [TopicPartition(name, p) for p in sorted(partitions or ())]


class TopicView:
    """Reads a keyed topic from the beginning on every partition (no group) into a dict.

    Each service replica keeps its own view, so HTTP reads are stateless and never touch
    another service's database. With `traced_as`, each record that arrives once the view
    caught up is applied in a span of that name continuing the record's trace (the replay
    of the topic at start-up is not traced again).
    """

    def __init__(
        self,
        settings: Settings,
        topic: Topic,
        decode: Callable[[bytes], Any],
        *,
        on_update: Callable[[str, Any], None] | None = None,
        traced_as: str | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.decode = decode
        self.on_update = on_update
        self.traced_as = traced_as
        self.items: dict[str, Any] = {}
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings), enable_auto_commit=False, group_id=None
        )
        try:
            await asyncio.wait_for(consumer.start(), timeout=30)
        except (KafkaError, OSError, TimeoutError) as error:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise _unreachable(self.settings, error) from error
        name = topic_name(self.settings, self.topic)
        tps = await topic_partitions(consumer, name)
        if not tps:
            await consumer.stop()
            raise BrokerUnavailable(f"topic {name} does not exist; run the services' start-up")
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(ends), name=f"view:{name}")

    async def _run(self, ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        pending = {tp: end for tp, end in ends.items() if end > 0}
        if not pending:
            self.caught_up.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    self._apply(record)
                if tp in pending and records and records[-1].offset + 1 >= pending[tp]:
                    del pending[tp]
            if not pending and not self.caught_up.is_set():
                self.caught_up.set()

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if self.traced_as is not None and self.caught_up.is_set():
            parent = tracing.context_of_headers(record.headers)
            if parent is not None:
                attributes = tracing.cloudevent_attributes(
                    ce_id=header(record, "ce_id"),
                    ce_type=header(record, "ce_type"),
                    topic=record.topic,
                )
                with tracing.span(
                    self.traced_as, parent=parent, kind=tracing.CONSUMER, attributes=attributes
                ):
                    self._apply_value(record)
                return
        self._apply_value(record)

    def _apply_value(self, record: ConsumerRecord[bytes, bytes]) -> None:
        key = record.key.decode() if record.key else ""
        try:
            value = self.decode(record.value) if record.value is not None else None
        except Exception:
            log.warning("undecodable record in view", extra={"topic": record.topic, "key": key})
            return
        if value is None:
            self.items.pop(key, None)
        else:
            self.items[key] = value
        if self.on_update is not None:
            self.on_update(key, value)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            # Stopped while the broker is unreachable, aiokafka's fetcher lets a stray
            # CancelledError escape; a view's owner stops it in clean-up, where that would
            # end the owner as if it had been cancelled.
            await stop_quietly(self._consumer.stop, f"view of {self.topic.name}")


async def wait_for_broker(settings: Settings, timeout: float = 30.0) -> None:
    """Wait until the broker answers metadata requests, or raise BrokerUnavailable."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=3_000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as error:
            last = error
            await asyncio.sleep(0.3)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
    raise _unreachable(settings, last or TimeoutError("timed out"))
