"""One dispatch writer per zone partition: a PostgreSQL session advisory lock, watched while it
is held, and a fence that every decision transaction passes, so two writers never decide at
once even when the lock's connection is lost without the writer noticing at first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airgrid.worker_runs import RunEnded

log = logging.getLogger("airgrid.dispatch")

# Decision transactions take the fence key shared, then check that the writer lock is still
# held by this writer's lock session (its backend pid). A new writer takes the fence key
# exclusively once, right after it gets the lock: that waits for the old writer's decision
# transactions still in flight, and any later one fails the check. The fence is taken in a
# sub-select so that it is held before pg_locks is read.
_FENCE = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = :pid AND classid = 0 AND objid = :key AND objsubid = 1) "
    "FROM (SELECT pg_advisory_xact_lock_shared(:fence)) AS fence"
)


class WriterLockLost(RunEnded):
    """The writer lock (or its connection) is gone: stop deciding."""

    def __init__(self, message: str) -> None:
        super().__init__("writer_lock", message)


class WriterLock:
    """The zone's writer lock, on a connection of its own.

    A second worker waits in `acquire` as a standby; when the writer dies, even by SIGKILL,
    its connection closes, the lock is released and the standby takes over. A writer whose
    lock connection breaks (database restart, pg_terminate_backend, network) notices within
    `check_seconds` and steps down; until then the fence keeps it from committing."""

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        *,
        poll_seconds: float = 0.5,
        check_seconds: float = 1.0,
        timeout_seconds: float = 3.0,
    ) -> None:
        self.engine = engine
        self.name = name
        self.key = zlib.crc32(name.encode())
        self.fence_key = zlib.crc32(f"{name}/fence".encode())
        self.poll_seconds = poll_seconds
        self.check_seconds = check_seconds
        self.timeout_seconds = timeout_seconds
        self.enabled = engine.dialect.name == "postgresql"
        self.connection: AsyncConnection | None = None
        self.pid: int | None = None
        self.lost = asyncio.Event()

    async def acquire(self, on_standby: Callable[[], None] | None = None) -> None:
        """Wait until this worker holds the lock; a database error propagates."""
        self.lost = asyncio.Event()
        if not self.enabled:
            return  # SQLite: one embedded process, nothing to share
        connection = await self.engine.connect()
        waited = False
        try:
            while True:
                got = await connection.scalar(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}
                )
                await connection.commit()  # the lock is the session's; no open transaction
                if got:
                    break
                if not waited and on_standby is not None:
                    on_standby()
                waited = True
                await asyncio.sleep(self.poll_seconds)
            self.pid = await connection.scalar(text("SELECT pg_backend_pid()"))
            # Wait out the decision transactions of a previous writer still in flight.
            await connection.execute(text("SELECT pg_advisory_lock(:f)"), {"f": self.fence_key})
            await connection.execute(text("SELECT pg_advisory_unlock(:f)"), {"f": self.fence_key})
            await connection.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        self.connection = connection
        log.info("dispatch worker is the zone's writer", extra={"lock": self.name})

    async def watch(self) -> None:
        """Return never; raise WriterLockLost once the lock's connection stops answering or a
        decision transaction found the lock gone."""
        if not self.enabled:
            await asyncio.Event().wait()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lost.wait(), timeout=self.check_seconds)
            if self.lost.is_set():
                raise WriterLockLost("a decision transaction found the writer lock gone")
            connection = self.connection
            if connection is None:
                raise WriterLockLost("the writer lock is not held")
            try:
                await asyncio.wait_for(self._ping(connection), timeout=self.timeout_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.lost.set()
                raise WriterLockLost(
                    f"the writer lock's database connection was lost ({type(error).__name__})"
                ) from error

    @staticmethod
    async def _ping(connection: AsyncConnection) -> None:
        await connection.scalar(text("SELECT 1"))
        await connection.commit()

    async def fence(self, session: Any) -> None:
        """In a decision transaction, before anything is written: raise WriterLockLost unless
        this worker still holds the lock."""
        if not self.enabled:
            return
        if self.lost.is_set() or self.pid is None:
            raise WriterLockLost("the writer lock is gone; not deciding")
        held = await session.scalar(
            _FENCE, {"pid": self.pid, "key": self.key, "fence": self.fence_key}
        )
        if not held:
            self.lost.set()
            raise WriterLockLost("the writer lock is no longer held by this worker")

    async def release(self) -> None:
        connection, self.connection = self.connection, None
        self.pid = None
        if connection is not None:
            # Invalidated, not returned to the pool: a pooled session would keep the lock.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.invalidate(), timeout=self.timeout_seconds)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=self.timeout_seconds)
