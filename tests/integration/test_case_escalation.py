"""Integration: cases escalate through the real dispatch API, over real HTTP, with the real
broker and PostgreSQL. Open-flame detections above the rule's threshold make one priority-1
fire incident in dispatch and the case escalated with its id; more detections and a restart
after a crash between the post and the transition make no second incident (the case id is
the Idempotency-Key); and a dispatch that is down at first gets the incident once it is up.

Each test has a database of its own: dispatch restores every open incident it finds, and
the incident count must be this test's alone."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.auth import Role
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.reference import load_reference
from airgrid.topics import DETECTIONS
from airgrid.v1 import inspection_pb2
from services.telemetry.app import build_app as telemetry_app
from services.telemetry.case_store import save_cases, stored_cases
from services.telemetry.domain.cases import CaseStatus, case_id_for
from tests.conftest import free_port
from tests.databases import database_of_its_own
from tests.eventually import eventually
from tests.integration.inspection_rig import SHA, register_scenarios
from tests.integration.test_dispatch_flow import credential
from tests.integration.test_dispatch_responsive import dispatch_server

pytestmark = pytest.mark.integration

DEADLINE_S = 90.0
# The first reference nest: inside the zone and clear of its no-fly zones.
SCENE = (load_reference().nests[0].lon, load_reference().nests[0].lat)
FLAME = "open_flame"  # the rule: confidence ≥ 0.8 → a priority-1 fire incident


@dataclass
class Rig:
    settings: Settings
    """Telemetry's settings: dispatch's URL and the escalation key set."""
    engine: AsyncEngine
    producer: Producer
    operator: dict[str, str]
    fire: dict[str, str]
    run: str

    async def detect(self, n: int, confidence: float, *, first: str = "") -> str:
        """An open-flame detection a few metres from the scene; returns its id."""
        detection_id = f"flame-{self.run}-{n}"
        found = inspection_pb2.Detection(
            id=detection_id,
            drone_id="dr-esc",
            scenario=FLAME,
            confidence=confidence,
            lon=SCENE[0] + n * 1e-5,
            lat=SCENE[1],
            observed_time_ms=now_ms(),
            media=inspection_pb2.MediaRef(uri=f"s3://media/{detection_id}.jpg", sha256=SHA),
        )
        await self.producer.send_and_wait(
            DETECTIONS, found.SerializeToString(), key="dr-esc", ce_type="test.detection"
        )
        return detection_id


@contextlib.asynccontextmanager
async def rig(settings: Settings, dispatch_port: int) -> AsyncIterator[Rig]:
    async with database_of_its_own(
        settings.model_copy(update={"topic_prefix": f"esc{uuid.uuid4().hex[:8]}."}), "esc"
    ) as own:
        await ensure_topics(own)
        key = await credential(own, Role.DEPARTMENT, "emergency")
        operator = await credential(own, Role.OPERATOR)
        fire = await credential(own, Role.DEPARTMENT, "fire")
        telemetry = own.model_copy(
            update={
                "dispatch_url": f"http://127.0.0.1:{dispatch_port}",
                "dispatch_key": key,
                "escalation_retry_max_s": 2.0,
            }
        )
        producer = Producer(own, source="airgrid/test")
        await producer.start()
        engine = create_engine(own)
        try:
            await register_scenarios(producer)
            yield Rig(
                telemetry,
                engine,
                producer,
                {"Authorization": f"Bearer {operator}"},
                {"Authorization": f"Bearer {fire}"},
                uuid.uuid4().hex[:8],
            )
        finally:
            await producer.stop()
            await engine.dispose()


@contextlib.asynccontextmanager
async def dispatch_on(settings: Settings, port: int) -> AsyncIterator[httpx.AsyncClient]:
    """The dispatch service served on `port`; yields a client of it."""
    async with (
        dispatch_server(settings, port) as (_, url),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def telemetry_in(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The telemetry service with its lifespan (case keeper, escalator); yields a client."""
    app = telemetry_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def case_where(
    client: httpx.AsyncClient, rig: Rig, case_id: str, **wanted: Any
) -> dict[str, Any] | None:
    r = await client.get(f"/v1/cases/{case_id}", headers=rig.operator)
    if r.status_code != 200:
        return None
    body: dict[str, Any] = r.json()
    return body if all(body[k] == v for k, v in wanted.items()) else None


