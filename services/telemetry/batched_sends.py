"""The hot path's outputs, one aiokafka batch per topic partition instead of one `send` each.

aiokafka's per-record `send` (partitioner, serializers, accumulator, a future per record)
costs more than everything else a telemetry record needs; `create_batch`/`send_batch` append
straight into the record-batch builder (C) and give one future per partition batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

Headers = Sequence[tuple[str, bytes]]


class PartitionedBatches:
    """Collects keyed records per (topic, partition) and sends each group as one batch.

    Partitions come from the default murmur2 partitioner, so keys land where any Kafka client
    puts them (readers of a keyed topic rely on it); a key's partition is computed once.
    Records of one key keep their order: one partition, one batch, appended in order.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._of_key: dict[tuple[str, bytes], int] = {}
        self._partitioner = DefaultPartitioner()
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []

    async def know(self, topics: Iterable[str]) -> None:
        """Loads the partitions of `topics` (once each); `add` needs them."""
        for topic in topics:
            if topic not in self._partitions:
                self._partitions[topic] = sorted(await self.producer.partitions_for(topic))

    def add(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None:
        partition = self._of_key.get((topic, key))
        if partition is None:
            partitions = self._partitions[topic]
            partition = self._partitioner(key, partitions, partitions)
            self._of_key[(topic, key)] = partition
        builder = self._open.get((topic, partition))
        if builder is None:
            builder = self._open[(topic, partition)] = self.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is not None:
            return
        self._full.append((topic, partition, builder))
        builder = self._open[(topic, partition)] = self.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            raise ValueError(
                f"a {len(value)}-byte record for {topic} does not fit in an empty batch; "
                "raise the producer's max_batch_size"
            )

    async def send(self) -> list[asyncio.Future[Any]]:
        """Queues every collected batch; each future is done when the broker acknowledged it."""
        ready = [*self._full, *((t, p, b) for (t, p), b in self._open.items())]
        self._full, self._open = [], {}
        futures: list[asyncio.Future[Any]] = []
        for topic, partition, builder in ready:
            builder.close()
            futures.append(await self.producer.send_batch(builder, topic, partition=partition))
        return futures
