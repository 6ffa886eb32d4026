"""airgrid's idempotent producer on a three-node Apache Kafka cluster whose partition leaders
are killed (SIGKILL) while it writes: every record lands exactly once, in order per key."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from airgrid.bus import Producer, client_options, ensure_topics, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.servers.kafka import KafkaCluster
from airgrid.topics import Topic
from tests import kafka_fixtures
from tests.eventually import eventually, until

pytestmark = pytest.mark.integration

kafka_three = kafka_fixtures.kafka_three

ORDERED = Topic(
    "airgrid.test.ordered",
    key="drone id",
    carries="sequence numbers per key",
    content_type="text/plain",
    message="KEY:SEQ",
    partitions=3,
)
KEYS = [f"drone-{k:02d}" for k in range(12)]
KILLS = 2


class SequencedWriter:
    """Writes KEY:SEQ rounds (one record per key) until told to stop; counts acked rounds."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.rounds_acked = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            futures = [
                await self.producer.send(
                    ORDERED, f"{key}:{seq}".encode(), key=key, ce_type="test.seq"
                )
                for key in KEYS
            ]
            for future in futures:
                await future
            seq += 1
            self.rounds_acked = seq


async def _leader_of_partition_zero(producer: Producer, name: str) -> int:
    async def leader() -> int | None:
        await producer.raw.client.force_metadata_update()
        node = producer.raw.client.cluster.leader_for_partition(TopicPartition(name, 0))
        return node if node is not None and node >= 0 else None

    return await eventually(leader, timeout=60, what=f"a leader of {name}-0", every=0.2)


async def _read_values(settings: Settings, name: str) -> list[tuple[str, str]]:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, name)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        rows: list[tuple[str, str]] = []
        pending = {tp for tp in tps if ends[tp] > 0}

        async def drained() -> bool | None:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for batch in batches.values():
                rows.extend((r.key.decode(), r.value.decode()) for r in batch)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            return True if not pending else None

        await eventually(drained, timeout=60, what="reading the topic to its end", every=0)
        return rows
    finally:
        await consumer.stop()


def _acked_beyond(writer: SequencedWriter, rounds: int) -> Callable[[], bool]:
    """A check that holds once `rounds` more rounds than now are acknowledged."""
    target = writer.rounds_acked + rounds
    return lambda: writer.rounds_acked >= target


async def test_idempotent_producer_writes_each_record_once_in_order_across_leader_kills(
    kafka_three: KafkaCluster,
) -> None:
    settings = kafka_fixtures.kafka_settings(kafka_three, kafka_idempotence="on")
    assert settings.topic_replication == 3
    await ensure_topics(settings, [ORDERED])
    name = topic_name(settings, ORDERED)
    producer = Producer(settings, source="test")
    await producer.start()
    assert producer.idempotent
    writer = SequencedWriter(producer)
    task = asyncio.create_task(writer.run())
    killed: list[int] = []
    try:
        for _ in range(KILLS):
            await until(_acked_beyond(writer, 20), 90, "rounds before a kill")
            leader = await _leader_of_partition_zero(producer, name)
            kafka_three.kill(leader)
            killed.append(leader)
            # Writing goes on once the controller has moved the leadership away.
            await until(_acked_beyond(writer, 20), 120, "rounds after a kill")
            kafka_three.start_node(leader, timeout=120)
        writer.stop.set()
        await asyncio.wait_for(task, timeout=60)
    finally:
        writer.stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await producer.stop()
        for node in killed:
            kafka_three.start_node(node, timeout=120)
    assert len(killed) == KILLS

    rows = await _read_values(settings, name)

    sequences: dict[str, list[int]] = defaultdict(list)
    for key, value in rows:
        value_key, _, seq = value.partition(":")
        assert value_key == key
        sequences[key].append(int(seq))
    rounds = writer.rounds_acked
    for key in KEYS:
        got = sequences[key]
        duplicates = len(got) - len(set(got))
        assert duplicates == 0, f"{key}: {duplicates} duplicate records"
        assert got == sorted(got), f"{key}: records out of order"
        assert got == list(range(rounds)), f"{key}: acknowledged records missing"
