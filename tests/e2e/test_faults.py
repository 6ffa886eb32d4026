"""Fault: PostgreSQL goes down under the dispatch API and comes back.

A private cluster (never the machine's shared server) is stopped while incidents are posted:
the API answers 503 with Retry-After, never 500, and recovers by itself when the database is
back; every incident accepted before, during and after ends with exactly one outcome. The
longer fault run (worker kills, broker outage, load) is `make chaos`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from airgrid.auth import Role, issue_credential
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from airgrid.servers.postgres import PrivatePostgres
from services.dispatch.app import build_app
from tests.builders import incident_body

pytestmark = pytest.mark.e2e

OUTCOMES = {"queued", "assigned", "launched", "on_scene", "completed", "cancelled"}


def incident() -> dict[str, Any]:
    return incident_body(description="fault suite")


@pytest.fixture(scope="module")
def private_pg() -> AsyncIterator[PrivatePostgres]:  # type: ignore[misc]
    try:
        pg = PrivatePostgres()
        pg.init()
    except Exception as error:  # pragma: no cover - machine without server binaries
        pytest.fail(f"could not start a private PostgreSQL: {error}")
    yield pg
    pg.destroy()


async def post(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post(
        "/v1/incidents",
        json=incident(),
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex},
    )


async def test_database_restart_answers_503_then_recovers(
    settings: Settings, private_pg: PrivatePostgres
) -> None:
    s = settings.model_copy(
        update={"database_url": private_pg.url, "topic_prefix": f"f{uuid.uuid4().hex[:8]}."}
    )
    await asyncio.to_thread(upgrade, s)
    await ensure_topics(s)
    engine = create_engine(s)
    async with session_factory(engine)() as session, session.begin():
        _, key = issue_credential(session, role=Role.DEPARTMENT, department="fire")
    await engine.dispose()

    app = build_app(s)
    accepted: list[str] = []
    during: list[int] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dispatch", timeout=60
        ) as client,
    ):
        for _ in range(3):
            r = await post(client, key)
            assert r.status_code == 201, r.text
            accepted.append(r.json()["id"])

        await asyncio.to_thread(private_pg.stop)
        stopped = time.monotonic()
        for _ in range(5):
            r = await post(client, key)
            during.append(r.status_code)
            if r.status_code == 201:
                accepted.append(r.json()["id"])
            else:
                assert r.status_code == 503, r.text
                assert r.headers["content-type"].startswith("application/problem+json")
                assert int(r.headers["retry-after"]) >= 1
        r = await client.get("/v1/incidents", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 503, r.text
        r = await client.get("/readyz")
        assert r.status_code == 503 and "retry-after" in r.headers
        assert 503 in during

        await asyncio.to_thread(private_pg.start)
        recovered_after = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = await post(client, key)
            if r.status_code == 201:
                accepted.append(r.json()["id"])
                recovered_after = time.monotonic() - stopped
                break
            assert r.status_code == 503, r.text
            await asyncio.sleep(0.5)
        assert recovered_after is not None, "the API did not recover after the database came back"

        statuses = await outcomes(client, key, accepted)
        print(
            f"\ndatabase fault: {len(accepted)} accepted, {during.count(503)} answered 503 "
            f"while down, recovered {recovered_after:.1f} s after the stop; "
            f"outcomes {sorted(statuses.values())}"
        )

    engine = create_engine(s)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT drone_id, count(*) FROM missions WHERE stage IN "
                        "('assigned', 'launched', 'on_scene') GROUP BY drone_id "
                        "HAVING count(*) > 1"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert rows == [], f"drones holding two missions: {rows}"


async def outcomes(client: httpx.AsyncClient, key: str, ids: list[str]) -> dict[str, str]:
    """Wait until every accepted incident has one outcome; returns id -> status."""
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for incident_id in ids:
            r = await client.get(
                f"/v1/incidents/{incident_id}", headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code in (200, 503), r.text
            if r.status_code == 200:
                statuses[incident_id] = r.json()["status"]
        if len(statuses) == len(ids) and all(v in OUTCOMES for v in statuses.values()):
            return statuses
        await asyncio.sleep(0.5)
    raise AssertionError(f"incidents without an outcome: {statuses}")
