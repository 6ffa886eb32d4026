"""Crash safety of dispatch: 1,000 incidents posted concurrently over HTTP, some with their
Idempotency-Key retried, while the dispatch worker process is killed with SIGKILL mid-burst
and started again. Afterwards every incident has exactly one outcome and every retried key
returned the first result. The decisions, commands and mission events on Kafka, read from the
beginning, show one assignment per slot at a time and no drone sent on a second mission before
its first ended (the database's unique indexes cannot show that), and the missions they leave
active are the database's.

The REST API runs in this process (ASGI); the worker and its outbox relay run in a process of
their own (`python -m services.dispatch.stream`) against the real PostgreSQL and broker, on a
database of this module's own so that no other test's incidents or missions are restored.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.geo import point_in_polygon
from airgrid.migrate import upgrade
from airgrid.outbox import OutboxRelay
from airgrid.reference import load_reference
from airgrid.service_app import Infrastructure, create_service_app
from airgrid.topics import DRONE_STATE, REGISTRY_CHANGES
from airgrid.v1 import drone_state_pb2, registry_pb2, telemetry_pb2
from loadtests.chaos.dispatch_log import judge, read_dispatch_log
from services.dispatch.api import router
from tests.conftest import _drop_database, _recreate_database
from tests.eventually import eventually

pytestmark = pytest.mark.integration

REFERENCE = load_reference()
INCIDENTS = 1_000
CONCURRENCY = 32
RETRIED_SHARE = 0.2  # keys sent more than once, at once or after the first answer
KILL_AFTER_DECIDED = 150  # SIGKILL the worker once this many incidents have an outcome
ROOT = Path(__file__).resolve().parents[2]
WORKER_LOG = Path(".airgrid/logs/test-dispatch-worker.log")
NO_FLY = [g.ring for g in REFERENCE.geofences if g.kind in ("no-fly", "temporary")]


@pytest.fixture(scope="module")
def crash_settings(settings: Settings) -> Iterator[Settings]:
    url = f"{settings.sqlalchemy_url}_crash"
    asyncio.run(_recreate_database(url))
    s = settings.model_copy(
        update={
            "database_url": url,
            "topic_prefix": f"c{uuid.uuid4().hex[:8]}.",
            "patrol_enabled": False,
            "outbox_poll_seconds": 0.2,
        }
    )
    upgrade(s)
    yield s
    asyncio.run(_drop_database(url))


class Worker:
    """The dispatch worker process: started, killed with SIGKILL, started again."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        s = self.settings
        env = {
            **os.environ,
            "AIRGRID_DATABASE_URL": s.sqlalchemy_url,
            "AIRGRID_KAFKA_BOOTSTRAP": s.bootstrap_servers,
            "AIRGRID_TOPIC_PREFIX": s.topic_prefix,
            "AIRGRID_STATE_DIR": str(s.state_dir),
            "AIRGRID_PATROL_ENABLED": "false",
            "AIRGRID_OUTBOX_POLL_SECONDS": "0.2",
            "AIRGRID_LOG_FORMAT": "console",
            "AIRGRID_LOG_LEVEL": "WARNING",
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.dispatch.stream"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


async def publish_fleet(settings: Settings) -> None:
    """Every reference nest and drone, docked at home, charged and linked."""
    producer = Producer(settings, source="tests")
    await producer.start()
    try:
        for n in REFERENCE.nests:
            nest = registry_pb2.Nest(
                id=n.id, name=n.name, lon=n.lon, lat=n.lat, charging_slots=6, status="online",
                wind_hold_mps=12.0,
            )  # fmt: skip
            change = registry_pb2.RegistryChange(entity_id=n.id, nest=nest)
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=n.id,
                ce_type="airgrid.registry.nest",
            )  # fmt: skip
        nests = {n.id: n for n in REFERENCE.nests}
        for d in REFERENCE.drones:
            drone = registry_pb2.Drone(
                id=d.id, model=d.model, home_nest=d.home_nest, capabilities=d.capabilities,
                cruise_speed_mps=d.cruise_speed_mps, max_speed_mps=d.max_speed_mps,
                climb_rate_mps=d.climb_rate_mps, cruise_altitude_m=d.cruise_altitude_m,
                endurance_s=d.endurance_s, launch_delay_s=d.launch_delay_s, status="active",
            )  # fmt: skip
            change = registry_pb2.RegistryChange(entity_id=d.id, drone=drone)
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=d.id,
                ce_type="airgrid.registry.drone",
            )  # fmt: skip
            home = nests[d.home_nest]
            state = drone_state_pb2.DroneState(
                drone_id=d.id, last_seq=1, event_time_ms=now_ms(), lon=home.lon, lat=home.lat,
                battery_pct=100.0, flight_mode=telemetry_pb2.FLIGHT_MODE_DOCKED,
                nest_id=home.id, link_ok=True,
            )  # fmt: skip
            await producer.send(
                DRONE_STATE, state.SerializeToString(), key=d.id, ce_type="airgrid.drone.state"
            )
        await producer.flush()
    finally:
        await producer.stop()


