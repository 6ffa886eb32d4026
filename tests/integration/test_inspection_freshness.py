"""Inspection freshness in the running telemetry service, on the real broker and PostgreSQL:
fixes at inspection altitude over a plan's cells make them fresh, fixes too high or docked do
not; a plan edit on the registry topic changes the per-plan answer; the answer survives a
restart; a bad `limit` is a 422 problem."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.topics import REGISTRY_CHANGES, TELEMETRY_RAW
from airgrid.v1 import registry_pb2, telemetry_pb2
from services.telemetry.app import build_app
from tests.eventually import eventually

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
FRESHNESS = "/v1/inspection/freshness"
# A square of the reference zone (East Lake), about 1.9 km east-west and 2.2 km north-south.
WEST, SOUTH, SIZE = 114.35, 30.45, 0.02
LINE_LAT = SOUTH + SIZE / 2
STEP_DEG = 0.0005  # about 48 m of longitude here: 4 s apart is 12 m/s


@pytest.fixture
async def stream(fresh_prefix: Settings) -> AsyncIterator[tuple[Settings, Producer]]:
    await ensure_topics(fresh_prefix)
    producer = Producer(fresh_prefix, source="airgrid/test")
    await producer.start()
    yield fresh_prefix, producer
    await producer.stop()


async def operator_key(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            return issue_credential(session, role=Role.OPERATOR, label="freshness test")[1]
    finally:
        await engine.dispose()


async def publish(producer: Producer, key: str, change: registry_pb2.RegistryChange) -> None:
    await producer.send_and_wait(
        REGISTRY_CHANGES, change.SerializeToString(), key=key, ce_type="test.registry"
    )


async def register_drone(producer: Producer, drone_id: str) -> None:
    drone = registry_pb2.Drone(id=drone_id, home_nest="nest-a", status="active")
    await publish(producer, drone_id, registry_pb2.RegistryChange(entity_id=drone_id, drone=drone))


async def publish_plan(producer: Producer, plan_id: str, west: float, version: int = 1) -> None:
    ring = [(west, SOUTH), (west + SIZE, SOUTH), (west + SIZE, SOUTH + SIZE), (west, SOUTH + SIZE)]
    ring.append(ring[0])
    plan = registry_pb2.InspectionPlan(
        id=plan_id,
        name=plan_id,
        department="fire",
        kind="area",
        ring_lon=[p[0] for p in ring],
        ring_lat=[p[1] for p in ring],
        revisit_interval_s=3600,
        timezone="Asia/Shanghai",
    )
    key = f"inspection-plan:{plan_id}"
    change = registry_pb2.RegistryChange(entity_id=key, version=version, inspection_plan=plan)
    await publish(producer, key, change)


async def fly_line(
    producer: Producer,
    drone_id: str,
    alt_m: float,
    mode: telemetry_pb2.FlightMode = telemetry_pb2.FLIGHT_MODE_CRUISING,
) -> int:
    """One pass west to east over the square at `alt_m`; returns the last seq sent."""
    points = int(SIZE / STEP_DEG) + 1
    start = now_ms() - points * 4000
    for seq in range(1, points + 1):
        fix = telemetry_pb2.Telemetry(
            drone_id=drone_id,
            seq=seq,
            event_time_ms=start + seq * 4000,
            lon=WEST + (seq - 1) * STEP_DEG,
            lat=LINE_LAT,
            alt_m=alt_m,
            ground_speed_mps=12.0,
            heading_deg=90.0,
            battery_pct=80.0,
            flight_mode=mode,
            nest_id="nest-a",
        )
        await producer.send(TELEMETRY_RAW, fix.SerializeToString(), key=drone_id, ce_type="t")
    await producer.flush()
    return points


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield app, client


class Reader:
    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    async def freshness(self, limit: int = 500) -> dict[str, Any]:
        response = await self.client.get(FRESHNESS, params={"limit": limit}, headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def plan(self, plan_id: str) -> dict[str, Any] | None:
        for plan in (await self.freshness())["plans"]:
            if plan["plan_id"] == plan_id:
                return dict(plan)
        return None

    async def state_seq(self, drone_id: str, seq: int) -> bool | None:
        response = await self.client.get(f"/v1/drones/{drone_id}/state", headers=self.headers)
        if response.status_code == 200 and response.json()["last_seq"] >= seq:
            return True
        return None


def overdue_cells(body: dict[str, Any]) -> set[int]:
    return {f["properties"]["cell"] for f in body["overdue"]["features"]}


async def test_fixes_at_inspection_altitude_make_a_plans_cells_fresh_and_survive_a_restart(
    stream: tuple[Settings, Producer],
) -> None:
    settings, producer = stream
    run = uuid.uuid4().hex[:6]
    high, docked, low = f"fr-high-{run}", f"fr-dock-{run}", f"fr-low-{run}"
    plan_id = f"square-{run}"
    for drone_id in (high, docked, low):
        await register_drone(producer, drone_id)
    await publish_plan(producer, plan_id, WEST)
    key = await operator_key(settings)

    async with running(settings) as (app, client):
        reader = Reader(client, key)
        before = await eventually(lambda: reader.plan(plan_id), DEADLINE_S, "the plan's answer")
        assert before["cells"] > 20 and before["due_cells"] == before["cells"]
        assert before["fresh_cells"] == 0 and before["share"] == 0.0
        assert before["department"] == "fire" and before["revisit_interval_s"] == 3600

        # Too high for the camera's resolution, and docked on a roof: nothing seen.
        last = await fly_line(producer, high, 400.0)
        last_docked = await fly_line(producer, docked, 120.0, telemetry_pb2.FLIGHT_MODE_DOCKED)
        await eventually(lambda: reader.state_seq(high, last), DEADLINE_S, "the 400 m pass")
        await eventually(lambda: reader.state_seq(docked, last_docked), DEADLINE_S, "docked")
        unseen = await reader.plan(plan_id)
        assert unseen is not None and unseen["fresh_cells"] == 0
        overdue_before = await reader.freshness(limit=5000)

        # At 120 m the footprint is about 128 m across: the row of cells under the line.
        last_low = await fly_line(producer, low, 120.0)
        await eventually(lambda: reader.state_seq(low, last_low), DEADLINE_S, "the 120 m pass")
        after = await reader.plan(plan_id)
        assert after is not None and after["fresh_cells"] > 0
        assert 0 < after["share"] < 1
        body = await reader.freshness(limit=5000)
        assert body["overdue_total"] < overdue_before["overdue_total"]
        assert overdue_cells(body) < overdue_cells(overdue_before)
        assert body["overdue"]["type"] == "FeatureCollection"
        app.state.freshness.set_gauges()
        labels = {"plan": plan_id, "department": "fire"}
        gauge = REGISTRY.get_sample_value("airgrid_inspection_freshness_share", labels)
        assert gauge == after["share"]

    # The shutdown stored the sightings; a new process answers the same.
    async with running(settings) as (_, client):
        reader = Reader(client, key)
        restored = await eventually(lambda: reader.plan(plan_id), DEADLINE_S, "the plan again")
        assert restored == after
        assert overdue_cells(await reader.freshness(limit=5000)) == overdue_cells(body)


async def test_a_plan_edit_changes_the_per_plan_answer_and_a_bad_limit_is_a_problem(
    stream: tuple[Settings, Producer],
) -> None:
    settings, producer = stream
    run = uuid.uuid4().hex[:6]
    low, plan_id = f"fr-edit-{run}", f"edit-{run}"
    await register_drone(producer, low)
    await publish_plan(producer, plan_id, WEST)
    key = await operator_key(settings)
    async with running(settings) as (_, client):
        reader = Reader(client, key)
        await eventually(lambda: reader.plan(plan_id), DEADLINE_S, "the plan's answer")
        await fly_line(producer, low, 120.0)

        async def seen() -> dict[str, Any] | None:
            plan = await reader.plan(plan_id)
            return plan if plan is not None and plan["fresh_cells"] > 0 else None

        await eventually(seen, DEADLINE_S, "the pass to make cells fresh")

        # Moved 0.05° east, off the flown line's reach: none of its cells were seen.
        await publish_plan(producer, plan_id, WEST + 0.05, version=2)

        async def moved() -> dict[str, Any] | None:
            plan = await reader.plan(plan_id)
            return plan if plan is not None and plan["fresh_cells"] == 0 else None

        edited = await eventually(moved, DEADLINE_S, "the edited plan's answer")
        assert edited["due_cells"] == edited["cells"] > 20

        deleted = registry_pb2.RegistryChange(
            entity_id=f"inspection-plan:{plan_id}", version=3, deleted=True
        )
        await publish(producer, f"inspection-plan:{plan_id}", deleted)

        async def gone() -> bool | None:
            return True if await reader.plan(plan_id) is None else None

        await eventually(gone, DEADLINE_S, "the deleted plan to leave the answer")

        for bad in ("-1", "5001", "1.5", "ten"):
            response = await client.get(FRESHNESS, params={"limit": bad}, headers=reader.headers)
            assert response.status_code == 422, (bad, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["status"] == 422
        assert (await client.get(FRESHNESS)).status_code == 401
