"""The dispatch worker survives the loss of its broker: the embedded broker is stopped and an
EMPTY one (Tansu keeps its data in memory) is started on the same port, as `make chaos` does.
The worker notices, says so on /readyz, restarts itself (topics re-created, Kafka clients
new, writer role re-acquired, core rebuilt from the database) and decides again: incidents
posted before, during and after the outage each get exactly one outcome.

The worker runs in-process (the dispatch app's lifespan) against a broker and a database of
this module's own, so that stopping the broker disturbs no other test."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import text

from airgrid.auth import Role
from airgrid.broker import EmbeddedBroker
from airgrid.bus import client_options, ensure_topics, topic_name
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from airgrid.topics import INCIDENTS
from services.dispatch.app import build_app
from services.dispatch.models import IncidentRow
from tests.conftest import _drop_database, _recreate_database, free_port
from tests.eventually import eventually
from tests.integration.test_dispatch_crash import assert_outcomes
from tests.integration.test_dispatch_flow import NEST, credential, publish_fleet

pytestmark = pytest.mark.integration

DECIDED = ("queued", "assigned", "launched", "on_scene")


def restarts(cause: str) -> float:
    value = REGISTRY.get_sample_value("airgrid_dispatch_worker_restarts_total", {"cause": cause})
    return value or 0.0


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    own = EmbeddedBroker(port=free_port(), log_file=Path(".airgrid/logs/test-broker-loss.log"))
    own.start()
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture
def loss_settings(settings: Settings, broker: EmbeddedBroker) -> Iterator[Settings]:
    url = f"{settings.sqlalchemy_url}_brokerloss"
    asyncio.run(_recreate_database(url))
    s = settings.model_copy(
        update={
            "database_url": url,
            "kafka_bootstrap": broker.bootstrap,
            "topic_prefix": f"b{uuid.uuid4().hex[:8]}.",
            "patrol_enabled": False,
            "outbox_poll_seconds": 0.2,
        }
    )
    upgrade(s)
    yield s
    asyncio.run(_drop_database(url))


async def post(client: httpx.AsyncClient, key: str, n: int) -> str:
    body: dict[str, Any] = {
        "type": "fire",
        "priority": 2,
        "location": {"type": "Point", "coordinates": [NEST.lon + 0.004, NEST.lat + 0.002 * n]},
        "required_capabilities": [],
        "drones_needed": 1,
        "on_scene_seconds": 300,
        "description": f"broker loss {n}",
    }
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"loss-{n}"}
    r = await client.post("/v1/incidents", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def status_of(engine: Any, incident_id: str) -> str | None:
    async with engine.connect() as c:
        found = await c.scalar(
            text("SELECT status FROM incidents WHERE id = :id"), {"id": incident_id}
        )
    return str(found) if found in DECIDED else None


async def worker_check(client: httpx.AsyncClient) -> str:
    r = await client.get("/readyz")
    if r.status_code == 200:
        return "ok"
    return str(r.json().get("checks", {}).get("dispatch-worker", "ok"))


async def test_worker_recovers_from_an_empty_broker(
    loss_settings: Settings, broker: EmbeddedBroker
) -> None:
    s = loss_settings
    await ensure_topics(s)
    await publish_fleet(s)
    key = await credential(s, Role.DEPARTMENT, "fire")
    engine = create_engine(s)
    app = build_app(s)
    ids: list[str] = []
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:

                async def ready() -> bool | None:
                    return True if await worker_check(client) == "ok" else None

                await eventually(ready, 60, "the dispatch worker ready")
                ids.append(await post(client, key, 1))
                await eventually(lambda: status_of(engine, ids[0]), 30, "a decision before")
                broker_restarts = restarts("broker")

                broker.stop()

                async def not_ready() -> str | None:
                    check = await worker_check(client)
                    return check if check != "ok" else None

                during = await eventually(not_ready, 60, "the worker to notice the broker loss")
                ids.append(await post(client, key, 2))  # accepted into the outbox meanwhile

                broker.start()  # empty: Tansu keeps its data in memory
                await eventually(ready, 120, "the dispatch worker ready after the broker")
                assert restarts("broker") > broker_restarts
                ids.append(await post(client, key, 3))
                for incident_id in ids[1:]:
                    decided = functools.partial(status_of, engine, incident_id)
                    await eventually(decided, 60, f"a decision for {incident_id}")
                assert app.state.worker.status.check() == "ok"
            await assert_outcomes(engine, set(ids))
    finally:
        await engine.dispose()
    print(f"\nbroker loss: readyz while down said {during!r}; {len(ids)} incidents decided")


async def test_an_incident_whose_record_never_arrives_still_gets_a_decision(
    loss_settings: Settings,
) -> None:
    """An empty broker can lose a record after acknowledging it (an in-memory broker that
    restarts does): the incident is committed, its record never reaches the worker. The
    worker's sweep finds it in the database and decides it."""
    s = loss_settings
    await ensure_topics(s)
    await publish_fleet(s)
    engine = create_engine(s)
    app = build_app(s)
    incident_id = f"inc_lost{uuid.uuid4().hex[:16]}"
    try:
        async with app.router.lifespan_context(app):
            worker = app.state.worker

            async def ready() -> bool | None:
                return True if worker.status.check() == "ok" else None

            await eventually(ready, 60, "the dispatch worker ready")
            lon, lat = NEST.lon + 0.004, NEST.lat + 0.002
            async with session_factory(engine)() as session, session.begin():
                session.add(
                    IncidentRow(
                        id=incident_id, department="fire", reported_by="test", type="fire",
                        priority=2, lon=lon, lat=lat,
                        geometry={"type": "Point", "coordinates": [lon, lat]},
                        required_capabilities=[], drones_needed=1, on_scene_seconds=300,
                        description="its record was lost", shared_with=[], status="accepted",
                        accepted_at=datetime.now(UTC) - timedelta(seconds=20),
                    )
                )  # fmt: skip
            decided = functools.partial(status_of, engine, incident_id)
            status = await eventually(decided, 60, "a decision taken from the database")
            await assert_outcomes(engine, {incident_id})
    finally:
        await engine.dispose()
    print(f"\nlost record: {incident_id} decided from the database ({status})")


