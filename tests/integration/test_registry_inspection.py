"""Inspection plans and the scenario catalogue on the real PostgreSQL and broker: the reference
seed, CRUD with ETags, roles, and the change events on airgrid.registry.changes. Bad input is
in test_registry_inspection_input.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.reference import load_reference
from airgrid.v1 import registry_pb2
from tests.eventually import eventually
from tests.integration.registry_rig import (
    IN_ZONE,
    PLANS,
    SCENARIOS,
    Registry,
    area_body,
    assert_problem,
    corridor_body,
    registry_of_its_own,
    running_registry,
    scenario_body,
    scenario_code,
    unique,
)
from tests.integration.test_registry_changes import ChangeReader

pytestmark = pytest.mark.integration

REFERENCE = load_reference()


@pytest.fixture(scope="module")
async def registry(settings: Settings) -> AsyncIterator[Registry]:
    async with registry_of_its_own(settings, "ip") as running:
        yield running


async def everything(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **filters: str
) -> list[Any]:
    r = await client.get(path, params={"limit": 500, **filters}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["items"])
    items: list[Any] = body["items"]
    return items


# -- the reference seed ------------------------------------------------------------------


async def test_the_seed_ships_plans_for_every_department_and_the_catalogue(
    registry: Registry,
) -> None:
    departments = {d.code for d in REFERENCE.departments}
    assert len(departments) == 11
    plans = await everything(registry.client, PLANS, registry.auth("police"))
    seeded = [p for p in plans if not p["name"].startswith("test ")]
    assert {p["department"] for p in seeded} == departments
    assert {p["id"] for p in seeded} == {p.id for p in REFERENCE.inspection_plans}
    by_id = {p["id"]: p for p in seeded}
    assert by_id["zone-baseline"]["revisit_interval_s"] == 86_400
    assert by_id["zone-baseline"]["kind"] == "area"
    avenue = by_id["traffic-optics-valley-avenue"]
    assert avenue["kind"] == "corridor" and avenue["revisit_interval_s"] == 1200
    assert {"start": "07:00", "end": "09:00"} in avenue["active_windows"]
    assert avenue["timezone"] == "Asia/Shanghai"

    scenarios = await everything(registry.client, SCENARIOS, registry.auth("fire"))
    shipped = [s for s in scenarios if not s["code"].startswith("t_")]
    assert len(shipped) == len(REFERENCE.scenarios) == 34
    assert {d for s in shipped for d in s["departments"]} == departments
    flame = next(s for s in shipped if s["code"] == "open_flame")
    assert flame["escalation"] == {"min_confidence": 0.8, "incident_type": "fire", "priority": 1}

    water = await registry.client.get(
        SCENARIOS, params={"department": "water", "limit": 100}, headers=registry.auth("police")
    )
    assert water.status_code == 200
    assert {"algae_bloom", "illegal_fishing", "water_discolouration"} <= {
        s["code"] for s in water.json()["items"]
    }
    assert all("water" in s["departments"] for s in water.json()["items"])


# -- CRUD --------------------------------------------------------------------------------


async def test_plan_create_read_update_delete(registry: Registry) -> None:
    collection = PLANS
    client, admin = registry.client, registry.auth("admin")
    plan_id = unique("plan")
    r = await client.post(collection, json=area_body(plan_id), headers=admin)
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"1"'
    created = r.json()
    assert created["kind"] == "area" and created["width_m"] is None
    assert created["department"] == "fire" and created["version"] == 1

    for caller in ("fire", "police", "operator", "gateway"):
        r = await client.get(f"{collection}/{plan_id}", headers=registry.auth(caller))
        assert r.status_code == 200, (caller, r.text)
        assert r.json() == created

    r = await client.patch(
        f"{collection}/{plan_id}", json={"revisit_interval_s": 7200}, headers=admin
    )
    assert_problem(r, 428, "If-Match")
    r = await client.patch(
        f"{collection}/{plan_id}",
        json={"revisit_interval_s": 7200, "active_windows": []},
        headers={**admin, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["revisit_interval_s"] == 7200 and r.json()["active_windows"] == []
    assert r.headers["ETag"] == '"2"'
    r = await client.patch(
        f"{collection}/{plan_id}", json={"name": "stale"}, headers={**admin, "If-Match": '"1"'}
    )
    assert_problem(r, 412, "changed since")

    # An area becomes a corridor: the width comes with the line.
    line = corridor_body(plan_id)["geometry"]
    r = await client.patch(
        f"{collection}/{plan_id}",
        json={"geometry": line, "width_m": 40},
        headers={**admin, "If-Match": '"2"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "corridor" and r.json()["width_m"] == 40

    r = await client.post(collection, json=area_body(plan_id), headers=admin)
    assert_problem(r, 409, "already exists")
    r = await client.delete(f"{collection}/{plan_id}", headers={**admin, "If-Match": '"3"'})
    assert r.status_code == 204
    r = await client.get(f"{collection}/{plan_id}", headers=admin)
    assert_problem(r, 404, plan_id)


async def test_a_corridor_plan_and_the_list_filters(registry: Registry) -> None:
    client, admin = registry.client, registry.auth("admin")
    plan_id = unique("corr")
    r = await client.post(PLANS, json=corridor_body(plan_id), headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "corridor" and r.json()["width_m"] == 60
    mine = await everything(client, PLANS, admin, department="traffic", kind="corridor")
    assert plan_id in {p["id"] for p in mine}
    assert all(p["department"] == "traffic" and p["kind"] == "corridor" for p in mine)
    areas = await everything(client, PLANS, admin, kind="area")
    assert plan_id not in {p["id"] for p in areas}


async def test_scenario_create_read_update_delete(registry: Registry) -> None:
    client, admin = registry.client, registry.auth("admin")
    code = scenario_code()
    r = await client.post(SCENARIOS, json=scenario_body(code), headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    r = await client.get(f"{SCENARIOS}/{code}", headers=registry.auth("police"))
    assert r.status_code == 200 and r.json()["departments"] == ["fire", "parks"]
    r = await client.patch(
        f"{SCENARIOS}/{code}",
        json={"escalation": None, "merge_radius_m": 80},
        headers={**admin, "If-Match": r.headers["ETag"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["escalation"] is None and r.json()["merge_radius_m"] == 80
    r = await client.delete(f"{SCENARIOS}/{code}", headers={**admin, "If-Match": '"2"'})
    assert r.status_code == 204
    assert (await client.get(f"{SCENARIOS}/{code}", headers=admin)).status_code == 404


@pytest.mark.parametrize("caller", ["fire", "operator", "gateway"])
async def test_only_an_admin_writes(registry: Registry, caller: str) -> None:
    client, headers = registry.client, registry.auth(caller)
    r = await client.post(PLANS, json=area_body(unique("p")), headers=headers)
    assert_problem(r, 403)
    r = await client.post(SCENARIOS, json=scenario_body(scenario_code()), headers=headers)
    assert_problem(r, 403)
    r = await client.delete(f"{SCENARIOS}/smoke", headers={**headers, "If-Match": "*"})
    assert_problem(r, 403)
    r = await client.get(SCENARIOS)
    assert_problem(r, 401)


# -- change events -------------------------------------------------------------------------


async def test_plan_and_scenario_writes_reach_a_separate_consumer(registry: Registry) -> None:
    client, admin = registry.client, registry.auth("admin")
    reader = ChangeReader(registry.settings)
    try:
        await reader.start(from_beginning=False)
        plan_id = unique("ev")
        r = await client.post(PLANS, json=corridor_body(plan_id), headers=admin)
        assert r.status_code == 201
        change, _ = await reader.until(lambda c: c.entity_id == f"inspection-plan:{plan_id}")
        plan = change.inspection_plan
        assert change.WhichOneof("entity") == "inspection_plan" and change.version == 1
        assert plan.id == plan_id and plan.department == "traffic" and plan.kind == "corridor"
        assert plan.width_m == 60 and plan.revisit_interval_s == 1200
        assert list(plan.path_lon) == [IN_ZONE[0], IN_ZONE[0] + 0.05]
        assert [(w.start, w.end) for w in plan.active_windows] == [
            ("07:00", "09:00"),
            ("22:00", "02:00"),
        ]
        assert plan.timezone == "Asia/Shanghai"

        r = await client.delete(f"{PLANS}/{plan_id}", headers={**admin, "If-Match": '"1"'})
        assert r.status_code == 204
        change, _ = await reader.until(
            lambda c: c.entity_id == f"inspection-plan:{plan_id}" and c.deleted
        )
        assert change.deleted_kind == "inspection-plan" and change.version == 2

        code = scenario_code()
        r = await client.post(SCENARIOS, json=scenario_body(code), headers=admin)
        assert r.status_code == 201
        r = await client.patch(
            f"{SCENARIOS}/{code}",
            json={"severity": "critical"},
            headers={**admin, "If-Match": '"1"'},
        )
        assert r.status_code == 200
        change, _ = await reader.until(
            lambda c: c.entity_id == f"scenario:{code}" and c.version == 2
        )
        scenario = change.scenario
        assert scenario.severity == "critical" and list(scenario.departments) == ["fire", "parks"]
        assert scenario.escalation.incident_type == "fire"
        assert scenario.escalation.min_confidence == pytest.approx(0.8)
    finally:
        await reader.stop()


async def test_the_snapshot_on_start_carries_the_seeded_plans_and_scenarios(
    settings: Settings,
) -> None:
    s = settings.model_copy(update={"topic_prefix": f"is{uuid.uuid4().hex[:8]}."})
    await ensure_topics(s)
    reader = ChangeReader(s)
    changes: list[registry_pb2.RegistryChange] = []

    async def scenarios_arrived() -> bool | None:
        changes.extend(await reader.drain())
        return True if any(c.WhichOneof("entity") == "scenario" for c in changes) else None

    try:
        async with running_registry(s):
            await reader.start(from_beginning=True)
            await eventually(scenarios_arrived, 30, "the start-up snapshot's scenarios")
    finally:
        await reader.stop()
    plans = {c.inspection_plan.id for c in changes if c.WhichOneof("entity") == "inspection_plan"}
    scenarios = {c.scenario.code for c in changes if c.WhichOneof("entity") == "scenario"}
    assert {p.id for p in REFERENCE.inspection_plans} <= plans
    assert {x.code for x in REFERENCE.scenarios} <= scenarios


async def test_seeding_again_keeps_edits_and_never_brings_back_a_deleted_entry(
    registry: Registry,
) -> None:
    from airgrid.db import create_engine, session_factory
    from services.registry.seed import seed_reference

    client, admin = registry.client, registry.auth("admin")
    r = await client.get(f"{SCENARIOS}/floating_debris", headers=admin)
    assert r.status_code == 200, r.text
    r = await client.delete(
        f"{SCENARIOS}/floating_debris", headers={**admin, "If-Match": r.headers["ETag"]}
    )
    assert r.status_code == 204
    plan = PLANS + "/health-public-squares"
    r = await client.get(plan, headers=admin)
    r = await client.patch(
        plan, json={"revisit_interval_s": 10_800}, headers={**admin, "If-Match": r.headers["ETag"]}
    )
    assert r.status_code == 200, r.text

    engine = create_engine(registry.settings)
    try:
        result = await seed_reference(session_factory(engine), REFERENCE)
    finally:
        await engine.dispose()
    assert (result.inspection_plans, result.scenarios) == (0, 0)
    assert (await client.get(f"{SCENARIOS}/floating_debris", headers=admin)).status_code == 404
    assert (await client.get(plan, headers=admin)).json()["revisit_interval_s"] == 10_800
