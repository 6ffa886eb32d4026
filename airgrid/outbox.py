"""Transactional outbox: events written with the business rows, relayed to Kafka afterwards.

Publication is immediate: a commit that enqueued events wakes the relays of its service in
this process (after the commit, so they see the rows) and, on PostgreSQL, sends a NOTIFY on
OUTBOX_CHANNEL inside the transaction, which the database delivers to the relays of other
processes only if the transaction commits. Polling stays as the fallback when a wake-up is
lost (listener reconnecting, SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    LargeBinary,
    String,
    event,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column

from airgrid import tracing
from airgrid.bus import Producer
from airgrid.db import Base, UTCDateTime, utcnow
from airgrid.observability import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from airgrid.topics import Topic

log = logging.getLogger("airgrid.outbox")

OUTBOX_CHANNEL = "airgrid_outbox"
"""PostgreSQL LISTEN/NOTIFY channel; the payload is "<service> <process token>"."""

# Tells this process's own NOTIFYs apart: its relays were already woken after the commit.
_PROCESS_TOKEN = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
_PENDING_SERVICES = "airgrid_outbox_services"
_ENQUEUED = "airgrid_outbox_enqueued"
_FLUSHED = "airgrid_outbox_flushed"
_local_relays: dict[str, weakref.WeakSet[OutboxRelay]] = {}


class OutboxRecord(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    service: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str | None] = mapped_column(String(200))
    ce_id: Mapped[str] = mapped_column(String(64), unique=True)
    ce_type: Mapped[str] = mapped_column(String(100))
    content_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # W3C trace context of the work that enqueued the row (airgrid.tracing); null when off.
    traceparent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tracestate: Mapped[str | None] = mapped_column(String(512), nullable=True)

    __table_args__ = (Index("ix_outbox_pending", "service", "published_at", "id"),)


def enqueue(
    session: AsyncSession,
    *,
    service: str,
    topic: Topic,
    key: str,
    ce_type: str,
    payload: bytes,
    ce_id: str | None = None,
) -> OutboxRecord:
    """Add an event to the outbox inside the caller's transaction; it keeps the current trace
    context, which its record carries on when the relay publishes it."""
    traceparent, tracestate = tracing.current_context()
    record = OutboxRecord(
        service=service,
        topic=topic.name,
        key=key,
        ce_id=ce_id or uuid.uuid4().hex,
        ce_type=ce_type,
        content_type=topic.content_type,
        payload=payload,
        traceparent=traceparent,
        tracestate=tracestate,
    )
    session.add(record)
    session.info.setdefault(_PENDING_SERVICES, set()).add(service)
    session.info.setdefault(_ENQUEUED, []).append(record)
    return record


@dataclass(frozen=True)
class Committed:
    """An outbox row as it was committed: what a relay needs to publish it without a read."""

    id: int
    service: str
    topic: str
    key: str | None
    ce_id: str
    ce_type: str
    content_type: str
    payload: bytes
    traceparent: str | None = None
    tracestate: str | None = None


@event.listens_for(Session, "after_flush_postexec")
def _remember_flushed(session: Session, _context: Any) -> None:
    """Copy enqueued rows once flushed (their ids are known now; after the commit they may
    be expired and unreadable without a query)."""
    enqueued = session.info.get(_ENQUEUED)
    if not enqueued:
        return
    still_pending = []
    flushed = session.info.setdefault(_FLUSHED, [])
    for record in enqueued:
        values = vars(record)
        if values.get("id") is None:
            still_pending.append(record)
            continue
        flushed.append(
            Committed(
                values["id"], values["service"], values["topic"], values["key"],
                values["ce_id"], values["ce_type"], values["content_type"], values["payload"],
                values.get("traceparent"), values.get("tracestate"),
            )
        )  # fmt: skip
    session.info[_ENQUEUED] = still_pending


@event.listens_for(Session, "before_commit")
def _notify_other_processes(session: Session) -> None:
    """NOTIFY is transactional: delivered when this commit succeeds, dropped on rollback."""
    services = session.info.get(_PENDING_SERVICES)
    if not services or session.get_bind().dialect.name != "postgresql":
        return
    for service in sorted(services):
        if any(relay.caught_up for relay in _local_relays.get(service, ())):
            continue  # a relay here publishes it right after the commit; spare the round trip
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": OUTBOX_CHANNEL, "payload": f"{service} {_PROCESS_TOKEN}"},
        )


@event.listens_for(Session, "after_commit")
def _wake_local_relays(session: Session) -> None:
    committed: list[Committed] = session.info.pop(_FLUSHED, [])
    session.info.pop(_ENQUEUED, None)
    for service in session.info.pop(_PENDING_SERVICES, ()):
        rows = [row for row in committed if row.service == service]
        for relay in list(_local_relays.get(service, ())):
            relay.hand_over(rows)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    for name in (_PENDING_SERVICES, _ENQUEUED, _FLUSHED):
        session.info.pop(name, None)


class OutboxRelay:
    """Publishes pending outbox rows in order, marks them published, and survives outages.

    A row is marked only after the broker acknowledged it, so a crash in between republishes
    it: consumers deduplicate on ce_id (the outbox row's ce_id is stable). It wakes up on a
    commit that enqueued rows of its service (this process, or NOTIFY from another one) and
    polls every poll_seconds in case a wake-up was lost.
    """

    def __init__(
        self,
        *,
        service: str,
        sessions: async_sessionmaker[AsyncSession],
        producer: Producer,
        poll_seconds: float = 0.5,
        batch_size: int = 500,
        listen: bool = True,
    ) -> None:
        self.service = service
        self.sessions = sessions
        self.producer = producer
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.listen = listen
        self.wakeup = asyncio.Event()
        self.handed_over: list[Committed] = []
        self.read_wanted = True
        self.marking: set[int] = set()
        """Ids handed over and published whose mark is still being written."""
        self._mark_tasks: set[asyncio.Task[None]] = set()
        self.caught_up = False
        """True after a read found no backlog: then rows handed over by a commit are newer
        than anything pending, and may go out in commit order without reading them back."""
        self.listening = asyncio.Event()
        """Set while the LISTEN connection is up (PostgreSQL only)."""

    def notify(self) -> None:
        """Publish what is pending now. Commits that enqueue hand their rows over by
        themselves, so while the relay is caught up this reads nothing; otherwise it reads
        the table."""
        if not self.caught_up:
            self.read_wanted = True
        self.wakeup.set()

    def _read_now(self) -> None:
        self.read_wanted = True
        self.wakeup.set()

    def hand_over(self, rows: list[Committed]) -> None:
        """Rows this process just committed: published without a database read when the
        relay has no backlog (the read is the slowest step on a busy database)."""
        if self.caught_up:
            self.handed_over.extend(rows)
            self.wakeup.set()
        else:
            self._read_now()

    async def publish_handed_over(self) -> int:
        rows, self.handed_over = self.handed_over, []
        if not rows:
            return 0
        try:
            await self._send(rows)
        except BaseException:
            self.caught_up = False  # they stay pending in the table; the read finds them
            self.read_wanted = True
            raise
        # Marked in the background: the next commit's rows need not wait for this write.
        ids = [row.id for row in rows]
        self.marking.update(ids)
        task = asyncio.create_task(self._mark_soon(ids))
        self._mark_tasks.add(task)
        task.add_done_callback(self._mark_tasks.discard)
        return len(rows)

    async def _mark_soon(self, ids: list[int]) -> None:
        try:
            await self._mark(ids)
        except Exception as error:  # the rows stay pending: a later read republishes them
            log.warning(
                "outbox relay could not mark published rows; they will be sent again",
                extra={"service": self.service, "error": repr(error)},
            )
        finally:
            self.marking.difference_update(ids)

    async def publish_pending(self) -> int:
        async with self.sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxRecord)
                    .where(OutboxRecord.service == self.service)
                    .where(OutboxRecord.published_at.is_(None))
                    .order_by(OutboxRecord.id)
                    .limit(self.batch_size)
                )
            ).all()
        OUTBOX_BACKLOG.labels(self.service).set(len(rows))
        self.caught_up = len(rows) < self.batch_size
        rows = [row for row in rows if row.id not in self.marking]
        if not rows:
            return 0
        try:
            await self._publish(rows)
        except BaseException:
            self.caught_up = False
            raise
        return len(rows)

    async def _publish(self, rows: Sequence[OutboxRecord | Committed]) -> None:
        """Send in order, wait for every acknowledgement, then mark them published."""
        await self._send(rows)
        await self._mark([row.id for row in rows])

    async def _send(self, rows: Sequence[OutboxRecord | Committed]) -> None:
        futures = [await self._send_one(row) for row in rows]
        await asyncio.gather(*futures)

    async def _send_one(self, row: OutboxRecord | Committed) -> asyncio.Future[Any]:
        """Queue one row's record; a row with a trace context is published in a producer
        span of that trace, whose context the record carries (traceparent, tracestate)."""
        parent = tracing.context_of(row.traceparent, row.tracestate)
        if parent is None:
            return await self._queue(row, ())
        attributes = tracing.cloudevent_attributes(
            ce_id=row.ce_id, ce_type=row.ce_type, topic=row.topic
        )
        with tracing.span(
            "outbox.publish", parent=parent, kind=tracing.PRODUCER, attributes=attributes
        ):
            return await self._queue(row, tracing.current_headers())

    async def _queue(
        self, row: OutboxRecord | Committed, trace_headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        return await self.producer.send(
            row.topic,
            row.payload,
            key=row.key,
            ce_type=row.ce_type,
            ce_id=row.ce_id,
            content_type=row.content_type,
            extra_headers=trace_headers,
        )

    async def _mark(self, ids: list[int]) -> None:
        async with self.sessions() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                # Losing this mark in a crash only republishes (consumers deduplicate on
                # ce_id), so it need not wait for the WAL flush: the relay is free sooner.
                await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            await session.execute(
                update(OutboxRecord).where(OutboxRecord.id.in_(ids)).values(published_at=utcnow())
            )
        OUTBOX_PUBLISHED.labels(self.service).inc(len(ids))

    async def run(self) -> None:
        _local_relays.setdefault(self.service, weakref.WeakSet()).add(self)
        engine = _engine_of(self.sessions)
        listener: asyncio.Task[None] | None = None
        if self.listen and engine is not None and engine.dialect.name == "postgresql":
            listener = asyncio.create_task(
                self._listen(engine), name=f"outbox-listen-{self.service}"
            )
        try:
            await self._publish_forever()
        finally:
            _local_relays.get(self.service, weakref.WeakSet()).discard(self)
            for task in list(self._mark_tasks):
                task.cancel()
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _publish_forever(self) -> None:
        failures = 0
        while True:
            # Cleared before reading, so a commit landing during the publish is not lost.
            self.wakeup.clear()
            try:
                await self.publish_handed_over()
                published = 0
                if self.read_wanted:
                    self.read_wanted = False
                    published = await self.publish_pending()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                log.warning(
                    "outbox relay could not publish; will retry",
                    extra={"service": self.service, "error": repr(error), "failures": failures},
                )
                self.read_wanted = True
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))
                continue
            if published == self.batch_size:
                self.read_wanted = True
                continue
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                self.read_wanted = True  # the fallback poll

    async def _listen(self, engine: AsyncEngine) -> None:
        """LISTEN on its own connection; reconnects after a database outage."""
        url = engine.url
        failures = 0
        while True:
            connection: asyncpg.Connection[Any] | None = None
            try:
                connection = await asyncpg.connect(
                    host=url.host or "127.0.0.1",
                    port=url.port or 5432,
                    user=url.username,
                    password=url.password,
                    database=url.database,
                    timeout=10,
                )
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(OUTBOX_CHANNEL, self._on_notify)
                self.listening.set()
                failures = 0
                self._read_now()  # rows committed while nobody listened
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                log.warning(
                    "outbox relay cannot LISTEN; polling until it can",
                    extra={"service": self.service, "error": repr(error), "failures": failures},
                )
            finally:
                self.listening.clear()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), timeout=2)
            await asyncio.sleep(min(10.0, 0.5 * 2**failures))

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        service, _, token = payload.partition(" ")
        if service == self.service and token != _PROCESS_TOKEN:
            self._read_now()


def _engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine | None:
    bind = sessions.kw.get("bind")
    return bind if isinstance(bind, AsyncEngine) else None
