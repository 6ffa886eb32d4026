"""The outbox relay publishes right after a commit: woken in-process after the commit and,
across processes, by PostgreSQL LISTEN/NOTIFY. Its poll is set to an hour, so a row that
gets published proves the wake-up; a rolled-back row never wakes it nor gets published."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from airgrid.bus import Producer, ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory, transaction
from airgrid.outbox import OutboxRecord, OutboxRelay, enqueue
from airgrid.topics import INCIDENTS
from tests.eventually import eventually

pytestmark = pytest.mark.integration
AN_HOUR = 3600.0


class Relayed:
    def __init__(self, settings: Settings, relay: OutboxRelay, service: str) -> None:
        self.settings = settings
        self.relay = relay
        self.service = service
        self.sessions = relay.sessions

    async def published(self, ce_id: str) -> bool | None:
        async with self.sessions() as session:
            at = await session.scalar(
                select(OutboxRecord.published_at).where(OutboxRecord.ce_id == ce_id)
            )
        return True if at is not None else None


@pytest.fixture
async def relayed(fresh_prefix: Settings) -> AsyncIterator[Relayed]:
    await ensure_topics(fresh_prefix, [INCIDENTS])
    engine = create_engine(fresh_prefix)
    producer = Producer(fresh_prefix, source="tests/outbox")
    await producer.start()
    service = f"outbox-test-{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(
        service=service,
        sessions=session_factory(engine),
        producer=producer,
        poll_seconds=AN_HOUR,
    )
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(relay.listening.wait(), timeout=20)
        yield Relayed(fresh_prefix, relay, service)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await engine.dispose()


async def test_a_commit_in_this_process_wakes_the_relay(relayed: Relayed) -> None:
    ce_id = uuid.uuid4().hex
    async with transaction(relayed.sessions) as session:
        enqueue(
            session, service=relayed.service, topic=INCIDENTS, key="k", ce_type="test",
            payload=b"x", ce_id=ce_id,
        )  # fmt: skip
    # No explicit notify(): the commit hook wakes it; the hourly poll cannot have.
    assert await eventually(lambda: relayed.published(ce_id), 20, "publication after commit")


async def test_a_rolled_back_enqueue_publishes_nothing(relayed: Relayed) -> None:
    ce_id = uuid.uuid4().hex
    with pytest.raises(RuntimeError):
        async with transaction(relayed.sessions) as session:
            enqueue(
                session, service=relayed.service, topic=INCIDENTS, key="k", ce_type="test",
                payload=b"x", ce_id=ce_id,
            )  # fmt: skip
            await session.flush()
            raise RuntimeError("the business write failed")
    follow = uuid.uuid4().hex
    async with transaction(relayed.sessions) as session:
        enqueue(
            session, service=relayed.service, topic=INCIDENTS, key="k", ce_type="test",
            payload=b"y", ce_id=follow,
        )  # fmt: skip
    assert await eventually(lambda: relayed.published(follow), 20, "the committed row")
    async with relayed.sessions() as session:
        assert await session.scalar(select(OutboxRecord).where(OutboxRecord.ce_id == ce_id)) is None


COMMIT_FROM_ANOTHER_PROCESS = """
import asyncio, sys
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory, transaction
from airgrid.outbox import enqueue
from airgrid.topics import INCIDENTS

async def main() -> None:
    engine = create_engine(Settings(database_url=sys.argv[1]))
    async with transaction(session_factory(engine)) as session:
        enqueue(session, service=sys.argv[2], topic=INCIDENTS, key="k", ce_type="test",
                payload=b"z", ce_id=sys.argv[3])
    await engine.dispose()

asyncio.run(main())
"""


async def test_a_commit_in_another_process_wakes_the_relay_by_notify(relayed: Relayed) -> None:
    ce_id = uuid.uuid4().hex
    url = relayed.settings.database_url
    assert url is not None
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", COMMIT_FROM_ANOTHER_PROCESS, url, relayed.service, ce_id],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert await eventually(lambda: relayed.published(ce_id), 20, "publication after NOTIFY")