async def metric(client: httpx.AsyncClient, series: str) -> float:
    """The value of one series on the service's /metrics (0 when absent)."""
    text = (await client.get("/metrics")).text
    values = [float(row.split()[-1]) for row in text.splitlines() if row.startswith(series + " ")]
    return values[0] if values else 0.0


async def incidents(dispatch: httpx.AsyncClient, rig: Rig) -> list[dict[str, Any]]:
    r = await dispatch.get("/v1/incidents", params={"limit": 500}, headers=rig.operator)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_a_case_escalates_to_one_incident_whatever_follows(settings: Settings) -> None:
    port = free_port()
    async with rig(settings, port) as r, dispatch_on(r.settings, port) as dispatch:
        async with telemetry_in(r.settings) as telemetry:
            case_id = case_id_for(await r.detect(0, 0.6))  # under the threshold: no incident
            await eventually(
                lambda: case_where(telemetry, r, case_id, detection_count=1),
                DEADLINE_S,
                "the opened case",
            )
            await r.detect(1, 0.92)
            case = await eventually(
                lambda: case_where(telemetry, r, case_id, status="escalated"),
                DEADLINE_S,
                "the escalated case",
            )
            incident_id = case["incident_id"]
            made = await incidents(dispatch, r)
            assert [i["id"] for i in made] == [incident_id]
            got = await dispatch.get(f"/v1/incidents/{incident_id}", headers=r.fire)
            assert got.status_code == 200, got.text  # shared with the owner departments
            incident = got.json()
            assert (incident["type"], incident["priority"]) == ("fire", 1)
            assert incident["location"]["coordinates"][:2] == [case["lon"], case["lat"]]
            assert incident["department"] == "emergency"
            assert set(incident["shared_with"]) == {"fire", "emergency"}
            assert case_id in incident["description"]

            # More sightings join the escalated case; it asks for nothing more.
            await r.detect(2, 0.97)
            await r.detect(3, 0.85)
            joined = await eventually(
                lambda: case_where(telemetry, r, case_id, detection_count=4),
                DEADLINE_S,
                "the joined case",
            )
            assert (joined["status"], joined["incident_id"]) == ("escalated", incident_id)

        # A crash between the post and the transition leaves the case open as stored; the
        # restarted escalator posts it again under the same key and gets the same incident.
        (stored,) = await stored_cases(r.engine, [case_id])
        crashed = replace(
            stored, status=CaseStatus.OPEN, incident_id="", version=stored.version + 1
        )
        async with r.engine.begin() as connection:
            await save_cases(connection, [crashed], [])
        async with telemetry_in(r.settings) as telemetry:
            again = await eventually(
                lambda: case_where(telemetry, r, case_id, status="escalated"),
                DEADLINE_S,
                "the case escalated again after the restart",
            )
            assert again["incident_id"] == incident_id
        assert [i["id"] for i in await incidents(dispatch, r)] == [incident_id]


async def test_an_escalation_waits_for_dispatch_to_come_up(settings: Settings) -> None:
    port = free_port()  # nothing listens here yet
    async with rig(settings, port) as r, telemetry_in(r.settings) as telemetry:
        case_id = case_id_for(await r.detect(0, 0.95))

        retried = f'airgrid_case_escalations_total{{outcome="retried",scenario="{FLAME}"}}'
        before = await metric(telemetry, retried)

        async def tried_twice() -> bool | None:
            return True if await metric(telemetry, retried) >= before + 2 else None

        await eventually(tried_twice, DEADLINE_S, "two tries while dispatch is down")
        assert await metric(telemetry, "airgrid_case_escalations_pending") == 1
        case = await case_where(telemetry, r, case_id)
        assert case is not None and case["status"] == "open"
        async with dispatch_on(r.settings, port) as dispatch:
            case = await eventually(
                lambda: case_where(telemetry, r, case_id, status="escalated"),
                DEADLINE_S,
                "the case escalated once dispatch is up",
            )
            made = await incidents(dispatch, r)
            assert [i["id"] for i in made] == [case["incident_id"]]
            assert (made[0]["type"], made[0]["priority"]) == ("fire", 1)
