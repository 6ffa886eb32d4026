"""A waiting incident is served when an idle airborne drone flies into reach, although the
drone's availability never changed (airborne, linked, no fault, same battery): the dispatch
worker's clock re-tries the queue after such moves. Real PostgreSQL and broker; a database of
this module's own, so that no other test's waiting incident takes the one drone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from airgrid.auth import Role
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.migrate import upgrade
from airgrid.topics import DRONE_STATE, REGISTRY_CHANGES
from airgrid.v1 import drone_state_pb2, registry_pb2, telemetry_pb2
from services.dispatch.app import build_app
from tests.conftest import _drop_database, _recreate_database
from tests.eventually import eventually
from tests.integration.test_dispatch_flow import NEST, REFERENCE, credential

pytestmark = pytest.mark.integration

DRONE = next(d for d in REFERENCE.drones if d.home_nest == NEST.id)
SCENE = (NEST.lon + 0.003, NEST.lat + 0.002)
FAR = (NEST.lon + 0.12, NEST.lat + 0.05)  # about 13 km away
BATTERY = 42.0  # enough for the scene from close by, not from 13 km (reserve 20 %)


@pytest.fixture
def moves_settings(settings: Settings) -> Iterator[Settings]:
    url = f"{settings.sqlalchemy_url}_moves"
    asyncio.run(_recreate_database(url))
    s = settings.model_copy(
        update={
            "database_url": url,
            "topic_prefix": f"m{uuid.uuid4().hex[:8]}.",
            "patrol_enabled": False,
            "rebalance_enabled": False,
        }
    )
    upgrade(s)
    yield s
    asyncio.run(_drop_database(url))


async def report(producer: Producer, where: tuple[float, float], seq: int) -> None:
    """The drone cruising, idle, linked, at the same battery: only its position changes."""
    state = drone_state_pb2.DroneState(
        drone_id=DRONE.id, last_seq=seq, event_time_ms=now_ms(), lon=where[0], lat=where[1],
        battery_pct=BATTERY, flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING, link_ok=True,
    )  # fmt: skip
    await producer.send_and_wait(
        DRONE_STATE, state.SerializeToString(), key=DRONE.id, ce_type="airgrid.drone.state"
    )


async def publish_one_drone(producer: Producer) -> None:
    nest = registry_pb2.Nest(
        id=NEST.id, name=NEST.name, lon=NEST.lon, lat=NEST.lat, charging_slots=6,
        status="online", wind_hold_mps=12.0,
    )  # fmt: skip
    await producer.send_and_wait(
        REGISTRY_CHANGES,
        registry_pb2.RegistryChange(entity_id=NEST.id, nest=nest).SerializeToString(),
        key=NEST.id,
        ce_type="airgrid.registry.nest",
    )
    drone = registry_pb2.Drone(
        id=DRONE.id, model=DRONE.model, home_nest=DRONE.home_nest,
        capabilities=DRONE.capabilities, cruise_speed_mps=DRONE.cruise_speed_mps,
        max_speed_mps=DRONE.max_speed_mps, climb_rate_mps=DRONE.climb_rate_mps,
        cruise_altitude_m=DRONE.cruise_altitude_m, endurance_s=DRONE.endurance_s,
        launch_delay_s=DRONE.launch_delay_s, status="active",
    )  # fmt: skip
    await producer.send_and_wait(
        REGISTRY_CHANGES,
        registry_pb2.RegistryChange(entity_id=DRONE.id, drone=drone).SerializeToString(),
        key=DRONE.id,
        ce_type="airgrid.registry.drone",
    )


async def test_an_idle_drone_flying_into_reach_serves_the_waiting_incident(
    moves_settings: Settings,
) -> None:
    s = moves_settings
    await ensure_topics(s)
    producer = Producer(s, source="tests")
    await producer.start()
    key = await credential(s, Role.DEPARTMENT, "fire")
    auth = {"Authorization": f"Bearer {key}"}
    try:
        await publish_one_drone(producer)
        await report(producer, FAR, 1)
        app = build_app(s)
        async with app.router.lifespan_context(app):
            worker = app.state.worker
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:

                async def ready() -> bool | None:
                    return True if worker.status.check() == "ok" else None

                await eventually(ready, 60, "the dispatch worker")
                body: dict[str, Any] = {
                    "type": "fire",
                    "priority": 2,
                    "location": {"type": "Point", "coordinates": list(SCENE)},
                    "required_capabilities": [],
                    "drones_needed": 1,
                    "on_scene_seconds": 300,
                    "description": "waiting for a drone in reach",
                }
                r = await client.post("/v1/incidents", json=body, headers=auth)
                assert r.status_code == 201, r.text
                incident_id = r.json()["id"]

                def status_is(*wanted: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
                    async def check() -> dict[str, Any] | None:
                        got = await client.get(f"/v1/incidents/{incident_id}", headers=auth)
                        found: dict[str, Any] = got.json()
                        return found if found["status"] in wanted else None

                    return check

                queued = await eventually(status_is("queued", "assigned"), 30, "a decision")
                assert queued["status"] == "queued", "the far drone should not reach the scene"

                near = (SCENE[0] + 0.001, SCENE[1] + 0.001)
                await report(producer, near, 2)  # same availability, now in reach
                assigned = await eventually(status_is("assigned"), 30, "the drone in reach")
                assert [m["drone_id"] for m in assigned["missions"]] == [DRONE.id]
    finally:
        await producer.stop()
    print(f"\nqueue re-tried after a move: queued ({queued['status_reason']!r}), then assigned")
