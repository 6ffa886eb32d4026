"""Who may do what at the registry, on the real PostgreSQL and broker: credentials issued,
revoked and rotated, the audit log, what a department or a gateway sees, and the role x
endpoint matrix (SPEC §6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from airgrid.config import Settings
from airgrid.reference import load_reference
from services.registry.app import build_app
from tests.integration.registry_rig import (
    CALLERS,
    GATEWAY_NEST,
    Registry,
    assert_problem,
    nest_body,
    registry_of_its_own,
    unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def registry(settings: Settings) -> AsyncIterator[Registry]:
    async with registry_of_its_own(settings, "r") as running:
        yield running


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
