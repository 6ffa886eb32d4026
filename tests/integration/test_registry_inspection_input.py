"""Bad inspection plans and scenarios on the real PostgreSQL and broker: every 422 names its
field, an update is checked like a create, and a department that owns plans cannot be
deleted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from airgrid.config import Settings
from tests.integration.registry_rig import (
    IN_ZONE,
    PLANS,
    SCENARIOS,
    Registry,
    area_body,
    assert_problem,
    corridor_body,
    registry_of_its_own,
    scenario_body,
    scenario_code,
    square,
    unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def registry(settings: Settings) -> AsyncIterator[Registry]:
    async with registry_of_its_own(settings, "ip") as running:
        yield running


# -- bad input: 422 naming the field -------------------------------------------------------

lon, lat = IN_ZONE
BOWTIE = [[lon, lat], [lon + 0.01, lat + 0.01], [lon + 0.01, lat], [lon, lat + 0.01], [lon, lat]]
PLAN_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "self-intersecting polygon": (
        {"geometry": {"type": "Polygon", "coordinates": [BOWTIE]}},
        "geometry",
    ),
    "three ring points": (
        {"geometry": {"type": "Polygon", "coordinates": [[*square()[:2], square()[0]]]}},
        "geometry",
    ),
    "unclosed ring": (
        {"geometry": {"type": "Polygon", "coordinates": [[*square()[:4], [lon, lat + 0.02]]]}},
        "geometry",
    ),
    "outside the zone": (
        {
            "geometry": {
                "type": "Polygon",
                "coordinates": [square(116.40, 39.90)],  # Beijing
            }
        },
        "geometry",
    ),
    "huge numbers": (
        {"geometry": {"type": "Polygon", "coordinates": [square(1e300, 1e300)]}},
        "geometry",
    ),
    "interval under 5 min": ({"revisit_interval_s": 299}, "revisit_interval_s"),
    "window that never opens": (
        {"active_windows": [{"start": "08:00", "end": "08:00"}]},
        "active_windows",
    ),
    "malformed window time": (
        {"active_windows": [{"start": "7am", "end": "09:00"}]},
        "active_windows",
    ),
    "unknown department": ({"department": "space-agency"}, "department"),
    "width on an area": ({"width_m": 50}, "width_m"),
}
CORRIDOR_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "corridor without width": ({"width_m": None}, "width_m"),
    "corridor width zero": ({"width_m": 0}, "width_m"),
    "corridor width negative": ({"width_m": -10}, "width_m"),
    "absurd corridor width": ({"width_m": 50_000}, "width_m"),
    "corridor width as a boolean": ({"width_m": True}, "width_m"),
    "one-point line": (
        {"geometry": {"type": "LineString", "coordinates": [[lon, lat]]}},
        "geometry",
    ),
    "line outside the zone": (
        {"geometry": {"type": "LineString", "coordinates": [[116.4, 39.9], [116.5, 39.9]]}},
        "geometry",
    ),
}


def assert_names_field(r: httpx.Response, field: str) -> None:
    body = assert_problem(r, 422)
    fields = [e["field"] for e in body.get("errors", [])]
    assert any(f == field or f.startswith(f"{field}.") for f in fields), (field, body)
    assert field in body["detail"], body


@pytest.mark.parametrize("case", sorted(PLAN_CASES))
async def test_a_bad_area_plan_is_a_422_naming_the_field(registry: Registry, case: str) -> None:
    change, field = PLAN_CASES[case]
    r = await registry.client.post(
        PLANS, json=area_body(unique("bad"), **change), headers=registry.auth("admin")
    )
    assert_names_field(r, field)


@pytest.mark.parametrize("case", sorted(CORRIDOR_CASES))
async def test_a_bad_corridor_is_a_422_naming_the_field(registry: Registry, case: str) -> None:
    change, field = CORRIDOR_CASES[case]
    body = corridor_body(unique("bad"), **change)
    if change.get("width_m", 1) is None:
        del body["width_m"]
    r = await registry.client.post(PLANS, json=body, headers=registry.auth("admin"))
    assert_names_field(r, field)


async def test_nan_in_a_geometry_is_a_422_never_a_500(registry: Registry) -> None:
    ring = square()
    text = area_body(unique("nan"))
    raw = httpx.Request("POST", "/", json=text).content.decode()
    raw = raw.replace(str(ring[1][0]), "NaN", 1)
    assert "NaN" in raw
    r = await registry.client.post(
        PLANS,
        content=raw,
        headers={**registry.auth("admin"), "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_an_update_is_checked_like_a_create(registry: Registry) -> None:
    client, admin = registry.client, registry.auth("admin")
    plan_id = unique("upd")
    assert (await client.post(PLANS, json=corridor_body(plan_id), headers=admin)).status_code == 201
    one = f"{PLANS}/{plan_id}"
    headers = {**admin, "If-Match": '"1"'}
    assert_names_field(await client.patch(one, json={"width_m": None}, headers=headers), "width_m")
    assert_names_field(
        await client.patch(one, json={"department": "space-agency"}, headers=headers), "department"
    )
    assert_names_field(
        await client.patch(one, json={"revisit_interval_s": 60}, headers=headers),
        "revisit_interval_s",
    )
    assert_names_field(
        await client.patch(one, json={"revisit_interval_s": None}, headers=headers),
        "revisit_interval_s",
    )
    # Nothing of the refused updates stuck.
    r = await client.get(one, headers=admin)
    assert r.json()["version"] == 1 and r.json()["width_m"] == 60


SCENARIO_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown department": ({"departments": ["fire", "space-agency"]}, "departments"),
    "no owner": ({"departments": []}, "departments"),
    "radius zero": ({"merge_radius_m": 0}, "merge_radius_m"),
    "radius negative": ({"merge_radius_m": -5}, "merge_radius_m"),
    "window zero": ({"merge_window_s": 0}, "merge_window_s"),
    "confidence above one": (
        {"escalation": {"min_confidence": 1.2, "incident_type": "fire", "priority": 1}},
        "escalation.min_confidence",
    ),
    "confidence below zero": (
        {"escalation": {"min_confidence": -0.1, "incident_type": "fire", "priority": 1}},
        "escalation.min_confidence",
    ),
    "unknown incident type": (
        {"escalation": {"min_confidence": 0.8, "incident_type": "meteor", "priority": 1}},
        "escalation.incident_type",
    ),
    "unknown severity": ({"severity": "apocalyptic"}, "severity"),
    "confidence as a boolean": (
        {"escalation": {"min_confidence": True, "incident_type": "fire", "priority": 1}},
        "escalation.min_confidence",
    ),
}


@pytest.mark.parametrize("case", sorted(SCENARIO_CASES))
async def test_a_bad_scenario_is_a_422_naming_the_field(registry: Registry, case: str) -> None:
    change, field = SCENARIO_CASES[case]
    r = await registry.client.post(
        SCENARIOS, json=scenario_body(scenario_code(), **change), headers=registry.auth("admin")
    )
    assert_names_field(r, field)


async def test_a_scenario_update_to_an_unknown_incident_type_is_refused(
    registry: Registry,
) -> None:
    client, admin = registry.client, registry.auth("admin")
    code = scenario_code()
    assert (
        await client.post(SCENARIOS, json=scenario_body(code), headers=admin)
    ).status_code == 201
    r = await client.patch(
        f"{SCENARIOS}/{code}",
        json={"escalation": {"min_confidence": 0.5, "incident_type": "meteor", "priority": 2}},
        headers={**admin, "If-Match": '"1"'},
    )
    assert_names_field(r, "escalation.incident_type")


async def test_a_department_that_owns_plans_cannot_be_deleted(registry: Registry) -> None:
    client, admin = registry.client, registry.auth("admin")
    code = f"d{uuid.uuid4().hex[:8]}"
    r = await client.post(
        "/v1/departments", json={"code": code, "name_en": "Test", "name_zh": "测试"}, headers=admin
    )
    assert r.status_code == 201, r.text
    plan_id = unique("own")
    r = await client.post(PLANS, json=area_body(plan_id, department=code), headers=admin)
    assert r.status_code == 201, r.text
    r = await client.delete(f"/v1/departments/{code}", headers={**admin, "If-Match": '"1"'})
    assert_problem(r, 409)
    r = await client.delete(f"{PLANS}/{plan_id}", headers={**admin, "If-Match": '"1"'})
    assert r.status_code == 204
    r = await client.delete(f"/v1/departments/{code}", headers={**admin, "If-Match": '"1"'})
    assert r.status_code == 204, r.text
