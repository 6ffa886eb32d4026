"""Integration: records a gateway may send to freeze or teleport a drone, through
POST /v1/telemetry, the real broker and the state API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.topics import REGISTRY_CHANGES
from airgrid.v1 import registry_pb2
from services.telemetry.app import build_app
from tests.integration.test_telemetry_stream import eventually, read_dlq

pytestmark = pytest.mark.integration

NEST = "nest-a"
POISON_SEQ = 2**63 - 1


@pytest.fixture
async def own_topics(fresh_prefix: Settings) -> AsyncIterator[tuple[Settings, Producer]]:
    await ensure_topics(fresh_prefix)
    producer = Producer(fresh_prefix, source="airgrid/test")
    await producer.start()
    yield fresh_prefix, producer
    await producer.stop()


async def gateway_and_reader_keys(settings: Settings) -> tuple[str, str]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, gateway = issue_credential(session, role=Role.GATEWAY, nest_id=NEST, label="gw")
            _, reader = issue_credential(session, role=Role.OPERATOR, label="reader")
    finally:
        await engine.dispose()
    return gateway, reader


def record(drone_id: str, seq: int, event_time_ms: int, lon: float = 114.40) -> dict[str, Any]:
    return {
        "drone_id": drone_id,
        "seq": seq,
        "event_time_ms": event_time_ms,
        "lon": lon,
        "lat": 30.48,
        "alt_m": 80.0,
        "battery_pct": 70.0,
        "flight_mode": "cruising",
        "nest_id": NEST,
    }


async def test_one_absurd_seq_or_a_teleport_never_freezes_a_drone(
    own_topics: tuple[Settings, Producer],
) -> None:
    settings, producer = own_topics
    run = uuid.uuid4().hex[:6]
    drone, quiet = f"dr-h-{run}", f"dr-q-{run}"
    for drone_id in (drone, quiet):
        change = registry_pb2.RegistryChange(
            entity_id=drone_id,
            version=1,
            changed_time_ms=now_ms(),
            drone=registry_pb2.Drone(
                id=drone_id, home_nest=NEST, status="active", max_speed_mps=23.0
            ),
        )
        await producer.send_and_wait(
            REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="test.registry"
        )
    gateway_key, reader_key = await gateway_and_reader_keys(settings)
    gateway = {"Authorization": f"Bearer {gateway_key}"}
    reader = {"Authorization": f"Bearer {reader_key}"}

    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):

        async def post(*records: dict[str, Any]) -> None:
            r = await client.post("/v1/telemetry", json={"records": list(records)}, headers=gateway)
            assert r.status_code == 202, r.text

        async def state_at(drone_id: str, seq: int) -> dict[str, Any] | None:
            r = await client.get(f"/v1/drones/{drone_id}/state", headers=reader)
            assert r.status_code in (200, 404), r.text
            if r.status_code == 200 and r.json()["last_seq"] == seq:
                found: dict[str, Any] = r.json()
                return found
            return None

        t0 = now_ms() - 4_000
        await post(record(drone, 5, t0))
        await eventually(lambda: state_at(drone, 5), "the first record's state")
        await post(record(drone, POISON_SEQ, t0 + 1_000))
        await eventually(lambda: state_at(drone, POISON_SEQ), "the absurd record's state")
        # A real record after it, with a newer event time, is taken despite its lower seq.
        await post(record(drone, 6, t0 + 2_000, lon=114.4001))
        state = await eventually(lambda: state_at(drone, 6), "the real record after the jump")
        assert state["link_ok"] is True and state["lon"] == 114.4001

        # A fix about 10,000 km away one second later goes to the DLQ, not into the state.
        await post(record(drone, 7, t0 + 3_000, lon=114.40 - 100.0))
        await post(record(drone, 8, t0 + 3_200, lon=114.4002))
        state = await eventually(lambda: state_at(drone, 8), "the record after the teleport")
        assert state["lon"] == 114.4002
        dlq = await read_dlq(settings, expected=1)
        assert [(key, reason) for _, key, reason in dlq] == [(drone, "implausible_move")]

        # A drone whose accepted record is older than the link-lost period is not linked,
        # whatever refused records (here duplicates of it) keep arriving.
        old = now_ms() - int(settings.link_lost_seconds * 1000) - 5_000
        await post(record(quiet, 1, old))
        state = await eventually(lambda: state_at(quiet, 1), "the quiet drone's state")
        await post(record(quiet, 1, old), record(quiet, 1, old))
        await read_dlq(settings, expected=3)
        r = await client.get(f"/v1/drones/{quiet}/state", headers=reader)
        assert r.json()["last_seq"] == 1 and r.json()["link_ok"] is False


async def test_a_gateway_reports_only_drones_the_registry_places_at_its_nest(
    own_topics: tuple[Settings, Producer],
) -> None:
    settings, producer = own_topics
    run = uuid.uuid4().hex[:6]
    ours, theirs = f"dr-o-{run}", f"dr-t-{run}"
    for drone_id, home in ((ours, NEST), (theirs, "nest-b")):
        change = registry_pb2.RegistryChange(
            entity_id=drone_id,
            version=1,
            changed_time_ms=now_ms(),
            drone=registry_pb2.Drone(id=drone_id, home_nest=home, status="active"),
        )
        await producer.send_and_wait(
            REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="test.registry"
        )
    gateway_key, reader_key = await gateway_and_reader_keys(settings)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, other_key = issue_credential(session, role=Role.GATEWAY, nest_id="nest-b")
            # A row from before gateways had to name a nest.
            unscoped, unscoped_key = issue_credential(session, role=Role.GATEWAY, nest_id="x")
            unscoped.nest_id = None
    finally:
        await engine.dispose()
    gateway = {"Authorization": f"Bearer {gateway_key}"}
    other = {"Authorization": f"Bearer {other_key}"}
    reader = {"Authorization": f"Bearer {reader_key}"}

    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        await eventually(lambda: _registered(app, ours, theirs), "the registry view")

        async def post(headers: dict[str, str], *records: dict[str, Any]) -> httpx.Response:
            return await client.post(
                "/v1/telemetry", json={"records": list(records)}, headers=headers
            )

        t0 = now_ms() - 2_000
        assert (await post(gateway, record(ours, 1, t0))).status_code == 202
        # The other nest's drone, even when the record claims this nest, is refused.
        claimed = record(theirs, 1, t0)  # nest_id: this gateway's nest
        r = await post(gateway, claimed)
        assert r.status_code == 403, r.text
        assert theirs in r.json()["detail"]
        r = await post({"Authorization": f"Bearer {unscoped_key}"}, record(ours, 2, t0 + 100))
        assert r.status_code == 403, r.text
        assert "no nest" in r.json()["detail"]

        # Once its own gateway reports it docked here, this nest is its current nest.
        assert (await post(other, record(theirs, 1, t0))).status_code == 202

        async def docked_here() -> bool:
            r = await client.get(f"/v1/drones/{theirs}/state", headers=reader)
            return r.status_code == 200 and r.json()["nest_id"] == NEST

        await eventually(docked_here, "the drone's state at this nest")
        assert (await post(gateway, record(theirs, 2, t0 + 200))).status_code == 202


async def _registered(app: Any, *drone_ids: str) -> bool:
    return all(d in app.state.registry.items for d in drone_ids)
