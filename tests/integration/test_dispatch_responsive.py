"""Dispatch answers HTTP while its core rebuilds what it sizes from registry data.

A large registry reaches a running dispatch worker over the real broker: a thousand nests
spread over the zone, three drones docked at each, and twenty no-fly zones of 24 vertices.
The first incident after it makes the core build the run cards of every response cell for
every nest and the detour graph of every no-fly vertex pair, seconds of CPU on a blocking
loop. Meanwhile /healthz is probed over real HTTP from another thread, and every probe must
be answered before its own timeout of PROBE_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from airgrid.auth import Role
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.reference import load_reference
from airgrid.topics import DRONE_STATE, REGISTRY_CHANGES
from airgrid.v1 import drone_state_pb2, registry_pb2, telemetry_pb2
from services.dispatch.app import build_app
from tests.conftest import free_port
from tests.databases import database_of_its_own
from tests.eventually import eventually, until
from tests.integration.test_dispatch_flow import credential

pytestmark = pytest.mark.integration

REFERENCE = load_reference()
NESTS = 1000
DRONES_PER_NEST = 3
NO_FLY_ZONES = 20
ZONE_VERTICES = 24
ZONE_RADIUS_DEG = 0.002
PROBE_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 0.1
# The scene: the first reference nest, inside the zone; no generated no-fly zone comes near.
SCENE = (REFERENCE.nests[0].lon, REFERENCE.nests[0].lat)
CLEAR_OF_SCENE_DEG = 0.01


def _box() -> tuple[float, float, float, float]:
    lons = [p[0] for p in REFERENCE.zone.boundary]
    lats = [p[1] for p in REFERENCE.zone.boundary]
    return min(lons), min(lats), max(lons), max(lats)


def _no_fly_centres(rng: random.Random) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = _box()
    centres: list[tuple[float, float]] = []
    while len(centres) < NO_FLY_ZONES:
        c = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        if math.dist(c, SCENE) > CLEAR_OF_SCENE_DEG:
            centres.append(c)
    return centres


async def publish_large_registry(settings: Settings) -> None:
    """Nests at random over the zone's bounding box, drones docked at them with their
    states, and no-fly zones: registry changes and drone states, as registry and telemetry
    publish them."""
    rng = random.Random(19)
    x0, y0, x1, y1 = _box()
    producer = Producer(settings, source="tests")
    await producer.start()
    try:
        for n in range(NESTS):
            nest = registry_pb2.Nest(
                id=f"big-nest-{n:04d}", name=f"nest {n}", lon=rng.uniform(x0, x1),
                lat=rng.uniform(y0, y1), charging_slots=DRONES_PER_NEST, status="online",
                wind_hold_mps=12.0,
            )  # fmt: skip
            change = registry_pb2.RegistryChange(entity_id=nest.id, nest=nest)
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=nest.id, ce_type="tests"
            )
            for k in range(DRONES_PER_NEST):
                drone_id = f"big-drone-{n:04d}-{k}"
                drone = registry_pb2.Drone(
                    id=drone_id, model="M30T", home_nest=nest.id, capabilities=["camera"],
                    cruise_speed_mps=15.0, max_speed_mps=20.0, climb_rate_mps=5.0,
                    cruise_altitude_m=120.0, endurance_s=2400.0, launch_delay_s=20.0,
                    status="active",
                )  # fmt: skip
                change = registry_pb2.RegistryChange(entity_id=drone_id, drone=drone)
                await producer.send(
                    REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="tests"
                )
                state = drone_state_pb2.DroneState(
                    drone_id=drone_id, last_seq=1, event_time_ms=now_ms(), lon=nest.lon,
                    lat=nest.lat, battery_pct=100.0, nest_id=nest.id, link_ok=True,
                    flight_mode=telemetry_pb2.FLIGHT_MODE_DOCKED,
                )  # fmt: skip
                await producer.send(
                    DRONE_STATE, state.SerializeToString(), key=drone_id, ce_type="tests"
                )
        for z, (cx, cy) in enumerate(_no_fly_centres(rng)):
            ring = [
                (cx + ZONE_RADIUS_DEG * math.cos(a), cy + ZONE_RADIUS_DEG * math.sin(a))
                for a in (2 * math.pi * v / ZONE_VERTICES for v in range(ZONE_VERTICES))
            ]
            ring.append(ring[0])
            fence = registry_pb2.Geofence(
                id=f"big-zone-{z:02d}", name=f"zone {z}", kind="no-fly",
                ring_lon=[p[0] for p in ring], ring_lat=[p[1] for p in ring],
            )  # fmt: skip
            change = registry_pb2.RegistryChange(entity_id=fence.id, geofence=fence)
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=fence.id, ce_type="tests"
            )
        await producer.flush()
    finally:
        await producer.stop()


class Prober:
    """Asks /healthz over real HTTP from a thread of its own, again and again, as a load
    balancer or kubelet would; records every probe not answered before its own timeout.
    The thread keeps its schedule whatever the service's event loop does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered = 0
        self.late: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="healthz-prober", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=PROBE_TIMEOUT_S) as client:
            while not self.stop.is_set():
                try:
                    r = client.get("/healthz")
                except httpx.TimeoutException as error:
                    probe = self.answered + len(self.late) + 1
                    self.late.append(f"probe {probe}: {type(error).__name__}")
                else:
                    if r.status_code == 200:
                        self.answered += 1
                    else:
                        self.late.append(f"probe: {r.status_code} {r.text[:80]}")
                self.stop.wait(PROBE_INTERVAL_S)  # the schedule between probes


