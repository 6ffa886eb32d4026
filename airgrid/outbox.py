"""Transactional outbox: events written with the business rows, relayed to Kafka afterwards."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from airgrid.bus import Producer
from airgrid.db import Base, UTCDateTime, utcnow
from airgrid.observability import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from airgrid.topics import Topic

log = logging.getLogger("airgrid.outbox")


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
    """Add an event to the outbox inside the caller's transaction."""
    record = OutboxRecord(
        service=service,
        topic=topic.name,
        key=key,
        ce_id=ce_id or uuid.uuid4().hex,
        ce_type=ce_type,
        content_type=topic.content_type,
        payload=payload,
    )
    session.add(record)
    return record


class OutboxRelay:
    """Publishes pending outbox rows in order, marks them published, and survives outages.

    A row is marked only after the broker acknowledged it, so a crash in between republishes
    it: consumers deduplicate on ce_id (the outbox row's ce_id is stable).
    """

    def __init__(
        self,
        *,
        service: str,
        sessions: async_sessionmaker[AsyncSession],
        producer: Producer,
        poll_seconds: float = 0.5,
        batch_size: int = 500,
    ) -> None:
        self.service = service
        self.sessions = sessions
        self.producer = producer
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.wakeup = asyncio.Event()

    def notify(self) -> None:
        """Called after a commit that enqueued events, so they go out without waiting a poll."""
        self.wakeup.set()

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
        if not rows:
            return 0
        futures = [
            await self.producer.send(
                row.topic,
                row.payload,
                key=row.key,
                ce_type=row.ce_type,
                ce_id=row.ce_id,
                content_type=row.content_type,
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(OutboxRecord)
                .where(OutboxRecord.id.in_([row.id for row in rows]))
                .values(published_at=utcnow())
            )
        OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
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
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))
                continue
            if published == self.batch_size:
                continue
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass
