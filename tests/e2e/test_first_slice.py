"""End to end: the three services as processes; telemetry and an incident in over Kafka and
HTTP, the assignment decision out on Kafka and visible over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from airgrid.bus import Producer, client_options, now_ms, topic_name, topic_partitions
from airgrid.reference import load_reference
from airgrid.topics import DISPATCH_DECISIONS, TELEMETRY_RAW
from airgrid.v1 import dispatch_pb2, telemetry_pb2
from tests.e2e.conftest import RunningServices, ServiceStack, issue_keys
from tests.eventually import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def stack(running_services: RunningServices) -> ServiceStack:
    keys = await issue_keys(running_services.settings)
    return ServiceStack(running_services.settings, running_services.urls, keys.fire, keys.operator)


async def test_operations_endpoints_answer_on_every_service(stack: ServiceStack) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        for name, url in stack.urls.items():
            assert (await client.get(f"{url}/healthz")).json()["status"] == "ok", name
            assert (await client.get(f"{url}/readyz")).status_code == 200, name
            metrics = await client.get(f"{url}/metrics")
            assert metrics.status_code == 200 and "airgrid_http_requests_total" in metrics.text
            assert (await client.get(f"{url}/openapi.json")).status_code == 200


async def test_registry_serves_the_seeded_fleet(stack: ServiceStack) -> None:
    headers = {"Authorization": f"Bearer {stack.operator_key}"}
    async with httpx.AsyncClient(base_url=stack.urls["registry"], timeout=5.0) as client:
        drones = (await client.get("/v1/drones", headers=headers, params={"limit": 1})).json()
        departments = (await client.get("/v1/departments", headers=headers)).json()
        assert (await client.get("/v1/drones")).status_code == 401
    assert drones["total"] == 186
    assert departments["total"] == 11


async def test_incident_in_over_http_decision_out_on_kafka(stack: ServiceStack) -> None:
    s = stack.settings
    reference = load_reference()
    producer = Producer(s, source="tests/e2e")
    await producer.start()
    try:
        # Every drone reports itself docked at its nest.
        nests = {n.id: n for n in reference.nests}
        for seq, d in enumerate(reference.drones, start=1):
            nest = nests[d.home_nest]
            record = telemetry_pb2.Telemetry(
                drone_id=d.id,
                seq=seq,
                event_time_ms=now_ms(),
                lon=nest.lon,
                lat=nest.lat,
                battery_pct=100.0,
                flight_mode=telemetry_pb2.FLIGHT_MODE_DOCKED,
                nest_id=nest.id,
            )
            await producer.send(
                TELEMETRY_RAW, record.SerializeToString(), key=d.id, ce_type="airgrid.telemetry"
            )
        await producer.flush()
    finally:
        await producer.stop()

    fire = {"Authorization": f"Bearer {stack.fire_key}"}
    async with httpx.AsyncClient(timeout=5.0) as client:

        async def state_known() -> bool | None:
            r = await client.get(
                f"{stack.urls['telemetry']}/v1/drones/{reference.drones[-1].id}/state",
                headers=fire,
            )
            return True if r.status_code == 200 else None

        await eventually(state_known, 30, "drone state from the telemetry service")

        consumer = AIOKafkaConsumer(**client_options(s), enable_auto_commit=False)
        await consumer.start()
        name = topic_name(s, DISPATCH_DECISIONS)
        tps = await topic_partitions(consumer, name)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        try:
            nest = reference.nests[0]
            body = {
                "type": "fire",
                "priority": 1,
                "location": {"type": "Point", "coordinates": [nest.lon + 0.01, nest.lat + 0.005]},
                "required_capabilities": ["thermal"],
                "drones_needed": 1,
                "on_scene_seconds": 600,
                "description": "smoke from a warehouse roof",
            }
            posted = time.monotonic()
            created = await client.post(
                f"{stack.urls['dispatch']}/v1/incidents", json=body, headers=fire
            )
            assert created.status_code == 201, created.text
            incident = created.json()
            assert incident["status"] == "accepted"

            async def assigned_on_kafka() -> dispatch_pb2.DispatchDecision | None:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        decision = dispatch_pb2.DispatchDecision.FromString(record.value or b"")
                        if (
                            decision.incident_id == incident["id"]
                            and decision.kind == dispatch_pb2.DECISION_KIND_ASSIGNED
                        ):
                            return decision
                return None

            decision = await eventually(assigned_on_kafka, 15, "the assignment decision")
            drone_id = decision.assignments[0].drone_id

            async def visible() -> dict[str, Any] | None:
                r = await client.get(
                    f"{stack.urls['dispatch']}/v1/incidents/{incident['id']}", headers=fire
                )
                data = r.json()
                return data if data["missions"] else None

            shown = await eventually(visible, 5, "the mission on GET /v1/incidents/{id}")
            elapsed = time.monotonic() - posted
            assert shown["status"] == "assigned"
            assert shown["missions"][0]["drone_id"] == drone_id
            assert "thermal" in next(d.capabilities for d in reference.drones if d.id == drone_id)
            stages = [s["stage"] for s in shown["timeline"]]
            assert stages[:2] == ["accepted", "assigned"]
            print(f"POST → assignment visible over HTTP in {elapsed:.3f}s")
        finally:
            await consumer.stop()


async def test_bad_incidents_get_problem_details(stack: ServiceStack) -> None:
    fire = {"Authorization": f"Bearer {stack.fire_key}"}
    url = f"{stack.urls['dispatch']}/v1/incidents"
    good = {
        "type": "fire",
        "priority": 1,
        "location": {"type": "Point", "coordinates": [114.41, 30.48]},
    }
    cases = [
        (b"{not json", 400),
        (b'{"priority": 1}', 422),
        ({**good, "priority": 9}, 422),
        ({**good, "type": "alien-landing"}, 422),
        ({**good, "location": {"type": "Point", "coordinates": [200.0, 30.48]}}, 422),
        ({**good, "location": {"type": "Point", "coordinates": [116.40, 39.90]}}, 422),
        ({**good, "required_capabilities": ["laser"]}, 422),
        ({**good, "on_scene_seconds": -5}, 422),
    ]
    async with httpx.AsyncClient(timeout=5.0) as client:
        for body, status in cases:
            if isinstance(body, bytes):
                r = await client.post(
                    url, content=body, headers={**fire, "Content-Type": "application/json"}
                )
            else:
                r = await client.post(url, json=body, headers=fire)
            assert r.status_code == status, (body, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["status"] == status and r.json()["detail"]
        assert (await client.post(url, json=good)).status_code == 401
        operator = {"Authorization": f"Bearer {stack.operator_key}"}
        assert (await client.post(url, json=good, headers=operator)).status_code == 403
        huge = b'{"description": "' + b"x" * 2_000_000 + b'"}'
        r = await client.post(
            url, content=huge, headers={**fire, "Content-Type": "application/json"}
        )
        assert r.status_code == 413
