"""A dispatch worker restores a database full of another deployment's open work: hundreds
of open incidents, a few of them with drones on missions, the rest waiting, under another
topic prefix (another test run or deployment on the same database), while its own fleet is
free. It must still become ready and decide new incidents."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from airgrid.auth import Role
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.reference import load_reference
from loadtests.bench_dispatch_posts import publish_fleet
from loadtests.bench_dispatch_world import random_scene
from services.dispatch.app import build_app
from tests.databases import database_of_its_own
from tests.eventually import eventually
from tests.integration.test_dispatch_flow import credential
from tests.integration.test_dispatch_flow import publish_fleet as publish_two_drones

pytestmark = pytest.mark.integration

REFERENCE = load_reference()
OPEN_INCIDENTS = 500  # far more than the first deployment's two drones: they wait


@pytest.fixture
async def own_database(settings: Settings) -> AsyncIterator[Settings]:
    """A database of this test's own: the open incidents it leaves behind would be every
    later test's to restore."""
    async with database_of_its_own(settings, "restore") as own:
        yield own


def incident(rng: random.Random, n: int) -> dict[str, Any]:
    lon, lat = random_scene(REFERENCE, rng)
    return {
        "type": REFERENCE.incident_types[n % len(REFERENCE.incident_types)].code,
        "priority": 1 + n % 4,
        "location": {"type": "Point", "coordinates": [lon, lat]},
        "required_capabilities": [],
        "on_scene_seconds": 600,
        "description": f"open work {n}",
    }


async def statuses(client: httpx.AsyncClient, auth: dict[str, str], ids: list[str]) -> list[str]:
    got = [await client.get(f"/v1/incidents/{i}", headers=auth) for i in ids]
    return [str(r.json()["status"]) for r in got]


async def test_a_worker_restoring_another_deployments_open_work_becomes_ready_and_decides(
    own_database: Settings,
) -> None:
    rng = random.Random(5)
    first = own_database.model_copy(update={"topic_prefix": f"r{uuid.uuid4().hex[:8]}."})
    await ensure_topics(first)
    await publish_two_drones(first)
    key = await credential(first, Role.DEPARTMENT, "fire")
    auth = {"Authorization": f"Bearer {key}"}
    app = build_app(first)
    async with app.router.lifespan_context(app):
        worker = app.state.worker
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            await eventually(lambda: _ready(worker), 120, "the first worker to be ready")
            ids = []
            for n in range(OPEN_INCIDENTS):
                r = await client.post("/v1/incidents", json=incident(rng, n), headers=auth)
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])

            async def all_decided() -> list[str] | None:
                got = await statuses(client, auth, ids)
                return got if "accepted" not in got else None

            decided = await eventually(all_decided, 120, "every open incident decided")
    assert decided.count("queued") > OPEN_INCIDENTS - 10, decided
    # What a cancel racing the assignment of its incident could leave behind in the
    # database: a closed incident whose mission still holds its drone.
    await _close_without_its_mission(first)

    # Another deployment on the same database: its own topics and all the reference drones,
    # docked and free as its registry and telemetry tell.
    second = own_database.model_copy(update={"topic_prefix": f"r{uuid.uuid4().hex[:8]}."})
    await ensure_topics(second)
    await publish_fleet(second, REFERENCE)
    app = build_app(second)
    async with app.router.lifespan_context(app):
        worker = app.state.worker
        await eventually(lambda: _ready(worker), 180, "the second worker to be ready")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            r = await client.post("/v1/incidents", json=incident(rng, 0), headers=auth)
            assert r.status_code == 201, r.text
            fresh = r.json()["id"]

            async def decided_fresh() -> str | None:
                (status,) = await statuses(client, auth, [fresh])
                return status if status != "accepted" else None

            await eventually(decided_fresh, 120, "a decision on a new incident")
            assert worker.status.check() == "ok"


async def _ready(worker: Any) -> bool | None:
    return True if worker.status.check() == "ok" else None


async def _close_without_its_mission(settings: Settings) -> None:
    url = make_url(settings.sqlalchemy_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        closed = await conn.fetchval(
            "UPDATE incidents SET status = 'cancelled' WHERE id = (SELECT incident_id FROM "
            "missions WHERE stage = 'assigned' ORDER BY id LIMIT 1) RETURNING id"
        )
        assert closed is not None
    finally:
        await conn.close()
