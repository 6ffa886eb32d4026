"""Jepsen-style stream check of the consumer loop every service uses (airgrid.bus.run_batches).

Per-key sequence numbers are produced under load while group members are killed in the middle
of a batch (their task dies with records handled and offsets not committed) and replaced.
Afterwards every record the broker acknowledged was processed exactly once after deduplication
on ce_id, the first processing of each key's records follows its sequence, and the lag is gone
within the stated LAG_RECOVERY_S."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from airgrid.bus import (
    ConsumerSpec,
    Producer,
    ensure_topics,
    header,
    run_batches,
    start_group_consumer,
)
from airgrid.config import Settings
from airgrid.topics import Topic

pytestmark = pytest.mark.e2e

KEYS = 40
RECORDS = 2400
KILLS = 4
LAG_RECOVERY_S = 60.0
TOPIC = Topic("jepsen.sequence", "key", "sequence numbers", "text/plain", "n/a", partitions=6)


class Ledger:
    """The durable effects of the consumers (what a database would hold)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, int, str]] = []
        self.done: set[str] = set()
        self.first_order: dict[str, list[int]] = defaultdict(list)
        self.progress = asyncio.Event()

    async def covers(self, ids: set[str]) -> None:
        """Return once every id has been processed."""
        while not ids <= self.done:
            await self.progress.wait()
            self.progress.clear()

    async def handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            key = (record.key or b"").decode()
            seq = int(record.value.decode().split(":")[1])
            ce_id = header(record, "ce_id") or ""
            self.deliveries.append((key, seq, ce_id))
            if ce_id not in self.done:  # the dedupe every handler does
                self.done.add(ce_id)
                self.first_order[key].append(seq)
            await asyncio.sleep(0.002)  # a handler doing work: kills land mid-batch
        self.progress.set()


async def test_acknowledged_records_processed_once_in_key_order_under_kills(
    settings: Settings,
) -> None:
    s = settings.model_copy(update={"topic_prefix": f"j{uuid.uuid4().hex[:8]}."})
    await ensure_topics(s, [TOPIC])
    spec = ConsumerSpec(topics=[TOPIC], group_id="jepsen", max_records=200, fetch_max_wait_ms=100)
    ledger = Ledger()
    consumers: list[AIOKafkaConsumer] = []
    tasks: list[asyncio.Task[None]] = []

    async def spawn() -> None:
        consumer = await start_group_consumer(s, spec)
        consumers.append(consumer)
        tasks.append(
            asyncio.create_task(run_batches(consumer, ledger.handle, spec=spec, name="jepsen"))
        )

    producer = Producer(s, source="airgrid/jepsen")
    await producer.start()
    acked: set[str] = set()
    rng = random.Random(8)
    try:
        await spawn()
        await spawn()

        async def produce() -> None:
            sequence = [0] * KEYS
            pending = []
            for n in range(RECORDS):
                k = rng.randrange(KEYS)
                sequence[k] += 1
                ce_id = f"k{k}-{sequence[k]}"
                future = await producer.send(
                    TOPIC, f"k{k}:{sequence[k]}".encode(), key=f"k{k}", ce_type="t", ce_id=ce_id
                )
                pending.append((ce_id, future))
                if n % 50 == 0:
                    await asyncio.sleep(0.02)
            for ce_id, future in pending:
                with contextlib.suppress(Exception):
                    await future
                    acked.add(ce_id)

        producing = asyncio.create_task(produce())
        kills = 0
        while kills < KILLS:
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            victim = rng.randrange(len(tasks))
            if tasks[victim].done():
                continue
            tasks[victim].cancel()  # dies mid-batch: records handled, offsets not committed
            with contextlib.suppress(asyncio.CancelledError):
                await tasks[victim]
            await consumers[victim].stop()  # its partitions go to the others and the new one
            kills += 1
            await spawn()
        await producing
        produced_at = time.monotonic()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ledger.covers(acked), LAG_RECOVERY_S)
        caught_up = time.monotonic() - produced_at
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for consumer in consumers:
            with contextlib.suppress(Exception):
                await consumer.stop()
        await producer.stop()

    lost = acked - ledger.done
    redelivered = len(ledger.deliveries) - len(ledger.done)
    print(
        f"\nstream faults: {len(acked)} acknowledged, {KILLS} members killed mid-batch, "
        f"{redelivered} redeliveries deduplicated, lag gone {caught_up:.1f} s after the "
        f"last send (bound {LAG_RECOVERY_S:.0f} s), lost {len(lost)}"
    )
    assert len(acked) == RECORDS
    assert not lost, f"acknowledged but never processed: {sorted(lost)[:10]}"
    assert ledger.done <= acked | {""}
    for key, seqs in ledger.first_order.items():
        assert seqs == sorted(seqs), f"key {key} processed out of order: {seqs[:20]}"
        assert seqs == list(range(1, len(seqs) + 1)), f"key {key} skipped a sequence number"
