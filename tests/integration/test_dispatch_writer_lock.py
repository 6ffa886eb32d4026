"""One dispatch writer per zone, against the real PostgreSQL: a writer whose lock connection is
lost steps down, a standby takes over, and the old writer's decision transactions are fenced
off; the dispatch worker itself steps down when its lock connection is terminated and comes
back as the writer."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from airgrid.auth import Role
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from services.dispatch.app import build_app
from services.dispatch.writer_lock import WriterLock, WriterLockLost
from tests.eventually import eventually
from tests.integration.test_dispatch_flow import NEST, credential, publish_fleet

pytestmark = pytest.mark.integration


async def terminate_backend(settings: Settings, pid: int) -> None:
    """What a database restart or a dropped connection does to one session."""
    url = make_url(settings.sqlalchemy_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_a_lost_lock_connection_hands_over_and_fences_the_old_writer(
    settings: Settings,
) -> None:
    engine = create_engine(settings)
    sessions = session_factory(engine)
    name = f"test-writer/{uuid.uuid4().hex}"
    first = WriterLock(engine, name, poll_seconds=0.05, check_seconds=0.1)
    second = WriterLock(engine, name, poll_seconds=0.05, check_seconds=0.1)
    standing_by = asyncio.Event()
    try:
        await first.acquire()
        assert first.pid is not None
        takeover = asyncio.create_task(second.acquire(on_standby=standing_by.set))
        await asyncio.wait_for(standing_by.wait(), timeout=10)
        assert not takeover.done(), "a second writer got the lock while the first held it"
        async with sessions() as session, session.begin():
            await first.fence(session)  # the writer passes its own fence

        await terminate_backend(settings, first.pid)
        await asyncio.wait_for(takeover, timeout=10)  # the standby is the writer now
        with pytest.raises(WriterLockLost):
            async with sessions() as session, session.begin():
                await first.fence(session)  # the old writer can no longer commit a decision
        async with sessions() as session, session.begin():
            await second.fence(session)
        with pytest.raises(WriterLockLost):
            await asyncio.wait_for(first.watch(), timeout=10)  # and it notices by itself
    finally:
        await first.release()
        await second.release()
        await engine.dispose()


def restarts(cause: str) -> float:
    value = REGISTRY.get_sample_value("airgrid_dispatch_worker_restarts_total", {"cause": cause})
    return value or 0.0


async def test_the_worker_steps_down_when_its_lock_connection_dies_and_comes_back(
    fresh_prefix: Settings,
) -> None:
    s = fresh_prefix.model_copy(update={"patrol_enabled": False})
    await ensure_topics(s)
    await publish_fleet(s)
    key = await credential(s, Role.DEPARTMENT, "fire")
    app = build_app(s)
    async with app.router.lifespan_context(app):
        worker = app.state.worker
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:

            async def writing() -> int | None:
                ready = worker.status.check() == "ok" and worker.writer.pid is not None
                return worker.writer.pid if ready else None

            before = await eventually(writing, 60, "the worker to be the writer")
            lock_restarts = restarts("writer_lock")
            await terminate_backend(s, before)

            async def stepped_down() -> str | None:
                state = worker.status.check()
                return state if state != "ok" else None

            why = await eventually(stepped_down, 30, "the worker to step down")
            after = await eventually(writing, 60, "the worker to be the writer again")
            assert after != before
            assert restarts("writer_lock") > lock_restarts

            body = {
                "type": "fire",
                "priority": 2,
                "location": {"type": "Point", "coordinates": [NEST.lon + 0.004, NEST.lat]},
                "required_capabilities": [],
                "drones_needed": 1,
                "on_scene_seconds": 300,
                "description": "after the lock came back",
            }
            r = await client.post(
                "/v1/incidents", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 201, r.text
            incident_id = r.json()["id"]

            async def decided() -> str | None:
                got = await client.get(
                    f"/v1/incidents/{incident_id}", headers={"Authorization": f"Bearer {key}"}
                )
                status = str(got.json()["status"])
                return status if status in ("assigned", "queued") else None

            await eventually(decided, 30, "a decision from the writer that came back")
    print(f"\nwriter lock: terminated backend {before}; stepped down ({why!r}); writer again")
