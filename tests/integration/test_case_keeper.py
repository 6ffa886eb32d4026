"""Integration: detections become cases through the real broker and database: the merge
rule, a replayed detection counted once (also by a keeper reading everything again), and
each of the 11 department feeds carrying only its own cases."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from airgrid.auth import Principal, Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.topics import CASES, DEPARTMENT_CODES, DETECTIONS, REGISTRY_CHANGES, feed_topic
from airgrid.v1 import inspection_pb2, registry_pb2
from services.telemetry import case_keeper, case_publisher
from services.telemetry.app import build_app
from services.telemetry.case_keeper import CaseKeeper
from services.telemetry.case_transitions import take_action
from services.telemetry.domain.cases import Action, case_id_for
from services.telemetry.models import cases
from services.telemetry.topic_views import registry_view
from tests.eventually import eventually
from tests.integration.inspection_rig import (
    CENTRE,
    DEADLINE_S,
    detection,
    read_topic,
    register_drone,
    register_scenarios,
    topic_size,
)

pytestmark = pytest.mark.integration

NEST = "nest-a"


@pytest.fixture
async def own_topics(fresh_prefix: Settings) -> AsyncIterator[tuple[Settings, Producer]]:
    await ensure_topics(fresh_prefix)
    producer = Producer(fresh_prefix, source="airgrid/test")
    await producer.start()
    yield fresh_prefix, producer
    await producer.stop()


async def register_own_scenarios(producer: Producer, run: str) -> None:
    """One scenario per department, owned by that department alone."""
    for code in DEPARTMENT_CODES:
        key = f"scenario:only-{code}-{run}"
        change = registry_pb2.RegistryChange(
            entity_id=key,
            version=1,
            scenario=registry_pb2.Scenario(
                code=f"only-{code}-{run}",
                name=code,
                departments=[code],
                severity="low",
                merge_radius_m=100.0,
                merge_window_s=600,
            ),
        )
        await producer.send_and_wait(
            REGISTRY_CHANGES, change.SerializeToString(), key=key, ce_type="test.registry"
        )


def metres_east(metres: float) -> float:
    return CENTRE[0] + metres / (111_320.0 * math.cos(math.radians(CENTRE[1])))


def opened(scenario: str, department: str) -> float:
    """airgrid_cases_opened_total of one scenario and owner department (0 before any)."""
    labels = {"scenario": scenario, "department": department}
    return REGISTRY.get_sample_value("airgrid_cases_opened_total", labels) or 0.0


def events(rows: list[Any]) -> list[inspection_pb2.CaseEvent]:
    return [inspection_pb2.CaseEvent.FromString(row.value) for row in rows]


async def test_detections_merge_into_cases_once_and_reach_only_their_owners_feeds(
    own_topics: tuple[Settings, Producer],
) -> None:
    settings, producer = own_topics
    run = uuid.uuid4().hex[:6]
    drone = f"dr-c-{run}"
    await register_drone(producer, drone, NEST)
    await register_scenarios(producer)
    await register_own_scenarios(producer, run)
    engine = create_engine(settings)
    async with session_factory(engine)() as session, session.begin():
        _, gateway_key = issue_credential(session, role=Role.GATEWAY, nest_id=NEST)
    gateway = {"Authorization": f"Bearer {gateway_key}"}

    smoke_before = {code: opened("smoke", code) for code in ("fire", "environment", "urban")}
    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        fix = {
            "drone_id": drone,
            "seq": 1,
            "event_time_ms": now_ms() - 1_000,
            "lon": CENTRE[0],
            "lat": CENTRE[1],
            "alt_m": 80.0,
            "battery_pct": 80.0,
            "flight_mode": "cruising",
            "nest_id": NEST,
        }
        r = await client.post("/v1/telemetry", json={"records": [fix]}, headers=gateway)
        assert r.status_code == 202, r.text

        async def ready() -> bool | None:
            return True if drone in app.state.states.items else None

        await eventually(ready, DEADLINE_S, "the drone's state")

        async def post(*items: dict[str, Any]) -> None:
            r = await client.post(
                "/v1/detections", json={"detections": list(items)}, headers=gateway
            )
            assert r.status_code == 202 and r.json()["rejected"] == [], r.text

        # smoke: radius 300 m. 50 m away joins; 2 km away opens a second case.
        await post(
            detection(f"s1-{run}", drone, confidence=0.5),
            detection(f"s2-{run}", drone, confidence=0.6, lon=metres_east(50)),
            detection(f"s3-{run}", drone, lon=metres_east(2_000)),
        )
        await post(
            *(
                detection(f"o-{code}-{run}", drone, scenario=f"only-{code}-{run}")
                for code in DEPARTMENT_CODES
            )
        )
        # A replay of the first detection counts nothing again.
        await post(detection(f"s1-{run}", drone, confidence=0.5))

        rows = await read_topic(settings, CASES, until=lambda rows: len(rows) >= 14)
        first = case_id_for(f"s1-{run}")
        seen = {(e.detection_id, e.case.id, e.kind, e.case.version) for e in events(rows)}
        assert (f"s1-{run}", first, inspection_pb2.CASE_CHANGE_KIND_OPENED, 1) in seen
        assert (f"s2-{run}", first, inspection_pb2.CASE_CHANGE_KIND_UPDATED, 2) in seen
        assert (
            f"s3-{run}",
            case_id_for(f"s3-{run}"),
            inspection_pb2.CASE_CHANGE_KIND_OPENED,
            1,
        ) in seen

        # The database is shared with other tests: this run's cases are those of its detections.
        of_this_run = cases.c.best_detection_id.like(f"%-{run}")

        async def stored() -> dict[str, Any] | None:
            async with engine.connect() as connection:
                result = await connection.execute(sa.select(cases).where(of_this_run))
                found = {row.id: row for row in result}
            return found if len(found) == 13 and found[first].version == 2 else None

        table = await eventually(stored, DEADLINE_S, "13 stored cases")
        assert table[first].detection_count == 2 and table[first].best_detection_id == f"s2-{run}"

    # Each opened case counts once for each of its owners (the alert's series), and only then.
    smoke_opened = {code: opened("smoke", code) - smoke_before[code] for code in smoke_before}
    assert smoke_opened == {"fire": 2, "environment": 2, "urban": 0}
    for code in DEPARTMENT_CODES:
        assert opened(f"only-{code}-{run}", code) == 1, code
        assert opened(f"only-{code}-{run}", "urban" if code != "urban" else "fire") == 0

    # Every department's feed holds exactly the cases of the scenarios it owns.
    for code in DEPARTMENT_CODES:
        mine = {case_id_for(f"o-{code}-{run}")}
        if code in ("fire", "environment"):
            mine |= {first, case_id_for(f"s3-{run}")}
        feed = await read_topic(
            settings,
            feed_topic(code),
            until=lambda rows, n=len(mine): (
                len({orjson.loads(r.value)["case"]["id"] for r in rows}) >= n
            ),
        )
        items = [orjson.loads(row.value) for row in feed]
        assert {item["case"]["id"] for item in items} == mine, code
        assert all(code in item["case"]["departments"] for item in items)
        assert {item["type"] for item in items} <= {"case.opened", "case.updated"}

    # A keeper started from the database, handed every detection again, counts none twice.
    registry = registry_view(settings)
    await registry.start()
    try:
        await registry.caught_up.wait()
        keeper = CaseKeeper(
            settings=settings, producer=producer, registry=registry, engine=engine, clock=now_ms
        )
        again = await read_topic(settings, DETECTIONS, until=lambda rows: len(rows) >= 15)
        await keeper.handle([SimpleNamespace(value=row.value, offset=0) for row in again])
    finally:
        await registry.stop()
    assert await topic_size(settings, CASES) == 14
    assert {code: opened("smoke", code) - smoke_before[code] for code in smoke_before} == (
        smoke_opened
    ), "a replay opens nothing and counts nothing"
    async with engine.connect() as connection:
        result = await connection.execute(sa.select(cases.c.id, cases.c.version).where(of_this_run))
        assert dict(result.tuples().all()) == {
            case_id: row.version for case_id, row in table.items()
        }
    await engine.dispose()


async def test_a_transition_during_a_keeper_batch_loses_neither_write(
    own_topics: tuple[Settings, Producer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An acknowledge over REST lands while the keeper merges a joining detection into the
    same case: the stored case ends with both (two sightings, acknowledged, version 3)."""
    settings, producer = own_topics
    run = uuid.uuid4().hex[:6]
    await register_scenarios(producer)
    engine = create_engine(settings)
    registry = registry_view(settings)
    await registry.start()
    try:
        await registry.caught_up.wait()
        keeper = CaseKeeper(
            settings=settings, producer=producer, registry=registry, engine=engine, clock=now_ms
        )

        def record(detection_id: str, lon: float) -> SimpleNamespace:
            d = inspection_pb2.Detection(
                id=detection_id, drone_id=f"dr-r-{run}", scenario="smoke", confidence=0.7,
                lon=lon, lat=CENTRE[1], observed_time_ms=now_ms(),
            )  # fmt: skip
            return SimpleNamespace(value=d.SerializeToString(), offset=0)

        # 4 km from the other test's cases, which the keeper loads from the shared database.
        await keeper.handle([record(f"r1-{run}", metres_east(4_000))])
        case_id = case_id_for(f"r1-{run}")
        admin = Principal(credential_id="test-admin", role=Role.ADMIN)
        publish = case_publisher.publish_case_changes
        acknowledged: list[asyncio.Task[Any]] = []

        async def publish_while_a_transition_lands(*args: Any, **kwargs: Any) -> None:
            # The keeper has read and merged the case; the transition is taken now, and
            # given time to land before the keeper saves.
            action = take_action(
                engine=engine,
                producer=producer,
                principal=admin,
                case_id=case_id,
                action=Action.ACKNOWLEDGE,
            )
            acknowledged.append(asyncio.create_task(action))
            await asyncio.sleep(1.0)
            await publish(*args, **kwargs)

        monkeypatch.setattr(case_keeper, "publish_case_changes", publish_while_a_transition_lands)
        await keeper.handle([record(f"r2-{run}", metres_east(4_050))])
        await acknowledged[0]
    finally:
        await registry.stop()
    async with engine.connect() as connection:
        row = (await connection.execute(sa.select(cases).where(cases.c.id == case_id))).one()
    await engine.dispose()
    assert (row.detection_count, row.status, row.version) == (2, "acknowledged", 3)