def api_only(settings: Settings) -> FastAPI:
    """The dispatch REST API without a worker: it commits incidents and their outbox
    records; the worker process's relay, woken by NOTIFY, publishes them."""

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.reference = REFERENCE
        infra = await Infrastructure.open("dispatch", settings)
        app.state.infra = infra
        app.state.authenticator = infra.authenticator
        app.state.relay = OutboxRelay(
            service="dispatch", sessions=infra.sessions, producer=infra.producer
        )
        try:
            yield
        finally:
            await infra.close()

    app = create_service_app(
        service="dispatch",
        settings=settings,
        title="airgrid dispatch (API only)",
        description="Incidents over HTTP; the worker runs in its own process.",
        lifespan=lifespan,
    )
    app.include_router(router)
    return app


def scene(rng: random.Random) -> list[float]:
    """A point near a random nest, inside the zone and outside every no-fly zone."""
    while True:
        nest = rng.choice(REFERENCE.nests)
        lon = round(nest.lon + rng.uniform(-0.012, 0.012), 6)
        lat = round(nest.lat + rng.uniform(-0.01, 0.01), 6)
        if point_in_polygon(lon, lat, REFERENCE.zone.boundary) and not any(
            point_in_polygon(lon, lat, ring) for ring in NO_FLY
        ):
            return [lon, lat]


def bodies(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """(department, request body) per incident: catalogue types, their departments."""
    out = []
    for _ in range(INCIDENTS):
        kind = rng.choice(REFERENCE.incident_types)
        department = rng.choice(kind.departments)
        out.append(
            (
                department,
                {
                    "type": kind.code,
                    "priority": rng.choice([1, 2, 2, 3, 3, 4]),
                    "location": {"type": "Point", "coordinates": scene(rng)},
                    "required_capabilities": list(kind.required_capabilities),
                    "drones_needed": rng.choice([1, 1, 1, 1, 2]),
                    "on_scene_seconds": rng.choice([300, 600, 900]),
                    "description": "crash-test burst",
                },
            )
        )
    return out


async def credentials(settings: Settings, departments: set[str]) -> dict[str, str]:
    engine = create_engine(settings)
    keys: dict[str, str] = {}
    try:
        async with session_factory(engine)() as session, session.begin():
            for code in sorted(departments):
                _, keys[code] = issue_credential(session, role=Role.DEPARTMENT, department=code)
    finally:
        await engine.dispose()
    return keys


async def decided_count(engine: Any) -> int:
    async with engine.connect() as c:
        found = await c.scalar(
            text(
                "SELECT count(*) FROM incidents WHERE patrol_route IS NULL "
                "AND (status <> 'accepted' OR linked_to IS NOT NULL)"
            )
        )
    return int(found or 0)


async def test_sigkill_mid_burst_loses_nothing_and_double_assigns_nothing(
    crash_settings: Settings,
) -> None:
    s = crash_settings
    rng = random.Random(5)
    await ensure_topics(s)
    await publish_fleet(s)
    planned = bodies(rng)
    keys = await credentials(s, {d for d, _ in planned})
    worker = Worker(s, WORKER_LOG)
    engine = create_engine(s)
    first: dict[str, dict[str, Any]] = {}  # idempotency key -> first 201 body
    replays: list[tuple[str, dict[str, Any]]] = []
    conflicts = 0
    figures: dict[str, float] = {}
    posting_done = asyncio.Event()

    async def post(client: httpx.AsyncClient, i: int, gate: asyncio.Semaphore) -> None:
        nonlocal conflicts
        department, body = planned[i]
        key = f"crash-{i:04d}"
        headers = {"Authorization": f"Bearer {keys[department]}", "Idempotency-Key": key}
        sends = 1 if rng.random() >= RETRIED_SHARE else rng.choice([2, 3])
        together = rng.random() < 0.5  # the retry races the first request, or follows it

        async def send_once() -> None:
            nonlocal conflicts
            for _ in range(300):  # a minute of 409s at most
                async with gate:
                    r = await client.post("/v1/incidents", json=body, headers=headers)
                if r.status_code == 409:  # the first request with this key is in flight
                    conflicts += 1
                    await asyncio.sleep(0.2)
                    continue
                assert r.status_code == 201, r.text
                if r.headers.get("idempotent-replayed") == "true":
                    replays.append((key, r.json()))
                else:
                    assert key not in first, f"{key} was accepted twice"
                    first[key] = r.json()
                return
            raise AssertionError(f"{key} still answered 409 (in flight) after a minute")

        if together:
            await asyncio.gather(*(send_once() for _ in range(sends)))
        else:
            for _ in range(sends):
                await send_once()

    async def kill_and_restart() -> None:
        deadline = time.monotonic() + 120
        while await decided_count(engine) < KILL_AFTER_DECIDED:
            assert time.monotonic() < deadline, f"the worker decided too little; see {WORKER_LOG}"
            await asyncio.sleep(0.1)
        figures["accepted_at_kill"] = len(first)
        figures["posting_at_kill"] = 0.0 if posting_done.is_set() else 1.0
        killed = time.monotonic()
        worker.kill()
        before = await decided_count(engine)
        worker.start()
        while await decided_count(engine) <= before:
            assert time.monotonic() - killed < 120, "the restarted worker decided nothing"
            await asyncio.sleep(0.05)
        figures["restart_s"] = time.monotonic() - killed

    app = api_only(s)
    worker.start()
    started = time.monotonic()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://dispatch", timeout=30
            ) as client:
                gate = asyncio.Semaphore(CONCURRENCY)
                chaos = asyncio.create_task(kill_and_restart())
                await asyncio.gather(*(post(client, i, gate) for i in range(INCIDENTS)))
                posting_done.set()
                figures["post_s"] = time.monotonic() - started
                await chaos
            ids = {b["id"] for b in first.values()}
            deadline = time.monotonic() + 120
            while (decided := await decided_count(engine)) < len(ids):
                assert time.monotonic() < deadline, f"only {decided}/{len(ids)} decided"
                await asyncio.sleep(0.2)
            figures["all_decided_s"] = time.monotonic() - started
            await assert_outcomes(engine, ids)
            await eventually(lambda: outbox_drained(engine), 120, "the outbox published")
            log = await read_dispatch_log(s)
            problems = judge(log)
            assert not problems, f"{len(problems)} problems on Kafka, first: {problems[:5]}"
            assert log.active_missions() == await active_missions(engine), (
                "the missions active on Kafka are not the database's"
            )
            figures["decisions"] = len(log.decisions)
            figures["commands"] = len(log.commands)
    finally:
        worker.stop()
        await engine.dispose()

    # Every key was accepted once; every retry returned that first result.
    assert len(first) == INCIDENTS
    assert replays, "no key was retried"
    for key, body in replays:
        assert body["id"] == first[key]["id"], f"{key} replayed another incident"
        assert body == first[key], f"{key} replayed a different first result"
    print(
        f"\ncrash test: {len(first)} incidents accepted, {len(replays)} replays, "
        f"{conflicts} in-flight 409s; worker SIGKILLed after "
        f"{figures['accepted_at_kill']:.0f} accepted"
        f"{' (posting still going)' if figures['posting_at_kill'] else ''}, "
        f"restart to first decision {figures['restart_s']:.1f} s; posts done in "
        f"{figures['post_s']:.1f} s, all decided in {figures['all_decided_s']:.1f} s; "
        f"{figures['decisions']:.0f} decisions and {figures['commands']:.0f} commands on Kafka"
    )


