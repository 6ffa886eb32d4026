"""Dispatch API edges on the real PostgreSQL and broker: bad input answers 4xx problem+json,
Idempotency-Key retries replay the first result, filters, the incident view, cancel rules."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from airgrid.auth import Role
from airgrid.bus import Producer, ensure_topics
from airgrid.config import Settings
from airgrid.reference import load_reference
from airgrid.topics import REGISTRY_CHANGES
from airgrid.v1 import registry_pb2
from services.dispatch.app import build_app
from tests.builders import incident_body
from tests.eventually import eventually
from tests.integration.test_dispatch_flow import FLEET, SCENE, credential, publish_fleet

pytestmark = pytest.mark.integration

REFERENCE = load_reference()
NO_FLY = next(g for g in REFERENCE.geofences if g.kind == "no-fly")
NO_FLY_INSIDE = [
    sum(p[0] for p in NO_FLY.ring[:-1]) / (len(NO_FLY.ring) - 1),
    sum(p[1] for p in NO_FLY.ring[:-1]) / (len(NO_FLY.ring) - 1),
]
# A capability the reference fleet has, but none of the two drones this test registers.
MISSING_HERE = sorted({c for d in REFERENCE.drones for c in d.capabilities} - {
    c for d in FLEET for c in d.capabilities
})[0]  # fmt: skip
PROBLEM = "application/problem+json"


class Api:
    def __init__(self, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    def auth(self, who: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def post(self, who: str, payload: Any, key: str | None = None) -> httpx.Response:
        return await self.client.post("/v1/incidents", json=payload, headers=self.auth(who, key))


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    s = settings.model_copy(update={"topic_prefix": f"a{uuid.uuid4().hex[:8]}."})
    await ensure_topics(s)
    await publish_fleet(s)
    await publish_no_fly_zone(s)
    keys = {
        "fire": await credential(s, Role.DEPARTMENT, "fire"),
        "police": await credential(s, Role.DEPARTMENT, "police"),
        "operator": await credential(s, Role.OPERATOR),
    }
    app = build_app(s)
    async with app.router.lifespan_context(app):
        # Validation reads the live registry view once it has caught up (the two drones).
        await asyncio.wait_for(app.state.worker.registry_view.caught_up.wait(), timeout=60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dispatch") as client:
            yield Api(client, keys)


async def publish_no_fly_zone(settings: Settings) -> None:
    producer = Producer(settings, source="tests")
    await producer.start()
    try:
        fence = registry_pb2.Geofence(
            id=NO_FLY.id, name=NO_FLY.name, kind=NO_FLY.kind,
            ring_lon=[p[0] for p in NO_FLY.ring], ring_lat=[p[1] for p in NO_FLY.ring],
        )  # fmt: skip
        change = registry_pb2.RegistryChange(entity_id=NO_FLY.id, geofence=fence)
        await producer.send(
            REGISTRY_CHANGES, change.SerializeToString(), key=NO_FLY.id, ce_type="test"
        )
        await producer.flush()
    finally:
        await producer.stop()


def incident(**overrides: Any) -> dict[str, Any]:
    """A thermal job at SCENE, five minutes on scene, with a description of its own."""
    return incident_body(
        **{
            "location": {"type": "Point", "coordinates": SCENE},
            "required_capabilities": ["thermal"],
            "on_scene_seconds": 300,
            "description": f"api edge {uuid.uuid4().hex[:8]}",
            **overrides,
        }
    )


BAD_INPUT: dict[str, tuple[dict[str, Any], int, str]] = {
    "unknown type": ({"type": "alien_landing"}, 422, "type"),
    "priority 0": ({"priority": 0}, 422, "priority"),
    "priority 5": ({"priority": 5}, 422, "priority"),
    "outside the zone": (
        {"location": {"type": "Point", "coordinates": [121.47, 31.23]}},
        422,
        "location",
    ),
    "inside a no-fly zone": (
        {"location": {"type": "Point", "coordinates": NO_FLY_INSIDE}},
        422,
        "location",
    ),
    "unknown capability": ({"required_capabilities": ["laser"]}, 422, "required_capabilities"),
    "capability no drone has": (
        {"required_capabilities": [MISSING_HERE]},
        422,
        "required_capabilities",
    ),
    "more drones than can serve": (
        {"required_capabilities": ["thermal"], "drones_needed": 3},
        422,
        "drones_needed",
    ),
    "zero time on scene": ({"on_scene_seconds": 0}, 422, "on_scene_seconds"),
    "negative time on scene": ({"on_scene_seconds": -30}, 422, "on_scene_seconds"),
    "zero drones": ({"drones_needed": 0}, 422, "drones_needed"),
    "open polygon": (
        {"location": {"type": "Polygon", "coordinates": [[SCENE, SCENE, SCENE, [0, 0]]]}},
        422,
        "location",
    ),
    "latitude out of range": (
        {"location": {"type": "Point", "coordinates": [114.4, 95.0]}},
        422,
        "location",
    ),
    "unknown field": ({"urgency": "high"}, 422, "urgency"),
}


async def test_bad_incidents_answer_4xx_problems_that_name_the_field(api: Api) -> None:
    for case, (override, status, field) in BAD_INPUT.items():
        r = await api.post("fire", incident(**override))
        assert r.status_code == status, f"{case}: {r.status_code} {r.text}"
        assert r.headers["content-type"] == PROBLEM, case
        problem = r.json()
        assert problem["status"] == status and problem["detail"], case
        assert field in r.text, f"{case}: the problem does not name {field}: {r.text}"
    not_json = await api.client.post(
        "/v1/incidents",
        content=b"{not json",
        headers={**api.auth("fire"), "Content-Type": "application/json"},
    )
    assert 400 <= not_json.status_code < 500 and not_json.headers["content-type"] == PROBLEM
    refused = await api.client.get("/v1/incidents", headers=api.auth("fire"))
    described = {i["description"] for i in refused.json()["items"]}
    assert not any(d.startswith("api edge") for d in described), "a bad incident was stored"


async def test_a_retry_with_the_same_key_gets_the_first_result(api: Api) -> None:
    key = f"retry-{uuid.uuid4().hex}"
    payload = incident()
    first = await api.post("fire", payload, key)
    assert first.status_code == 201, first.text
    # The same request serialised differently is still the same request.
    reordered = orjson.dumps(dict(reversed(list(payload.items()))))
    again = await api.client.post(
        "/v1/incidents",
        content=reordered,
        headers={**api.auth("fire", key), "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    changed = await api.post("fire", {**payload, "priority": 1}, key)
    assert changed.status_code == 422 and changed.headers["content-type"] == PROBLEM
    assert changed.json()["type"].endswith("idempotency-key-reused")
    listed = await api.client.get("/v1/incidents", params={"limit": 500}, headers=api.auth("fire"))
    same = [i for i in listed.json()["items"] if i["description"] == payload["description"]]
    assert [i["id"] for i in same] == [first.json()["id"]]


async def test_concurrent_retries_make_one_incident(api: Api) -> None:
    key = f"burst-{uuid.uuid4().hex}"
    payload = incident(priority=4)
    answers = await asyncio.gather(*(api.post("fire", payload, key) for _ in range(8)))
    assert {r.status_code for r in answers} <= {201, 409}
    ids = {r.json()["id"] for r in answers if r.status_code == 201}
    assert len(ids) == 1
    late = await api.post("fire", payload, key)
    assert late.status_code == 201 and late.json()["id"] in ids
    listed = await api.client.get("/v1/incidents", params={"limit": 500}, headers=api.auth("fire"))
    items = listed.json()["items"]
    assert [i["id"] for i in items if i["description"] == payload["description"]] == list(ids)


async def test_incident_view_filters_and_missions(api: Api) -> None:
    # Free the two drones that earlier tests' incidents hold.
    for status in ("accepted", "queued", "assigned"):
        r = await api.client.get(
            "/v1/incidents", params={"status": status}, headers=api.auth("fire")
        )
        for item in r.json()["items"]:
            await api.client.post(f"/v1/incidents/{item['id']}/cancel", headers=api.auth("fire"))
    created = await api.post("fire", incident(type="smoke", priority=3))
    incident_id = created.json()["id"]

    async def decided() -> dict[str, Any] | None:
        r = await api.client.get(f"/v1/incidents/{incident_id}", headers=api.auth("fire"))
        data: dict[str, Any] = r.json()
        return data if data["status"] in ("assigned", "queued") else None

    view = await eventually(decided, 20, f"a decision for {incident_id}")
    assert view["timeline"][0]["stage"] == "accepted"
    if view["status"] == "queued":
        assert view["status_reason"]
    else:
        assert [s["stage"] for s in view["timeline"]] == ["accepted", "assigned"]
        [mission] = view["missions"]
        missions = await api.client.get(
            "/v1/missions", params={"incident_id": incident_id}, headers=api.auth("fire")
        )
        assert [m["drone_id"] for m in missions.json()["items"]] == [mission["drone_id"]]
        assigned = await api.client.get(
            "/v1/missions", params={"stage": "assigned"}, headers=api.auth("operator")
        )
        assert mission["mission_id"] in {m["id"] for m in assigned.json()["items"]}

    async def listed(**params: Any) -> set[str]:
        r = await api.client.get(
            "/v1/incidents", params={"limit": 500, **params}, headers=api.auth("operator")
        )
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    accepted_at = view["accepted_at"]
    assert incident_id in await listed(type="smoke", priority=3, department="fire")
    assert incident_id in await listed(status=view["status"], since=accepted_at)
    assert incident_id not in await listed(type="fire")
    assert incident_id not in await listed(department="police")
    assert incident_id not in await listed(until=accepted_at)
    for params in ({"status": "lost"}, {"department": "army"}, {"priority": 9}):
        r = await api.client.get("/v1/incidents", params=params, headers=api.auth("operator"))
        assert 400 <= r.status_code < 500 and r.headers["content-type"] == PROBLEM, params
    bad_stage = await api.client.get(
        "/v1/missions", params={"stage": "orbiting"}, headers=api.auth("operator")
    )
    assert bad_stage.status_code == 422 and bad_stage.headers["content-type"] == PROBLEM


async def test_only_the_reporting_department_cancels(api: Api) -> None:
    shared = (await api.post("fire", incident(priority=4, shared_with=["police"]))).json()
    private = (await api.post("fire", incident(priority=4))).json()
    by_sharer = await api.client.post(
        f"/v1/incidents/{shared['id']}/cancel", json={}, headers=api.auth("police")
    )
    assert by_sharer.status_code == 403 and by_sharer.headers["content-type"] == PROBLEM
    hidden = await api.client.post(
        f"/v1/incidents/{private['id']}/cancel", json={}, headers=api.auth("police")
    )
    assert hidden.status_code == 404 and hidden.headers["content-type"] == PROBLEM
    unknown = await api.client.post(
        "/v1/incidents/inc_doesnotexist/cancel", json={}, headers=api.auth("fire")
    )
    assert unknown.status_code == 404
    mine = await api.client.post(
        f"/v1/incidents/{private['id']}/cancel",
        json={"reason": "false alarm"},
        headers=api.auth("fire"),
    )
    assert mine.status_code == 200 and mine.json()["status"] == "cancelled"
    assert mine.json()["timeline"][-1]["stage"] == "cancelled"
    twice = await api.client.post(
        f"/v1/incidents/{private['id']}/cancel", json={}, headers=api.auth("fire")
    )
    assert twice.status_code == 409 and twice.headers["content-type"] == PROBLEM
    by_operator = await api.client.post(
        f"/v1/incidents/{shared['id']}/cancel", json={}, headers=api.auth("operator")
    )
    assert by_operator.status_code == 403
