"""Offset commits of the telemetry worker, off the fetch loop."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("airgrid.telemetry")

CONSUMER = "airgrid-telemetry"


class OffsetCommitter:
    """Commits the offsets of finished batches in the background, one commit at a time; the
    offsets of batches that finish meanwhile are merged into the next commit."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self._pending: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, offsets: dict[TopicPartition, int]) -> None:
        """Offsets of a batch that is done; batches must be added in the order they were read."""
        self._pending.update(offsets)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="telemetry-commit")

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while self._pending:
            offsets, self._pending = self._pending, {}
            try:
                await self.consumer.commit(offsets)
            except KafkaError as error:
                # A rebalance took the partitions away; the new owner replays from the last
                # commit.
                log.warning("commit failed", extra={"consumer": CONSUMER, "error": repr(error)})