async def outbox_drained(engine: Any) -> bool | None:
    async with engine.connect() as c:
        pending = await c.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    return True if pending == 0 else None


async def active_missions(engine: Any) -> set[str]:
    async with engine.connect() as c:
        rows = await c.execute(
            text(
                "SELECT id FROM missions "
                "WHERE stage IN ('assigned', 'launched', 'on_scene', 'returning')"
            )
        )
    return {r.id for r in rows}


async def assert_outcomes(engine: Any, ids: set[str]) -> None:
    """Exactly one outcome per incident; one drone per active mission; one per slot."""
    async with engine.connect() as c:
        rows = (
            await c.execute(
                text(
                    "SELECT id, status, status_reason, linked_to, drones_needed "
                    "FROM incidents WHERE patrol_route IS NULL"
                )
            )
        ).all()
        active = (
            await c.execute(
                text(
                    "SELECT incident_id, slot, drone_id FROM missions "
                    "WHERE stage IN ('assigned', 'launched', 'on_scene', 'returning')"
                )
            )
        ).all()
    by_id = {r.id: r for r in rows}
    assert set(by_id) == ids, "incidents lost or invented"
    drones = [m.drone_id for m in active]
    assert len(drones) == len(set(drones)), "a drone holds two missions"
    slots = [(m.incident_id, m.slot) for m in active]
    assert len(slots) == len(set(slots)), "a slot has two drones"
    missions_of: dict[str, int] = {}
    for m in active:
        missions_of[m.incident_id] = missions_of.get(m.incident_id, 0) + 1
    outcomes: dict[str, int] = {}
    for r in rows:
        held = missions_of.get(r.id, 0)
        if r.linked_to is not None:
            outcome = "linked"
            assert held == 0, f"{r.id} is linked and has missions of its own"
            assert r.linked_to in by_id
        elif r.status == "queued":
            outcome = "queued"
            assert r.status_reason, f"{r.id} queued without a reason"
            assert held < r.drones_needed, f"{r.id} queued with every slot covered"
        elif r.status in ("assigned", "launched", "on_scene"):
            outcome = "assigned"
            assert 0 < held <= r.drones_needed, f"{r.id} is {r.status} with {held} drones"
        else:
            raise AssertionError(f"{r.id} has no outcome: status {r.status}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"\noutcomes: {dict(sorted(outcomes.items()))}; active missions: {len(active)}")
