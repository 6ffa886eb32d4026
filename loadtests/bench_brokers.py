"""What a bench runs on: the brokers it compares (an embedded Tansu, a one-node Apache Kafka,
or the external one AIRGRID_KAFKA_BOOTSTRAP names) and its PostgreSQL, each started by the
bench and stopped when it ends, on failure or Ctrl-C too; plus the broker hop baseline."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from tempfile import mkdtemp

from aiokafka import AIOKafkaConsumer

from airgrid.broker import EmbeddedBroker
from airgrid.bus import Producer, client_options, ensure_topics, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.servers.kafka import KafkaCluster
from airgrid.servers.ports import free_port
from airgrid.servers.postgres import PrivatePostgres
from airgrid.topics import TELEMETRY_RAW

BROKER_CHOICES = ("embedded", "kafka", "both")
EXTERNAL = "external"


def broker_labels(choice: str, settings: Settings) -> list[str]:
    """The brokers a run compares, in the order of its columns: the external broker alone
    when AIRGRID_KAFKA_BOOTSTRAP is set, else those `choice` names."""
    if settings.kafka_bootstrap:
        return [EXTERNAL]
    if choice not in BROKER_CHOICES:
        raise ValueError(f"--broker must be one of {', '.join(BROKER_CHOICES)}, not {choice!r}")
    return ["embedded", "kafka"] if choice == "both" else [choice]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def brokers(labels: list[str], settings: Settings) -> Iterator[dict[str, Settings]]:
    """Every broker of `labels` started (the external one is only used), as the settings a
    round on it takes; all are stopped on the way out, whatever ends the bench."""
    with contextlib.ExitStack() as stack:
        started: dict[str, Settings] = {}
        for label in labels:
            if label == EXTERNAL:
                bootstrap = settings.bootstrap_servers
            elif label == "embedded":
                log = Path(mkdtemp(prefix="airgrid-bench-tansu-")) / "broker.log"
                embedded = EmbeddedBroker(port=free_port(), log_file=log)
                embedded.start()
                stack.callback(embedded.stop)
                bootstrap = embedded.bootstrap
            else:
                began = time.perf_counter()
                cluster = KafkaCluster(brokers=1, say=_say)
                stack.callback(cluster.stop)
                cluster.start()
                _say(f"Apache Kafka (one KRaft node) up in {time.perf_counter() - began:.1f} s")
                bootstrap = cluster.bootstrap
            started[label] = settings.model_copy(
                update={"kafka_bootstrap": bootstrap, "topic_replication": 1}
            )
            # A fresh JVM compiles its hot paths during its first requests: those go to a
            # warm-up, not to the first round.
            asyncio.run(broker_hop(started[label], 200, settings.telemetry_fetch_wait_ms))
        yield started


def fresh_topics(settings: Settings) -> Settings:
    """The same broker under a topic prefix of its own: a round starts from empty topics."""
    return settings.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}."})


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[tuple[Settings, str]]:
    """AIRGRID_DATABASE_URL when set; else a private PostgreSQL cluster of the bench's own,
    on a free port, destroyed at the end. Yields the settings and a line naming it."""
    if settings.database_url:
        yield settings, "AIRGRID_DATABASE_URL"
        return
    server = PrivatePostgres(database="airgrid_bench")
    with server:
        shown = f"private PostgreSQL on 127.0.0.1:{server.port} (removed after the run)"
        yield settings.model_copy(update={"database_url": server.url}), shown


async def broker_hop(settings: Settings, count: int, fetch_wait_ms: int) -> list[float]:
    """The baseline: `count` produce -> consume round trips of one record each, in ms, with
    the producer of the services and a consumer waiting at most `fetch_wait_ms` on an empty
    fetch, as the workers do. They go to a raw telemetry topic of their own, which no
    worker of the bench reads."""
    settings = fresh_topics(settings)
    await ensure_topics(settings, [TELEMETRY_RAW])
    producer = Producer(settings, source="airgrid/bench-hop")
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_wait_ms,
    )
    await producer.start()
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic_name(settings, TELEMETRY_RAW))
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        samples: list[float] = []
        for n in range(count + 5):  # the first five warm the connections and are left out
            value = f"hop-{n}".encode()
            began = time.perf_counter()
            await producer.send(TELEMETRY_RAW, value, key="bench-hop", ce_type="bench")
            while (await consumer.getone()).value != value:
                pass
            if n >= 5:
                samples.append((time.perf_counter() - began) * 1000)
        return samples
    finally:
        await consumer.stop()
        await producer.stop()
