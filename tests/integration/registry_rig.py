"""What the registry tests share: the callers and their keys, a running registry on topics
of its own, bodies of nests, drones, geofences, inspection plans and scenarios inside the
reference zone, and the check of a problem+json answer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from airgrid.auth import Role, issue_credential
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from services.registry.app import build_app

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


@asynccontextmanager
async def registry_of_its_own(settings: Settings, prefix: str) -> AsyncIterator[Registry]:
    """A running registry on topics under a fresh prefix, with a key for every caller."""
    s = settings.model_copy(update={"topic_prefix": f"{prefix}{uuid.uuid4().hex[:8]}."})
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


# -- inspection plans and scenarios ---------------------------------------------------------

PLANS = "/v1/inspection-plans"
SCENARIOS = "/v1/inspection/scenarios"


def area_body(plan_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": plan_id,
        "name": f"test {plan_id}",
        "department": "fire",
        "geometry": {"type": "Polygon", "coordinates": [square()]},
        "revisit_interval_s": 3600,
        "active_windows": [{"start": "07:00", "end": "09:00"}],
    }
    body.update(changes)
    return body


def corridor_body(plan_id: str, **changes: Any) -> dict[str, Any]:
    lon, lat = IN_ZONE
    body: dict[str, Any] = {
        "id": plan_id,
        "name": f"test {plan_id}",
        "department": "traffic",
        "geometry": {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.05, lat]]},
        "width_m": 60,
        "revisit_interval_s": 1200,
        "active_windows": [{"start": "07:00", "end": "09:00"}, {"start": "22:00", "end": "02:00"}],
    }
    body.update(changes)
    return body


def scenario_body(code: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name": f"test {code}",
        "departments": ["fire", "parks"],
        "severity": "high",
        "merge_radius_m": 250,
        "merge_window_s": 1800,
        "escalation": {"min_confidence": 0.8, "incident_type": "fire", "priority": 1},
        "description": "a test scenario",
    }
    body.update(changes)
    return body


def scenario_code() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"