@contextlib.asynccontextmanager
async def dispatch_server(
    settings: Settings, port: int | None = None
) -> AsyncIterator[tuple[FastAPI, str]]:
    """The dispatch service served by uvicorn on this test's event loop (on `port`, or a free
    one); yields the app and its URL."""
    app = build_app(settings)
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 90, "dispatch serving")
        if task.done():
            raise AssertionError(f"dispatch did not start: {task.exception()!r}")
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


async def test_probes_are_answered_while_dispatch_rebuilds_from_a_large_registry(
    settings: Settings,
) -> None:
    # A database of its own: restored incidents of other tests would be drained again at
    # every registry change, each drain sizing the run cards anew.
    async with database_of_its_own(
        settings.model_copy(update={"topic_prefix": f"resp{uuid.uuid4().hex[:8]}."}), "resp"
    ) as s:
        await _probe_through_a_rebuild(s)


async def _probe_through_a_rebuild(s: Settings) -> None:
    await ensure_topics(s)
    key = await credential(s, Role.DEPARTMENT, "fire")
    auth = {"Authorization": f"Bearer {key}"}
    async with dispatch_server(s) as (app, url), httpx.AsyncClient(base_url=url) as client:
        worker = app.state.worker
        await eventually(_ready(worker), 120, "the dispatch worker to be ready")
        prober = Prober(url)
        prober.thread.start()
        try:
            await publish_large_registry(s)
            drones = NESTS * DRONES_PER_NEST

            async def fleet_known() -> bool | None:
                core = worker.core
                return (
                    len(core.nests) == NESTS
                    and len(core.drones) == drones
                    and len(core.zones) == NO_FLY_ZONES
                ) or None

            await eventually(fleet_known, 300, "the core to hold the whole registry")
            r = await client.post("/v1/incidents", json=_incident(), headers=auth, timeout=60)
            assert r.status_code == 201, r.text
            incident_id = r.json()["id"]

            async def assigned() -> str | None:
                got = await client.get(f"/v1/incidents/{incident_id}", headers=auth, timeout=60)
                status = str(got.json()["status"])
                return status if status not in ("accepted", "queued") else None

            await eventually(assigned, 300, "the incident to get a drone")
        finally:
            prober.stop.set()
            await asyncio.to_thread(prober.thread.join)
    # The rebuild did happen: the cards span every nest and the no-fly detour graph exists.
    assert len(worker.core.cards.anchors) == NESTS
    assert worker.core._planners, "no detour graph was built"
    assert not prober.late, (
        f"{len(prober.late)} of {prober.answered + len(prober.late)} probes got no answer "
        f"within {PROBE_TIMEOUT_S} s: {prober.late[:5]}"
    )
    assert prober.answered >= 10, f"only {prober.answered} probes were answered"


def _incident() -> dict[str, Any]:
    return {
        "type": "fire",
        "priority": 1,
        "location": {"type": "Point", "coordinates": list(SCENE)},
        "required_capabilities": [],
        "on_scene_seconds": 60,
        "description": "smoke seen while the registry is being rebuilt",
    }


def _ready(worker: Any) -> Any:
    async def check() -> bool | None:
        return True if worker.status.check() == "ok" else None

    return check
