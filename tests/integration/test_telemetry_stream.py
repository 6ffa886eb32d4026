"""Integration: raw telemetry via the real broker to drone state over HTTP; rejects to the DLQ."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from airgrid.auth import Role, issue_credential
from airgrid.bus import REASON_HEADER, Producer, client_options, ensure_topics, now_ms, topic_name
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.topics import REGISTRY_CHANGES, TELEMETRY_DLQ, TELEMETRY_RAW
from airgrid.v1 import registry_pb2, telemetry_pb2
from services.telemetry.app import build_app

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Polls `check` until it returns a truthy value, or fails after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def issue_keys(settings: Settings, *roles: Role) -> list[str]:
    """Keys of the roles; a gateway's is bound to nest-a, where the test drones live."""
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            return [
                issue_credential(
                    session,
                    role=role,
                    nest_id="nest-a" if role is Role.GATEWAY else None,
                    label="telemetry test",
                )[1]
                for role in roles
            ]
    finally:
        await engine.dispose()


def telemetry(drone_id: str, seq: int, **overrides: Any) -> telemetry_pb2.Telemetry:
    fields: dict[str, Any] = {
        "drone_id": drone_id,
        "seq": seq,
        "event_time_ms": now_ms(),
        "lon": 121.47,
        "lat": 31.23,
        "alt_m": 80.0,
        "ground_speed_mps": 12.0,
        "heading_deg": 45.0,
        "battery_pct": 77.0,
        "flight_mode": telemetry_pb2.FLIGHT_MODE_CRUISING,
        "nest_id": "nest-a",
    }
    fields.update(overrides)
    return telemetry_pb2.Telemetry(**fields)


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    await ensure_topics(settings)
    producer = Producer(settings, source="airgrid/test")
    await producer.start()
    yield producer
    await producer.stop()


