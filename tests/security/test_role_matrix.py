"""Role x endpoint matrix over all three services, driven from each app's route table.

Every /v1 route must refuse a caller without credentials (401) or with a forged key (401); the
roles SPEC §6 does not allow must get 403; the allowed ones must not be refused. The expected
refusals are one table below; a route missing from it fails the suite, so no endpoint ships
unclassified.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.builders import incident_body
from tests.security.conftest import CALLERS, SERVICES, Services

pytestmark = pytest.mark.integration

EVERYONE: frozenset[str] = frozenset()
NOT_ADMIN = frozenset({"operator", "fire", "police", "gateway"})

# (service, method, route path) -> callers that must be refused with 403.
# `fire` owns the path's department and the incident used; `police` is another department.
REFUSED: dict[tuple[str, str, str], frozenset[str]] = {
    ("telemetry", "GET", "/v1/drones/states"): EVERYONE,
    ("telemetry", "GET", "/v1/drones/{drone_id}/state"): EVERYONE,
    ("telemetry", "GET", "/v1/drones/{drone_id}/track"): frozenset({"gateway"}),
    ("telemetry", "GET", "/v1/feeds/{department}/stream"): frozenset({"police", "gateway"}),
    ("telemetry", "GET", "/v1/inspection/freshness"): EVERYONE,
    ("telemetry", "GET", "/v1/cases"): frozenset({"gateway"}),
    ("telemetry", "GET", "/v1/cases/{case_id}"): frozenset({"gateway"}),
    ("telemetry", "POST", "/v1/cases/{case_id}/transitions"): frozenset({"gateway"}),
    ("telemetry", "POST", "/v1/telemetry"): frozenset({"operator", "fire", "police"}),
    ("telemetry", "POST", "/v1/detections"): frozenset({"operator", "fire", "police"}),
    ("dispatch", "POST", "/v1/incidents"): frozenset({"admin", "operator", "gateway"}),
    ("dispatch", "GET", "/v1/incidents"): frozenset({"gateway"}),
    ("dispatch", "GET", "/v1/incidents/{incident_id}"): frozenset({"gateway"}),
    ("dispatch", "POST", "/v1/incidents/{incident_id}/cancel"): frozenset({"operator", "gateway"}),
    ("dispatch", "GET", "/v1/missions"): frozenset({"gateway"}),
    ("dispatch", "GET", "/v1/coverage"): EVERYONE,
}
# The registry by rule (SPEC §6: admin writes; operators read everything; departments and
# gateways read the zone, each scoped): its own detailed matrix lives with the registry tests.
REGISTRY_OVERSEER_READS = ("/v1/credentials", "/v1/audit", "/v1/snapshot")


def refused_callers(service: str, method: str, path: str) -> frozenset[str] | None:
    """Who must get 403 on this operation; None when the operation is not classified."""
    if service != "registry":
        return REFUSED.get((service, method, path))
    if method != "GET":
        return NOT_ADMIN
    if path.startswith(REGISTRY_OVERSEER_READS):
        return frozenset({"fire", "police", "gateway"})
    return EVERYONE


# (service, method, route path) -> callers of the right role but outside the resource's scope:
# they get 404, so that another department cannot even learn the incident exists.
HIDDEN: dict[tuple[str, str, str], frozenset[str]] = {
    ("dispatch", "GET", "/v1/incidents/{incident_id}"): frozenset({"police"}),
    ("dispatch", "POST", "/v1/incidents/{incident_id}/cancel"): frozenset({"police"}),
}

# Routes that never answer while the caller is allowed (Server-Sent Events streams).
STREAMING = {("telemetry", "GET", "/v1/feeds/{department}/stream")}


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, descending into included routers (FastAPI wraps them)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_api_routes(list(route.original_router.routes)))
        elif hasattr(route, "routes"):
            found.extend(_api_routes(list(route.routes)))
    return found


def routes(services: Services) -> list[tuple[str, str, str]]:
    """Every /v1 operation of the three apps: the route table and the OpenAPI paths."""
    found: set[tuple[str, str, str]] = set()
    for service in SERVICES:
        app = services.apps[service]
        for route in _api_routes(list(app.routes)):
            for method in (route.methods or set()) - {"HEAD", "OPTIONS"}:
                found.add((service, method, route.path))
        for path, operations in app.openapi()["paths"].items():
            for method in operations:
                found.add((service, method.upper(), path))
    return sorted(r for r in found if r[2].startswith("/v1/"))


def request_for(
    service: str, method: str, path: str, incident_id: str, drone_id: str, nest_id: str
) -> tuple[str, dict[str, Any]]:
    """A concrete URL and a schema-valid body, so only the role decides the answer."""
    if method in ("PATCH", "PUT", "DELETE") or (method == "POST" and path.endswith("/rotate")):
        # Never touch the shared reference data: writes aim at ids that do not exist.
        nest_id = drone_id = "matrix-none"
    url = (
        path.replace("{nest_id}", nest_id)
        .replace("{drone_id}", drone_id)
        .replace("{department}", "fire")
        .replace("{incident_id}", incident_id)
    )
    url = re.sub(r"\{[a-z_]+\}", "matrix-none", url)
    kwargs: dict[str, Any] = {}
    if (service, method, path) == ("registry", "POST", "/v1/credentials"):
        kwargs["json"] = {"role": "department", "department": "fire", "label": "matrix"}
    elif (service, method, path) == ("telemetry", "POST", "/v1/telemetry"):
        kwargs["json"] = {"records": []}
    elif (service, method, path) == ("dispatch", "POST", "/v1/incidents"):
        kwargs["json"] = incident_body(priority=3, description="role matrix probe")
    elif (service, method, path) == ("telemetry", "POST", "/v1/cases/{case_id}/transitions"):
        kwargs["json"] = {"action": "acknowledge"}
    elif method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    if path.endswith("/track"):
        kwargs["params"] = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T01:00:00Z"}
    return url, kwargs


@pytest.fixture(scope="module")
async def fire_incident(services: Services) -> str:
    r = await services.clients["dispatch"].post(
        "/v1/incidents",
        json=incident_body(priority=3, description="role matrix probe"),
        headers={**services.auth("fire"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    incident_id: str = r.json()["id"]
    return incident_id


async def test_every_route_is_in_the_matrix(services: Services) -> None:
    missing = [r for r in routes(services) if refused_callers(*r) is None]
    assert not missing, f"classify these routes in REFUSED (who gets 403): {missing}"


async def test_no_route_answers_without_valid_credentials(
    services: Services, fire_incident: str
) -> None:
    forged = "ag_0123456789abcdef_" + "x" * 43
    checked = 0
    for service, method, path in routes(services):
        url, kwargs = request_for(service, method, path, fire_incident, "D-NONE", "N-NONE")
        client = services.clients[service]
        for headers in ({}, {"Authorization": f"Bearer {forged}"}, {"Authorization": "Basic x"}):
            r = await client.request(method, url, headers=headers, **kwargs)
            assert r.status_code == 401, (service, method, url, headers, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert forged not in r.text
            checked += 1
    assert checked == 3 * len(routes(services))


async def test_wrong_roles_get_403_and_right_roles_get_through(
    services: Services, fire_incident: str
) -> None:
    from airgrid.reference import load_reference

    reference = load_reference(services.settings.reference_data)
    drone_id, nest_id = reference.drones[0].id, reference.nests[0].id
    for service, method, path in routes(services):
        refused = refused_callers(service, method, path)
        if refused is None:
            continue
        for caller in CALLERS:
            if caller not in refused and (service, method, path) in STREAMING:
                continue
            incident = fire_incident
            if path.endswith("/cancel") and caller in ("fire", "admin"):
                incident = await _new_fire_incident(services)
            url, kwargs = request_for(service, method, path, incident, drone_id, nest_id)
            headers = services.auth(caller)
            if (service, method, path) == ("dispatch", "POST", "/v1/incidents"):
                headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
            r = await services.clients[service].request(method, url, headers=headers, **kwargs)
            where = f"{caller} {method} {service}{url}: {r.status_code} {r.text[:300]}"
            if caller in refused:
                assert r.status_code == 403, where
                assert r.headers["content-type"].startswith("application/problem+json"), where
            elif caller in HIDDEN.get((service, method, path), EVERYONE):
                assert r.status_code == 404, where
            else:
                assert r.status_code not in (401, 403), where
                assert r.status_code < 500, where


async def _new_fire_incident(services: Services) -> str:
    r: httpx.Response = await services.clients["dispatch"].post(
        "/v1/incidents",
        json=incident_body(priority=3, description="role matrix probe"),
        headers={**services.auth("fire"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    incident_id: str = r.json()["id"]
    return incident_id
