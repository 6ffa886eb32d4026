"""Registry REST on the real PostgreSQL and broker: seed, lists, CRUD, ETags and bad input.
Credentials, audit and the role x endpoint matrix are in test_registry_access.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from airgrid.config import Settings
from airgrid.reference import load_reference
from tests.integration.registry_rig import (
    GATEWAY_NEST,
    IN_ZONE,
    Registry,
    assert_problem,
    drone_body,
    geofence_body,
    nest_body,
    registry_of_its_own,
    square,
    unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def registry(settings: Settings) -> AsyncIterator[Registry]:
    async with registry_of_its_own(settings, "r") as running:
        yield running


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
