"""Integration: cases over REST against the real database and broker: a department sees and
acts on only the cases of scenarios it owns (others are 404), a repeat is 200 with the same
body, a disallowed action is 409, two conflicting actions never both win, filters and pages,
the precision gauge, each change reaching exactly its owner departments' feeds, and a
detection joining a case after a transition."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.topics import CASES, DEPARTMENT_CODES, DETECTIONS, REGISTRY_CHANGES, feed_topic
from airgrid.v1 import inspection_pb2, registry_pb2
from services.telemetry.app import build_app
from services.telemetry.case_store import save_cases, write_if_unchanged
from services.telemetry.domain.cases import Case, CaseStatus, case_id_for
from tests.eventually import eventually, until
from tests.integration.feed_rig import DEADLINE_S, FeedReader, issue_keys, telemetry_server
from tests.integration.inspection_rig import CENTRE, SHA, read_topic, topic_size

pytestmark = pytest.mark.integration

CALLERS = ("fire", "police", "environment", "operator", "admin", "gateway")


@dataclass
class Stack:
    settings: Settings
    client: httpx.AsyncClient
    engine: AsyncEngine
    keys: dict[str, dict[str, str]]
    run: str

    def case(self, n: int | str, scenario: str, *owners: str, seen_ms: int = 0) -> Case:
        seen = seen_ms or now_ms()
        return Case(
            id=f"case-{self.run}-{n}",
            scenario=scenario,
            departments=owners,
            status=CaseStatus.OPEN,
            lon=CENTRE[0],
            lat=CENTRE[1],
            first_seen_ms=seen,
            last_seen_ms=seen,
            count=1,
            best_detection_id=f"d-{self.run}-{n}",
            best_confidence=0.7,
            best_media_uri="s3://media/1.jpg",
            best_media_sha256=SHA,
        )

    async def store(self, *stored: Case) -> None:
        async with self.engine.begin() as connection:
            await save_cases(connection, stored, [])

    async def act(self, caller: str, case_id: str, action: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/cases/{case_id}/transitions", json={"action": action}, headers=self.keys[caller]
        )


@pytest.fixture
async def stack(fresh_prefix: Settings) -> AsyncIterator[Stack]:
    settings = fresh_prefix
    await ensure_topics(settings)
    engine = create_engine(settings)
    keys = {}
    async with session_factory(engine)() as session, session.begin():
        for caller in CALLERS:
            if caller in DEPARTMENT_CODES:
                _, key = issue_credential(session, role=Role.DEPARTMENT, department=caller)
            elif caller == "gateway":
                _, key = issue_credential(session, role=Role.GATEWAY, nest_id="nest-a")
            else:
                _, key = issue_credential(session, role=Role(caller))
            keys[caller] = {"Authorization": f"Bearer {key}"}
    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield Stack(settings, client, engine, keys, uuid.uuid4().hex[:8])
    await engine.dispose()


def is_problem(r: httpx.Response, status: int) -> bool:
    return r.status_code == status and r.headers["content-type"].startswith(
        "application/problem+json"
    )


async def test_a_department_sees_and_acts_on_only_the_cases_it_owns(stack: Stack) -> None:
    smoke, noise = f"smoke-{stack.run}", f"noise-{stack.run}"
    shared = stack.case("shared", smoke, "fire", "environment")
    police_only = stack.case("police", noise, "police")
    await stack.store(shared, police_only)

    for caller in ("fire", "environment", "operator", "admin"):
        r = await stack.client.get(f"/v1/cases/{shared.id}", headers=stack.keys[caller])
        assert r.status_code == 200 and r.json()["status"] == "open", (caller, r.text)
    r = await stack.client.get(f"/v1/cases/{shared.id}", headers=stack.keys["police"])
    assert is_problem(r, 404), r.text
    r = await stack.client.get(f"/v1/cases/{police_only.id}", headers=stack.keys["fire"])
    assert is_problem(r, 404), r.text
    r = await stack.client.get(f"/v1/cases/{shared.id}", headers=stack.keys["gateway"])
    assert is_problem(r, 403), r.text
    r = await stack.client.get("/v1/cases/case-none", headers=stack.keys["operator"])
    assert is_problem(r, 404), r.text

    # Another department's action is 404, as if the case did not exist, and changes nothing.
    r = await stack.act("police", shared.id, "acknowledge")
    assert is_problem(r, 404), r.text
    assert is_problem(await stack.act("operator", "case-none", "acknowledge"), 404)
    assert is_problem(await stack.act("gateway", shared.id, "acknowledge"), 403)

    first = await stack.act("fire", shared.id, "acknowledge")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "acknowledged" and first.json()["version"] == 2
    again = await stack.act("environment", shared.id, "acknowledge")
    assert again.status_code == 200 and again.json() == first.json()

    resolved = await stack.act("fire", shared.id, "resolve")
    assert resolved.json()["status"] == "resolved" and resolved.json()["version"] == 3
    refused = await stack.act("fire", shared.id, "dismiss")
    assert is_problem(refused, 409), refused.text
    assert refused.json()["case_status"] == "resolved"
    assert is_problem(await stack.act("fire", shared.id, "escalate"), 409)
    r = await stack.client.get(f"/v1/cases/{shared.id}", headers=stack.keys["fire"])
    assert r.json() == resolved.json()

    # The published changes: one event per version, the repeat under the same event id.
    rows = await read_topic(stack.settings, CASES, until=lambda rows: len(rows) >= 3)
    published = [inspection_pb2.CaseEvent.FromString(row.value) for row in rows]
    assert {e.event_id for e in published} == {f"{shared.id}:2", f"{shared.id}:3"}
    assert all(e.case.id == shared.id for e in published)


async def test_conflicting_actions_never_both_win(stack: Stack) -> None:
    scenario = f"race-{stack.run}"
    raced = [stack.case(f"race-{n}", scenario, "fire") for n in range(8)]
    await stack.store(*raced)
    for case in raced:
        dismiss, resolve = await asyncio.gather(
            stack.act("fire", case.id, "dismiss"), stack.act("operator", case.id, "resolve")
        )
        codes = sorted((dismiss.status_code, resolve.status_code))
        assert codes == [200, 409], (dismiss.text, resolve.text)
        winner = dismiss if dismiss.status_code == 200 else resolve
        assert winner.json()["version"] == 2
        r = await stack.client.get(f"/v1/cases/{case.id}", headers=stack.keys["fire"])
        assert r.json() == winner.json()

    # The store's guard alone: a write over a version already replaced does not land.
    case = stack.case("guard", scenario, "fire")
    await stack.store(case)
    ack = Case(**{**case.__dict__, "status": CaseStatus.ACKNOWLEDGED, "version": 2})
    dis = Case(**{**case.__dict__, "status": CaseStatus.DISMISSED, "version": 2})
    assert await write_if_unchanged(stack.engine, ack, read_version=1)
    assert not await write_if_unchanged(stack.engine, dis, read_version=1)


async def test_filters_and_pages(stack: Stack) -> None:
    scenario = f"page-{stack.run}"
    base = 1_900_000_000_000
    stored = [stack.case(n, scenario, "fire", seen_ms=base + n * 60_000) for n in range(5)]
    await stack.store(*stored, stack.case("other", f"other-{stack.run}", "fire"))
    await stack.act("fire", stored[0].id, "dismiss")

    async def page(caller: str, **params: str | int) -> dict[str, object]:
        r = await stack.client.get(
            "/v1/cases", params={"scenario": scenario, **params}, headers=stack.keys[caller]
        )
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body

    def ids(body: dict[str, object]) -> list[str]:
        return [item["id"] for item in body["items"]]  # type: ignore[attr-defined]

    latest_first = [c.id for c in reversed(stored)]
    assert ids(await page("fire", limit=500)) == latest_first
    first, second = await page("fire", limit=2), await page("fire", limit=2, offset=2)
    assert first["total"] == 5 and first["limit"] == 2 and first["offset"] == 0
    assert ids(first) + ids(second) == latest_first[:4]
    assert ids(await page("fire", status="dismissed")) == [stored[0].id]
    assert (await page("fire", status="open"))["total"] == 4
    since = datetime.fromtimestamp((base + 60_000) / 1000, UTC).isoformat()
    until = datetime.fromtimestamp((base + 3 * 60_000) / 1000, UTC).isoformat()
    assert ids(await page("fire", since=since, until=until)) == [stored[2].id, stored[1].id]
    assert (await page("police"))["total"] == 0
    assert (await page("operator", department="fire"))["total"] == 5
    assert (await page("operator", department="police"))["total"] == 0

    r = await stack.client.get("/v1/cases", params={"limit": 0}, headers=stack.keys["fire"])
    assert is_problem(r, 422), r.text
    r = await stack.client.get("/v1/cases", params={"status": "x"}, headers=stack.keys["fire"])
    assert is_problem(r, 422), r.text
    r = await stack.client.get("/v1/cases", headers=stack.keys["gateway"])
    assert is_problem(r, 403), r.text


async def test_the_precision_gauge_is_dismissed_over_all(stack: Stack) -> None:
    scenario = f"prec-{stack.run}"
    stored = [stack.case(f"p{n}", scenario, "fire") for n in range(4)]
    await stack.store(*stored)
    await stack.act("fire", stored[0].id, "acknowledge")
    assert (await stack.act("fire", stored[1].id, "dismiss")).status_code == 200
    assert (await stack.act("fire", stored[2].id, "dismiss")).status_code == 200

    r = await stack.client.get("/metrics")
    line = f'airgrid_case_dismissed_share{{scenario="{scenario}"}} '
    values = [float(row[len(line) :]) for row in r.text.splitlines() if row.startswith(line)]
    assert values == [0.5], r.text[-2000:]


async def test_a_change_reaches_only_its_owner_departments_feeds(stack: Stack) -> None:
    own = {
        code: stack.case(f"own-{code}", f"only-{code}-{stack.run}", code)
        for code in DEPARTMENT_CODES
    }
    shared = stack.case("shared", f"smoke-{stack.run}", "fire", "environment")
    await stack.store(shared, *own.values())
    for case in (shared, *own.values()):
        r = await stack.act("operator", case.id, "acknowledge")
        assert r.status_code == 200, r.text

    for code in DEPARTMENT_CODES:
        mine = {own[code].id} | ({shared.id} if code in ("fire", "environment") else set())
        # Every item the feed holds, however many: a stray one fails the set comparison.
        size = await topic_size(stack.settings, feed_topic(code))
        feed = await read_topic(
            stack.settings, feed_topic(code), until=lambda rows, n=size: len(rows) >= n
        )
        items = [orjson.loads(row.value) for row in feed]
        assert {item["case"]["id"] for item in items} == mine, code
        assert {(item["type"], item["action"]) for item in items} == {
            ("case.updated", "acknowledge")
        }
        assert all(item["case"]["status"] == "acknowledged" for item in items)


async def test_every_department_stream_shows_only_its_own_cases(fresh_prefix: Settings) -> None:
    """The SSE streams of all 11 departments at once, filtered to case items inside a box
    around the cases: each shows exactly the changes of the cases it owns."""
    settings = fresh_prefix
    await ensure_topics(settings)
    keys = await issue_keys(settings, list(DEPARTMENT_CODES))
    engine = create_engine(settings)
    async with session_factory(engine)() as session, session.begin():
        _, operator_key = issue_credential(session, role=Role.OPERATOR)
    stack = Stack(settings, httpx.AsyncClient(), engine, {}, uuid.uuid4().hex[:8])
    own = {code: stack.case(f"sse-{code}", f"only-{code}-{stack.run}", code) for code in keys}
    shared = stack.case("sse-shared", f"smoke-{stack.run}", "fire", "environment")
    await stack.store(shared, *own.values())
    box = f"{CENTRE[0] - 0.01},{CENTRE[1] - 0.01},{CENTRE[0] + 0.01},{CENTRE[1] + 0.01}"
    async with (
        telemetry_server(settings) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        readers = {
            code: await FeedReader(
                client, code, keys[code][1], params={"types": "case.updated", "bbox": box}
            )
            .start()
            .connected()
            for code in DEPARTMENT_CODES
        }
        try:
            for case in (shared, *own.values()):
                r = await client.post(
                    f"/v1/cases/{case.id}/transitions",
                    json={"action": "acknowledge"},
                    headers={"Authorization": f"Bearer {operator_key}"},
                )
                assert r.status_code == 200, r.text
            expected = {
                code: {own[code].id} | ({shared.id} if code in ("fire", "environment") else set())
                for code in DEPARTMENT_CODES
            }
            await until(
                lambda: all(
                    len(readers[code].events) >= len(ids) for code, ids in expected.items()
                ),
                DEADLINE_S,
                "every department's case items",
            )
            for code, reader in readers.items():
                assert {e.data["case"]["id"] for e in reader.events} == expected[code], code
                assert {e.event for e in reader.events} == {"case.updated"}
        finally:
            for reader in readers.values():
                await reader.stop()
    await engine.dispose()


async def test_a_detection_joining_an_acknowledged_case_keeps_its_status(stack: Stack) -> None:
    """The case keeper merges into the case as stored: a transition made over REST is
    neither undone nor lost when the next detection joins."""
    scenario = f"join-{stack.run}"
    producer = Producer(stack.settings, source="airgrid/test")
    await producer.start()
    try:
        change = registry_pb2.RegistryChange(
            entity_id=f"scenario:{scenario}",
            version=1,
            scenario=registry_pb2.Scenario(
                code=scenario,
                name=scenario,
                departments=["fire"],
                severity="low",
                merge_radius_m=300.0,
                merge_window_s=600,
            ),
        )
        await producer.send_and_wait(
            REGISTRY_CHANGES,
            change.SerializeToString(),
            key=f"scenario:{scenario}",
            ce_type="test.registry",
        )

        async def detect(detection_id: str) -> None:
            found = inspection_pb2.Detection(
                id=detection_id,
                drone_id="dr-join",
                scenario=scenario,
                confidence=0.6,
                lon=CENTRE[0],
                lat=CENTRE[1],
                observed_time_ms=now_ms(),
                media=inspection_pb2.MediaRef(uri="s3://media/j.jpg", sha256=SHA),
            )
            await producer.send_and_wait(
                DETECTIONS, found.SerializeToString(), key="dr-join", ce_type="test.detection"
            )

        async def case_with(count: int) -> dict[str, object] | None:
            r = await stack.client.get(f"/v1/cases/{case_id}", headers=stack.keys["fire"])
            if r.status_code != 200 or r.json()["detection_count"] != count:
                return None
            body: dict[str, object] = r.json()
            return body

        case_id = case_id_for(f"j1-{stack.run}")
        await detect(f"j1-{stack.run}")
        await eventually(lambda: case_with(1), DEADLINE_S, "the opened case")
        assert (await stack.act("fire", case_id, "acknowledge")).json()["version"] == 2
        await detect(f"j2-{stack.run}")
        joined = await eventually(lambda: case_with(2), DEADLINE_S, "the joined case")
        assert joined["status"] == "acknowledged" and joined["version"] == 3
    finally:
        await producer.stop()