async def test_raw_records_reach_state_and_rejects_reach_the_dlq(
    settings: Settings, producer: Producer
) -> None:
    run = uuid.uuid4().hex[:6]
    drone_a, drone_b, ghost = f"dr-a-{run}", f"dr-b-{run}", f"dr-ghost-{run}"
    for drone_id in (drone_a, drone_b):
        change = registry_pb2.RegistryChange(
            entity_id=drone_id,
            version=1,
            changed_time_ms=now_ms(),
            drone=registry_pb2.Drone(id=drone_id, home_nest="nest-a", status="active"),
        )
        await producer.send_and_wait(
            REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="test.registry"
        )
    reader_key, gateway_key = await issue_keys(settings, Role.OPERATOR, Role.GATEWAY)

    good = telemetry(drone_a, seq=2)
    garbage = b"\xff\xfe not a protobuf at all"
    truncated = telemetry(drone_a, seq=1).SerializeToString()[:5]
    not_a_number = telemetry(drone_a, seq=1, lat=math.nan).SerializeToString()
    unknown = telemetry(ghost, seq=1).SerializeToString()
    expected_rejects = {
        garbage: "malformed",
        truncated: "malformed",
        not_a_number: "out_of_range",
        unknown: "unknown_drone",
    }

    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        reader = {"Authorization": f"Bearer {reader_key}"}
        for value, key in [
            (garbage, drone_a),
            (truncated, drone_a),
            (not_a_number, drone_a),
            (unknown, ghost),
            (good.SerializeToString(), drone_a),
        ]:
            await producer.send_and_wait(TELEMETRY_RAW, value, key=key, ce_type="test.telemetry")

        async def state_of(drone_id: str, seq: int) -> dict[str, Any] | None:
            response = await client.get(f"/v1/drones/{drone_id}/state", headers=reader)
            if response.status_code == 200 and response.json()["last_seq"] == seq:
                body: dict[str, Any] = response.json()
                return body
            assert response.status_code in (200, 404), response.text
            return None

        state = await eventually(lambda: state_of(drone_a, 2), "the good record's state")
        assert state["drone_id"] == drone_a
        assert state["flight_mode"] == "cruising"
        assert state["battery_pct"] == 77.0
        assert state["link_ok"] is True
        assert state["event_time"].endswith(("Z", "+00:00"))

        # The same seq again, under a new ce_id, is a duplicate; an older one is out of order.
        await producer.send_and_wait(
            TELEMETRY_RAW, good.SerializeToString(), key=drone_a, ce_type="test.telemetry"
        )
        older = good.event_time_ms - 1_000
        stale = telemetry(drone_a, seq=1, event_time_ms=older).SerializeToString()
        await producer.send_and_wait(TELEMETRY_RAW, stale, key=drone_a, ce_type="test.telemetry")

        # Ingest over HTTP: JSON from a gateway becomes state through the same stream.
        ingest = {
            "records": [
                {
                    "drone_id": drone_b,
                    "seq": 7,
                    "event_time_ms": now_ms(),
                    "lon": 121.5,
                    "lat": 31.2,
                    "alt_m": 0.0,
                    "battery_pct": 99.0,
                    "flight_mode": "docked",
                }
            ]
        }
        gateway = {"Authorization": f"Bearer {gateway_key}"}
        response = await client.post("/v1/telemetry", json=ingest, headers=gateway)
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1}
        state_b = await eventually(lambda: state_of(drone_b, 7), "the ingested record's state")
        assert state_b["flight_mode"] == "docked"

        # HTTP edge errors are problems, not 500s.
        bad = await client.post(
            "/v1/telemetry",
            content=b"\xff\xff",
            headers={**gateway, "content-type": "application/x-protobuf"},
        )
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")
        invalid = await client.post("/v1/telemetry", json={"records": [{}]}, headers=gateway)
        assert invalid.status_code == 422
        # A time past int64 (protobuf's range) is the JSON's fault, not the server's.
        huge = {"records": [{**ingest["records"][0], "event_time_ms": 2**63}]}
        past_int64 = await client.post("/v1/telemetry", json=huge, headers=gateway)
        assert past_int64.status_code == 422, past_int64.text
        oversized = telemetry_pb2.TelemetryBatch(
            records=[telemetry_pb2.Telemetry(drone_id=drone_b, seq=i) for i in range(10_001)]
        )
        too_many = await client.post(
            "/v1/telemetry",
            content=oversized.SerializeToString(),
            headers={**gateway, "content-type": "application/x-protobuf"},
        )
        assert too_many.status_code == 413
        fleet = await client.get("/v1/drones/states", params={"status": "docked"}, headers=reader)
        assert drone_b in {d["drone_id"] for d in fleet.json()["drones"]}
        assert drone_a not in {d["drone_id"] for d in fleet.json()["drones"]}
        assert (await client.get("/openapi.json")).status_code == 200
        forbidden = await client.post("/v1/telemetry", json=ingest, headers=reader)
        assert forbidden.status_code == 403
        missing = await client.get(f"/v1/drones/{ghost}/state", headers=reader)
        assert missing.status_code == 404
        unauthenticated = await client.get(f"/v1/drones/{drone_a}/state")
        assert unauthenticated.status_code == 401

    # A restarted service rebuilds the last seq per drone from the state topic.
    restarted = build_app(settings)
    async with restarted.router.lifespan_context(restarted):
        await producer.send_and_wait(
            TELEMETRY_RAW, good.SerializeToString(), key=drone_a, ce_type="test.telemetry"
        )
        dlq = await read_dlq(settings, expected=len(expected_rejects) + 3)
    duplicates = [key for _, key, reason in dlq if reason == "duplicate"]
    assert duplicates == [drone_a, drone_a]
    reasons = {value: reason for value, _, reason in dlq}
    for value, reason in expected_rejects.items():
        assert reasons.get(value) == reason, (value, reason, reasons)
    assert reasons.get(stale) == "out_of_order"
    keys = {value: key for value, key, _ in dlq}
    assert keys[garbage] == drone_a
    assert keys[unknown] == ghost


async def read_dlq(settings: Settings, *, expected: int) -> list[tuple[bytes, str, str]]:
    """(original bytes, key, airgrid_reason) of every DLQ record, once `expected` arrived."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, TELEMETRY_DLQ),
        **client_options(settings),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    rows: list[tuple[bytes, str, str]] = []
    try:

        async def collect() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    reason = dict(record.headers)[REASON_HEADER].decode()
                    key = record.key.decode() if record.key else ""
                    rows.append((record.value or b"", key, reason))
            return len(rows) >= expected

        await eventually(collect, f"{expected} DLQ records")
    finally:
        await consumer.stop()
    return rows
