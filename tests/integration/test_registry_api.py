"""Registry REST on the real PostgreSQL and broker: seed, CRUD, ETags, bad input, credentials,
audit, and the role x endpoint matrix (SPEC §6)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from airgrid.auth import Role, issue_credential
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.reference import load_reference
from services.registry.app import build_app

pytestmark = pytest.mark.integration

GATEWAY_NEST = "nest-01"
# caller -> (role, department, nest)
CALLERS: dict[str, tuple[Role, str | None, str | None]] = {
    "admin": (Role.ADMIN, None, None),
    "operator": (Role.OPERATOR, None, None),
    "fire": (Role.DEPARTMENT, "fire", None),
    "police": (Role.DEPARTMENT, "police", None),
    "gateway": (Role.GATEWAY, None, GATEWAY_NEST),
}


@dataclass
class Registry:
    settings: Settings
    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str]

    def auth(self, caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[caller]}"}


async def issue_keys(settings: Settings) -> dict[str, str]:
    engine = create_engine(settings)
    keys: dict[str, str] = {}
    try:
        async with session_factory(engine)() as session, session.begin():
            for caller, (role, department, nest) in CALLERS.items():
                _, keys[caller] = issue_credential(
                    session, role=role, department=department, nest_id=nest, label=caller
                )
    finally:
        await engine.dispose()
    return keys


@asynccontextmanager
async def running_registry(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://registry", timeout=30.0
        ) as client:
            yield app, client


@pytest.fixture(scope="module")
async def registry(settings: Settings) -> AsyncIterator[Registry]:
    s = settings.model_copy(update={"topic_prefix": f"r{uuid.uuid4().hex[:8]}."})
    await ensure_topics(s)
    async with running_registry(s) as (app, client):
        keys = await issue_keys(s)
        yield Registry(s, app, client, keys)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# Inside the reference zone (the registry refuses positions outside it), west of the incidents.
IN_ZONE = (114.35, 30.45)


def nest_body(
    nest_id: str, slots: int = 2, lon: float = IN_ZONE[0], lat: float = IN_ZONE[1]
) -> dict[str, Any]:
    # Test nests are offline and their drones in maintenance, so no dispatch ever uses them.
    return {
        "id": nest_id,
        "name": f"test {nest_id}",
        "location": {"type": "Point", "coordinates": [lon, lat]},
        "charging_slots": slots,
        "status": "offline",
        "wind_hold_mps": 11.0,
    }


def drone_body(drone_id: str, nest_id: str) -> dict[str, Any]:
    return {
        "id": drone_id,
        "model": "M30T",
        "home_nest": nest_id,
        "capabilities": ["visual", "thermal"],
        "cruise_speed_mps": 15.0,
        "max_speed_mps": 23.0,
        "endurance_s": 2400.0,
        "battery_wh": 548.0,
        "status": "maintenance",
    }


def square(
    lon: float = IN_ZONE[0], lat: float = IN_ZONE[1], size: float = 0.01
) -> list[list[float]]:
    return [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]


def geofence_body(fence_id: str, ring: list[list[float]] | None = None) -> dict[str, Any]:
    return {
        "id": fence_id,
        "name": f"test {fence_id}",
        "kind": "temporary",
        "geometry": {"type": "Polygon", "coordinates": [ring or square()]},
        "active_from": "2026-05-01T08:00:00Z",
        "active_until": "2026-05-01T18:00:00Z",
    }


def assert_problem(r: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    text = f"{body.get('title', '')} {body.get('detail', '')} {body.get('errors', '')}".lower()
    for word in words:
        assert word.lower() in text, (word, body)
    return body


# -- seed ------------------------------------------------------------------------------------


async def test_seeded_registry_shows_11_departments_186_drones_and_the_nests(
    registry: Registry,
) -> None:
    reference = load_reference(registry.settings.reference_data)
    auth = registry.auth("operator")
    departments = (await registry.client.get("/v1/departments", headers=auth)).json()
    assert departments["total"] == 11
    assert {d["code"] for d in departments["items"]} == {d.code for d in reference.departments}
    fire = next(d for d in departments["items"] if d["code"] == "fire")
    assert fire["name_zh"] == "消防救援" and fire["contact"]

    drone_ids: set[str] = set()
    for offset in (0, 100, 200):
        page = await registry.client.get(
            "/v1/drones", params={"limit": 100, "offset": offset}, headers=auth
        )
        drone_ids |= {d["id"] for d in page.json()["items"]}
    assert {d.id for d in reference.drones} <= drone_ids
    assert len(reference.drones) == 186

    nests = (await registry.client.get("/v1/nests", params={"limit": 500}, headers=auth)).json()
    assert {n.id for n in reference.nests} <= {n["id"] for n in nests["items"]}
    assert nests["total"] >= len(reference.nests) > 0
    print(f"\nseeded registry: 11 departments, {len(drone_ids)} drones, {nests['total']} nests")


async def test_lists_filter_and_paginate(registry: Registry) -> None:
    auth = registry.auth("operator")
    thermal = (
        await registry.client.get("/v1/drones", params={"capability": "thermal"}, headers=auth)
    ).json()
    assert thermal["items"] and all("thermal" in d["capabilities"] for d in thermal["items"])
    at_nest = (
        await registry.client.get("/v1/drones", params={"nest": GATEWAY_NEST}, headers=auth)
    ).json()
    assert at_nest["items"] and {d["home_nest"] for d in at_nest["items"]} == {GATEWAY_NEST}
    first = (await registry.client.get("/v1/drones", params={"limit": 5}, headers=auth)).json()
    second = (
        await registry.client.get("/v1/drones", params={"limit": 5, "offset": 5}, headers=auth)
    ).json()
    assert len(first["items"]) == 5 and first["total"] == second["total"]
    assert not {d["id"] for d in first["items"]} & {d["id"] for d in second["items"]}
    no_fly = (
        await registry.client.get("/v1/geofences", params={"kind": "no-fly"}, headers=auth)
    ).json()
    assert no_fly["items"] and {g["kind"] for g in no_fly["items"]} == {"no-fly"}


# -- CRUD, ETag -------------------------------------------------------------------------------


async def test_admin_crud_on_nests_drones_geofences_and_departments(registry: Registry) -> None:
    c, admin = registry.client, registry.auth("admin")
    nest_id, drone_id, fence_id, code = (
        unique("tn"),
        unique("td"),
        unique("tg"),
        "t" + uuid.uuid4().hex[:8],
    )

    r = await c.post("/v1/nests", json=nest_body(nest_id), headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.headers["etag"] == '"1"'
    r = await c.post("/v1/drones", json=drone_body(drone_id, nest_id), headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["battery_wh"] == 548.0
    r = await c.post("/v1/geofences", json=geofence_body(fence_id), headers=admin)
    assert r.status_code == 201, r.text
    department = {
        "code": code,
        "name_en": "Test bureau",
        "name_zh": "测试局",
        "contact": "duty@test.example",
        "feed_preferences": {"events": ["incident", "alert"], "transport": "kafka"},
    }
    r = await c.post("/v1/departments", json=department, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["feed_preferences"]["events"] == ["incident", "alert"]

    for path in (
        f"/v1/nests/{nest_id}",
        f"/v1/drones/{drone_id}",
        f"/v1/geofences/{fence_id}",
        f"/v1/departments/{code}",
    ):
        r = await c.get(path, headers=admin)
        assert r.status_code == 200, r.text
        assert r.headers["etag"] == '"1"'

    r = await c.patch(
        f"/v1/nests/{nest_id}", json={"wind_mps": 14.5}, headers={**admin, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert r.json()["wind_mps"] == 14.5 and r.json()["version"] == 2
    assert r.headers["etag"] == '"2"'
    r = await c.patch(
        f"/v1/drones/{drone_id}",
        json={"status": "active", "capabilities": ["zoom", "visual"]},
        headers={**admin, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["capabilities"] == ["visual", "zoom"]
    r = await c.patch(
        f"/v1/geofences/{fence_id}",
        json={"geometry": {"type": "Polygon", "coordinates": [square(size=0.02)]}},
        headers={**admin, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    r = await c.patch(
        f"/v1/departments/{code}",
        json={"contact": "new@test.example"},
        headers={**admin, "If-Match": '"1"'},
    )
    assert r.status_code == 200 and r.json()["contact"] == "new@test.example", r.text

    # Deletes, children first: a nest with drones refuses.
    r = await c.delete(f"/v1/nests/{nest_id}", headers={**admin, "If-Match": '"2"'})
    assert_problem(r, 409, "drones")
    for path in (
        f"/v1/drones/{drone_id}",
        f"/v1/nests/{nest_id}",
        f"/v1/geofences/{fence_id}",
        f"/v1/departments/{code}",
    ):
        r = await c.delete(path, headers={**admin, "If-Match": '"2"'})
        assert r.status_code == 204, (path, r.text)
        assert (await c.get(path, headers=admin)).status_code == 404


async def test_stale_if_match_gets_412_and_missing_gets_428(registry: Registry) -> None:
    c, admin = registry.client, registry.auth("admin")
    nest_id = unique("tn")
    assert (await c.post("/v1/nests", json=nest_body(nest_id), headers=admin)).status_code == 201
    first = await c.patch(
        f"/v1/nests/{nest_id}", json={"wind_mps": 3.0}, headers={**admin, "If-Match": '"1"'}
    )
    assert first.status_code == 200
    stale = await c.patch(
        f"/v1/nests/{nest_id}", json={"wind_mps": 9.0}, headers={**admin, "If-Match": '"1"'}
    )
    body = assert_problem(stale, 412, "changed since you read it")
    assert body["current_etag"] == '"2"'
    assert_problem(
        await c.patch(f"/v1/nests/{nest_id}", json={"wind_mps": 9.0}, headers=admin),
        428,
        "If-Match",
    )
    assert_problem(
        await c.delete(f"/v1/nests/{nest_id}", headers={**admin, "If-Match": '"1"'}), 412
    )
    current = await c.get(f"/v1/nests/{nest_id}", headers=admin)
    assert current.json()["wind_mps"] == 3.0
    r = await c.delete(
        f"/v1/nests/{nest_id}", headers={**admin, "If-Match": current.headers["etag"]}
    )
    assert r.status_code == 204


# -- bad input ----------------------------------------------------------------------------------


async def test_bad_input_gets_a_4xx_problem_naming_it(registry: Registry) -> None:
    c, admin = registry.client, registry.auth("admin")
    bowtie = [[10.0, 10.0], [10.01, 10.01], [10.01, 10.0], [10.0, 10.01], [10.0, 10.0]]
    open_ring = square()[:-1]
    assert_problem(
        await c.post("/v1/geofences", json=geofence_body(unique("tg"), bowtie), headers=admin),
        422,
        "self-intersecting",
    )
    assert_problem(
        await c.post("/v1/geofences", json=geofence_body(unique("tg"), open_ring), headers=admin),
        422,
        "open",
    )
    out_of_range = [[190.0, 10.0], [10.01, 10.0], [10.01, 10.01], [190.0, 10.0]]
    assert_problem(
        await c.post(
            "/v1/geofences", json=geofence_body(unique("tg"), out_of_range), headers=admin
        ),
        422,
        "longitude",
    )
    assert_problem(
        await c.post("/v1/nests", json=nest_body(unique("tn"), lat=95.0), headers=admin),
        422,
        "latitude",
    )
    naive = {**geofence_body(unique("tg")), "active_from": "2026-05-01T08:00:00"}
    assert_problem(await c.post("/v1/geofences", json=naive, headers=admin), 422, "offset")
    too_slow = {**drone_body(unique("td"), GATEWAY_NEST), "max_speed_mps": 5.0}
    assert_problem(await c.post("/v1/drones", json=too_slow, headers=admin), 422, "max_speed")
    assert_problem(
        await c.post("/v1/drones", json=drone_body(unique("td"), "nest-none"), headers=admin),
        422,
        "unknown nest",
    )

    # A full nest: one slot, one drone.
    nest_id = unique("tn")
    assert (
        await c.post("/v1/nests", json=nest_body(nest_id, slots=1), headers=admin)
    ).status_code == 201
    first = drone_body(unique("td"), nest_id)
    assert (await c.post("/v1/drones", json=first, headers=admin)).status_code == 201
    assert_problem(
        await c.post("/v1/drones", json=drone_body(unique("td"), nest_id), headers=admin),
        409,
        "full",
    )
    # Duplicate ids.
    assert_problem(await c.post("/v1/drones", json=first, headers=admin), 409, "already exists")
    assert_problem(
        await c.post("/v1/nests", json=nest_body(nest_id), headers=admin), 409, "already exists"
    )
    # Oversized and malformed bodies.
    huge = {**geofence_body(unique("tg")), "name": "x" * (registry.settings.max_body_bytes + 10)}
    assert_problem(await c.post("/v1/geofences", json=huge, headers=admin), 413)
    r = await c.post(
        "/v1/nests", content=b"{not json", headers={**admin, "content-type": "application/json"}
    )
    assert_problem(r, 400)
    # NUL characters, which no database text holds.
    assert_problem(
        await c.post(
            "/v1/nests", json={**nest_body(unique("tn")), "name": "a\x00b"}, headers=admin
        ),
        422,
        "NUL",
    )
    assert_problem(await c.get("/v1/drones/a%00b", headers=admin), 422, "NUL")
    # Null for a required field in an update.
    etag = (await c.get(f"/v1/nests/{nest_id}", headers=admin)).headers["etag"]
    assert_problem(
        await c.patch(
            f"/v1/nests/{nest_id}", json={"name": None}, headers={**admin, "If-Match": etag}
        ),
        422,
        "cannot be null",
    )
    r = await c.delete(f"/v1/drones/{first['id']}", headers={**admin, "If-Match": '"1"'})
    assert r.status_code == 204
    r = await c.delete(f"/v1/nests/{nest_id}", headers={**admin, "If-Match": etag})
    assert r.status_code == 204


async def test_positions_outside_the_zone_get_a_422_naming_the_field(registry: Registry) -> None:
    c, admin = registry.client, registry.auth("admin")
    far_nest = nest_body(unique("tn"), lon=10.0, lat=10.0)
    body = assert_problem(await c.post("/v1/nests", json=far_nest, headers=admin), 422, "zone")
    assert body["errors"] == [{"field": "location", "message": "outside the zone"}]
    assert (await c.get(f"/v1/nests/{far_nest['id']}", headers=admin)).status_code == 404

    far_fence = geofence_body(unique("tg"), square(10.0, 10.0))
    body = assert_problem(await c.post("/v1/geofences", json=far_fence, headers=admin), 422, "zone")
    assert body["errors"] == [{"field": "geometry", "message": "outside the zone"}]
    # One vertex in the zone does not let the others stretch across the world.
    stretched = [[*IN_ZONE], [IN_ZONE[0] + 0.01, IN_ZONE[1]], [10.0, 10.0], [*IN_ZONE]]
    r = await c.post("/v1/geofences", json=geofence_body(unique("tg"), stretched), headers=admin)
    assert_problem(r, 422, "geometry")

    # Moving a nest out of the zone is refused too, and leaves it where it was.
    nest_id = unique("tn")
    assert (await c.post("/v1/nests", json=nest_body(nest_id), headers=admin)).status_code == 201
    moved = {"location": {"type": "Point", "coordinates": [10.0, 10.0]}}
    r = await c.patch(f"/v1/nests/{nest_id}", json=moved, headers={**admin, "If-Match": '"1"'})
    assert_problem(r, 422, "location")
    r = await c.get(f"/v1/nests/{nest_id}", headers=admin)
    assert r.json()["location"]["coordinates"] == list(IN_ZONE) and r.headers["etag"] == '"1"'
    r = await c.delete(f"/v1/nests/{nest_id}", headers={**admin, "If-Match": '"1"'})
    assert r.status_code == 204


# -- credentials and audit --------------------------------------------------------------------


async def test_credentials_issue_revoke_and_rotate(registry: Registry) -> None:
    c, admin = registry.client, registry.auth("admin")
    r = await c.post(
        "/v1/credentials", json={"role": "department", "department": "water"}, headers=admin
    )
    assert r.status_code == 201, r.text
    issued = r.json()
    key, key_id = issued["key"], issued["id"]
    water = {"Authorization": f"Bearer {key}"}
    assert (await c.get("/v1/nests", headers=water)).status_code == 200  # now cached
    listed = (await c.get("/v1/credentials", params={"department": "water"}, headers=admin)).json()
    assert key_id in {i["id"] for i in listed["items"]}
    assert key not in str(listed) and "hash" not in str(listed)

    assert (await c.delete(f"/v1/credentials/{key_id}", headers=admin)).status_code == 204
    assert_problem(await c.get("/v1/nests", headers=water), 401, "revoked")

    r = await c.post("/v1/credentials", json={"role": "operator"}, headers=admin)
    old_key, old_id = r.json()["key"], r.json()["id"]
    old = {"Authorization": f"Bearer {old_key}"}
    assert (await c.get("/v1/drones", headers=old)).status_code == 200
    r = await c.post(f"/v1/credentials/{old_id}/rotate", json={}, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["replaces"] == old_id and r.json()["role"] == "operator"
    new = {"Authorization": f"Bearer {r.json()['key']}"}
    assert (await c.get("/v1/drones", headers=new)).status_code == 200
    assert_problem(await c.get("/v1/drones", headers=old), 401)
    assert_problem(await c.post(f"/v1/credentials/{old_id}/rotate", json={}, headers=admin), 409)

    # With a grace period the old key keeps working until it expires.
    graced = r.json()["id"]
    r = await c.post(
        f"/v1/credentials/{graced}/rotate", json={"grace_seconds": 3600}, headers=admin
    )
    assert r.status_code == 201
    assert (await c.get("/v1/drones", headers=new)).status_code == 200
    state = (await c.get(f"/v1/credentials/{graced}", headers=admin)).json()
    assert state["expires_at"] is not None and state["revoked_at"] is None

    assert_problem(
        await c.post(
            "/v1/credentials", json={"role": "department", "department": "nope"}, headers=admin
        ),
        422,
        "department",
    )
    body = assert_problem(
        await c.post("/v1/credentials", json={"role": "gateway"}, headers=admin), 422, "nest"
    )
    assert body["errors"] == [{"field": "nest_id", "message": "unknown nest"}]


async def test_audit_log_records_who_what_when_before_and_after(registry: Registry) -> None:
    c, admin = registry.client, registry.auth("admin")
    nest_id = unique("tn")
    await c.post("/v1/nests", json=nest_body(nest_id), headers=admin)
    await c.patch(
        f"/v1/nests/{nest_id}", json={"status": "maintenance"}, headers={**admin, "If-Match": '"1"'}
    )
    await c.delete(f"/v1/nests/{nest_id}", headers={**admin, "If-Match": '"2"'})
    log = (
        await c.get(
            "/v1/audit",
            params={"entity_kind": "nest", "entity_id": nest_id},
            headers=registry.auth("operator"),
        )
    ).json()
    actions = [e["action"] for e in log["items"]]
    assert actions == ["delete", "update", "create"], log
    delete, update, create = log["items"]
    admin_id = registry.keys["admin"].split("_")[1]
    assert {e["actor"] for e in log["items"]} == {admin_id}
    assert {e["actor_role"] for e in log["items"]} == {"admin"}
    assert create["before"] is None and create["after"]["status"] == "offline"
    assert update["before"]["status"] == "offline" and update["after"]["status"] == "maintenance"
    assert update["after"]["version"] == 2
    assert delete["before"]["version"] == 2 and delete["after"] is None
    assert create["at"] <= update["at"] <= delete["at"]
    seeded = (await c.get("/v1/audit", params={"actor": "seed", "limit": 1}, headers=admin)).json()
    assert seeded["total"] >= 11 + 54 + 186


# -- access -------------------------------------------------------------------------------------


async def test_scopes_department_and_gateway_see_what_concerns_them(registry: Registry) -> None:
    c = registry.client
    fire = (await c.get("/v1/departments", headers=registry.auth("fire"))).json()
    assert [d["code"] for d in fire["items"]] == ["fire"]
    assert (await c.get("/v1/departments/police", headers=registry.auth("fire"))).status_code == 404
    gateway = registry.auth("gateway")
    drones = (await c.get("/v1/drones", params={"limit": 500}, headers=gateway)).json()
    assert drones["items"] and {d["home_nest"] for d in drones["items"]} == {GATEWAY_NEST}
    nests = (await c.get("/v1/nests", headers=gateway)).json()
    assert [n["id"] for n in nests["items"]] == [GATEWAY_NEST]
    assert (await c.get("/v1/nests/nest-02", headers=gateway)).status_code == 404
    other = next(
        d
        for d in load_reference(registry.settings.reference_data).drones
        if d.home_nest != GATEWAY_NEST
    )
    assert (await c.get(f"/v1/drones/{other.id}", headers=gateway)).status_code == 404
    assert (await c.get("/v1/departments", headers=gateway)).json()["items"] == []


EVERY_ROLE = frozenset(CALLERS)
OVERSEERS = frozenset({"admin", "operator"})
ADMIN = frozenset({"admin"})
# (method, path) -> callers allowed past the role check (others: 403).
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/v1/departments"): EVERY_ROLE,
    ("GET", "/v1/departments/fire"): EVERY_ROLE,
    ("POST", "/v1/departments"): ADMIN,
    ("PATCH", "/v1/departments/fire"): ADMIN,
    ("DELETE", "/v1/departments/fire"): ADMIN,
    ("GET", "/v1/nests"): EVERY_ROLE,
    ("GET", f"/v1/nests/{GATEWAY_NEST}"): EVERY_ROLE,
    ("POST", "/v1/nests"): ADMIN,
    ("PATCH", f"/v1/nests/{GATEWAY_NEST}"): ADMIN,
    ("DELETE", f"/v1/nests/{GATEWAY_NEST}"): ADMIN,
    ("GET", "/v1/drones"): EVERY_ROLE,
    ("GET", "/v1/drones/drone-001"): EVERY_ROLE,
    ("POST", "/v1/drones"): ADMIN,
    ("PATCH", "/v1/drones/drone-001"): ADMIN,
    ("DELETE", "/v1/drones/drone-001"): ADMIN,
    ("GET", "/v1/geofences"): EVERY_ROLE,
    ("GET", "/v1/geofences/nfz-none"): EVERY_ROLE,
    ("POST", "/v1/geofences"): ADMIN,
    ("PATCH", "/v1/geofences/nfz-none"): ADMIN,
    ("DELETE", "/v1/geofences/nfz-none"): ADMIN,
    ("POST", "/v1/credentials"): ADMIN,
    ("GET", "/v1/credentials"): OVERSEERS,
    ("GET", "/v1/credentials/none"): OVERSEERS,
    ("POST", "/v1/credentials/none/rotate"): ADMIN,
    ("DELETE", "/v1/credentials/none"): ADMIN,
    ("GET", "/v1/audit"): OVERSEERS,
    ("GET", "/v1/snapshot"): OVERSEERS,
    ("GET", "/v1/inspection-plans"): EVERY_ROLE,
    ("GET", "/v1/inspection-plans/zone-baseline"): EVERY_ROLE,
    ("POST", "/v1/inspection-plans"): ADMIN,
    ("PATCH", "/v1/inspection-plans/zone-baseline"): ADMIN,
    ("DELETE", "/v1/inspection-plans/zone-baseline"): ADMIN,
    ("GET", "/v1/inspection/scenarios"): EVERY_ROLE,
    ("GET", "/v1/inspection/scenarios/smoke"): EVERY_ROLE,
    ("POST", "/v1/inspection/scenarios"): ADMIN,
    ("PATCH", "/v1/inspection/scenarios/smoke"): ADMIN,
    ("DELETE", "/v1/inspection/scenarios/smoke"): ADMIN,
}


def test_matrix_covers_every_registry_route() -> None:
    app = build_app(Settings())
    paths = app.openapi()["paths"]
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops if p.startswith("/v1/")}
    covered = set()
    for method, path in MATRIX:
        for m, p in documented:
            pattern = p.split("{")[0]
            if m == method and path.startswith(pattern) and path.count("/") == p.count("/"):
                covered.add((m, p))
    assert documented == covered, documented - covered


@pytest.mark.parametrize("caller", [*CALLERS, "nobody", "forged"])
@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
async def test_role_endpoint_matrix(
    registry: Registry, method: str, path: str, caller: str
) -> None:
    if caller == "nobody":
        headers: dict[str, str] = {}
    elif caller == "forged":
        headers = {"Authorization": "Bearer ag_0123456789abcdef_" + "x" * 43}
    else:
        headers = registry.auth(caller)
    # Writes carry an empty body (422 once past the role check) or a stale If-Match (412):
    # the matrix never changes the registry.
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PATCH"):
        kwargs["json"] = {"grace_seconds": -1} if path.endswith("/rotate") else {"bogus": 1}
    if method in ("PATCH", "DELETE"):
        headers = {**headers, "If-Match": '"999999"'}
    r = await registry.client.request(method, path, headers=headers, **kwargs)
    where = f"{caller} {method} {path}: {r.status_code} {r.text[:200]}"
    if caller in ("nobody", "forged"):
        assert r.status_code == 401, where
        assert r.headers["www-authenticate"].startswith("Bearer"), where
    elif caller in MATRIX[(method, path)]:
        assert r.status_code in (200, 404, 412, 422), where
    else:
        assert r.status_code == 403, where
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), where
