"""The track's write queue: one database write at a time, later batches merged into the next.

Under load the batches waiting behind a write become one larger write (fewer round trips and
commits); when the stream is quiet each batch is written on its own, at once. Memory stays
bounded because the stream loop bounds the batches in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.v1 import telemetry_pb2
from services.telemetry.store import write_records

log = logging.getLogger("airgrid.telemetry")

Write = Callable[[AsyncEngine, Sequence[telemetry_pb2.Telemetry]], Awaitable[None]]


class TrackWriter:
    def __init__(self, engine: AsyncEngine, write: Write = write_records) -> None:
        self.engine = engine
        self._write = write
        self._queue: list[tuple[list[telemetry_pb2.Telemetry], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def warm(self) -> None:
        """Opens the pool's first connection now rather than under the first batch."""
        try:
            async with self.engine.connect():
                pass
        except Exception as error:  # the first write retries; nothing to do here
            log.warning("track database not reachable yet", extra={"error": repr(error)})

    def write(self, records: list[telemetry_pb2.Telemetry]) -> asyncio.Future[None]:
        """Queues `records`; the future is done once they are stored (or failed to be)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not records:
            done.set_result(None)
            return done
        self._queue.append((records, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="telemetry-track-writer")
        return done

    async def _run(self) -> None:
        while self._queue:
            taken, self._queue = self._queue, []
            merged = [record for records, _ in taken for record in records]
            try:
                await self._write(self.engine, merged)
            except Exception as error:  # each waiting batch fails and is retried by the stream
                for _, done in taken:
                    if not done.done():
                        done.set_exception(error)
                continue
            for _, done in taken:
                if not done.done():
                    done.set_result(None)