async def test_committed_offsets_past_the_end_are_read_from_the_start(
    loss_settings: Settings,
) -> None:
    """A broker that lost its log keeps the group's committed offsets past a partition's end
    (seen with the embedded broker after its replacement): the worker reads such partitions
    from their start instead of waiting past the records written below."""
    s = loss_settings
    await ensure_topics(s)
    await publish_fleet(s)
    key = await credential(s, Role.DEPARTMENT, "fire")
    name = topic_name(s, INCIDENTS)
    committer = AIOKafkaConsumer(
        **client_options(s), group_id=f"{s.topic_prefix}airgrid-dispatch", enable_auto_commit=False
    )
    await committer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(INCIDENTS.partitions)]
        committer.assign(tps)
        await committer.commit({tp: 1_000 for tp in tps})
    finally:
        await committer.stop()
    consumed = REGISTRY.get_sample_value(
        "airgrid_consumer_records_total", {"consumer": "dispatch", "outcome": "ok"}
    )
    engine = create_engine(s)
    app = build_app(s)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:

                async def ready() -> bool | None:
                    return True if await worker_check(client) == "ok" else None

                await eventually(ready, 60, "the dispatch worker ready")
                incident_id = await post(client, key, 7)
                decided = functools.partial(status_of, engine, incident_id)
                await eventually(decided, 60, "a decision")
        after = REGISTRY.get_sample_value(
            "airgrid_consumer_records_total", {"consumer": "dispatch", "outcome": "ok"}
        )
        assert (after or 0.0) > (consumed or 0.0), "decided by the sweep, not from its record"
    finally:
        await engine.dispose()
