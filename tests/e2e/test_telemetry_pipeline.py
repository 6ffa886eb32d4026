"""End to end: `airgrid serve telemetry` as a process on a real broker and PostgreSQL:
alerts, the SSE feed and its access rule, the track, and a kill -9 under load."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy.engine import make_url

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, client_options, ensure_topics, now_ms, topic_name
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.topics import ALERTS, INCIDENTS, MISSION_EVENTS, REGISTRY_CHANGES, TELEMETRY_RAW
from airgrid.v1 import alert_pb2, incident_pb2, mission_pb2, registry_pb2, telemetry_pb2
from tests.conftest import free_port

pytestmark = pytest.mark.integration

T = TypeVar("T")
ZONE = [(121.50, 31.20), (121.52, 31.20), (121.52, 31.22), (121.50, 31.22)]


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Keys:
    operator: str
    fire: str
    police: str


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]


async def issue_keys(settings: Settings) -> Keys:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            operator = issue_credential(session, role=Role.OPERATOR, label="t")[1]
            fire = issue_credential(session, role=Role.DEPARTMENT, department="fire")[1]
            police = issue_credential(session, role=Role.DEPARTMENT, department="police")[1]
    finally:
        await engine.dispose()
    return Keys(operator, fire, police)


def service_env(settings: Settings, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRGRID_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
            "AIRGRID_DATABASE_URL": settings.sqlalchemy_url,
            "AIRGRID_TOPIC_PREFIX": settings.topic_prefix,
            "AIRGRID_STATE_DIR": str(settings.state_dir),
            "AIRGRID_TELEMETRY_PORT": str(port),
            "AIRGRID_LOG_FORMAT": "console",
        }
    )
    return env


@asynccontextmanager
async def telemetry_service(settings: Settings, log: Path) -> AsyncIterator[Service]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints", "serve", "telemetry"],
        env=service_env(settings, port),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def ready() -> bool | None:
                if process.poll() is not None:
                    raise AssertionError(f"telemetry exited:\n{log.read_text()[-3000:]}")
                try:
                    return (await client.get(f"{url}/readyz")).status_code == 200 or None
                except httpx.HTTPError:
                    return None

            await eventually(ready, 90, "telemetry ready")
        yield Service(url, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def prefixed(settings: Settings) -> Iterator[Settings]:
    yield settings.model_copy(update={"topic_prefix": f"p{uuid.uuid4().hex[:8]}."})


async def register(producer: Producer, drone_ids: list[str]) -> None:
    for drone_id in drone_ids:
        change = registry_pb2.RegistryChange(
            entity_id=drone_id,
            version=1,
            drone=registry_pb2.Drone(id=drone_id, home_nest="nest-a", status="active"),
        )
        await producer.send_and_wait(
            REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="test.registry"
        )


def record(drone_id: str, seq: int, event_time_ms: int, **fields: Any) -> bytes:
    values: dict[str, Any] = {
        "lon": 121.40,
        "lat": 31.10,
        "alt_m": 80.0,
        "ground_speed_mps": 10.0,
        "battery_pct": 80.0,
        "flight_mode": telemetry_pb2.FLIGHT_MODE_CRUISING,
    }
    values.update(fields)
    message = telemetry_pb2.Telemetry(
        drone_id=drone_id, seq=seq, event_time_ms=event_time_ms, **values
    )
    return message.SerializeToString()


async def track_rows(settings: Settings, drone_id: str) -> list[tuple[int, int]]:
    """(seq, copies) per seq in the track table, straight from PostgreSQL."""
    url = make_url(settings.sqlalchemy_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        rows = await connection.fetch(
            "SELECT seq, count(*) AS n FROM track_points WHERE drone_id = $1 GROUP BY seq",
            drone_id,
        )
    finally:
        await connection.close()
    return [(int(r["seq"]), int(r["n"])) for r in rows]


class AlertReader:
    def __init__(self, settings: Settings) -> None:
        self.consumer = AIOKafkaConsumer(
            topic_name(settings, ALERTS),
            **client_options(settings),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.alerts: list[alert_pb2.Alert] = []

    async def find(self, kind: int, drone_id: str, active: bool) -> alert_pb2.Alert | None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.alerts.extend(alert_pb2.Alert.FromString(r.value or b"") for r in records)
        for alert in self.alerts:
            if alert.kind == kind and alert.drone_id == drone_id and alert.active == active:
                return alert
        return None


async def test_alerts_feed_access_and_track(prefixed: Settings, tmp_path: Path) -> None:
    settings = prefixed
    await ensure_topics(settings)
    keys = await issue_keys(settings)
    run = uuid.uuid4().hex[:6]
    drone, other = f"dr-{run}", f"dr-o-{run}"
    producer = Producer(settings, source="airgrid/test")
    await producer.start()
    alerts = AlertReader(settings)
    await alerts.consumer.start()
    try:
        await register(producer, [drone, other])
        fence = registry_pb2.RegistryChange(
            entity_id=f"nfz-{run}",
            version=1,
            geofence=registry_pb2.Geofence(
                id=f"nfz-{run}",
                kind="no-fly",
                ring_lon=[p[0] for p in ZONE],
                ring_lat=[p[1] for p in ZONE],
            ),
        )
        await producer.send_and_wait(
            REGISTRY_CHANGES, fence.SerializeToString(), key=f"nfz-{run}", ce_type="test.registry"
        )
        incident = incident_pb2.IncidentEvent(
            accepted=incident_pb2.Incident(id=f"inc-{run}", department="fire", lon=121.5, lat=31.2)
        )
        await producer.send_and_wait(
            INCIDENTS, incident.SerializeToString(), key=f"inc-{run}", ce_type="test.incident"
        )
        mission = mission_pb2.MissionEvent(
            mission_id=f"m-{run}",
            incident_id=f"inc-{run}",
            drone_id=drone,
            stage=mission_pb2.MISSION_STAGE_LAUNCHED,
        )
        await producer.send_and_wait(
            MISSION_EVENTS, mission.SerializeToString(), key=f"m-{run}", ce_type="test.mission"
        )

        async with (
            telemetry_service(settings, tmp_path / "telemetry.log") as service,
            httpx.AsyncClient(base_url=service.url, timeout=10.0) as client,
        ):
            fire = {"Authorization": f"Bearer {keys.fire}"}
            police = {"Authorization": f"Bearer {keys.police}"}
            operator = {"Authorization": f"Bearer {keys.operator}"}
            denied = await client.get("/v1/feeds/fire/stream", headers=police)
            assert denied.status_code == 403
            assert denied.headers["content-type"].startswith("application/problem+json")

            received: list[dict[str, Any]] = []

            async def listen() -> None:
                async with client.stream(
                    "GET", "/v1/feeds/fire/stream", headers=fire, timeout=None
                ) as response:
                    assert response.status_code == 200
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            received.append(orjson.loads(line[6:]))

            listener = asyncio.create_task(listen())
            try:
                t0 = now_ms()
                # The drone reports 20 s ago, then another drone reports now: by event time
                # the first one has been silent for more than 15 s.
                # It was 1.5 km west of the no-fly zone: reachable by the time of its next fix.
                old = record(drone, 1, t0 - 20_000, lon=121.4937, lat=31.21, mission_id=f"m-{run}")
                await producer.send_and_wait(TELEMETRY_RAW, old, key=drone, ce_type="t")

                async def state_seq() -> int | None:
                    r = await client.get(f"/v1/drones/{drone}/state", headers=operator)
                    return r.json()["last_seq"] if r.status_code == 200 else None

                assert await eventually(state_seq, 30, "the first record's state") == 1
                now_record = record(other, 1, now_ms())
                await producer.send_and_wait(TELEMETRY_RAW, now_record, key=other, ce_type="t")
                lost = await eventually(
                    lambda: alerts.find(alert_pb2.ALERT_KIND_LINK_LOST, drone, True),
                    30,
                    "link lost",
                )
                assert lost.severity == alert_pb2.SEVERITY_CRITICAL

                inside = record(drone, 2, now_ms(), lon=121.51, lat=31.21, mission_id=f"m-{run}")
                await producer.send_and_wait(TELEMETRY_RAW, inside, key=drone, ce_type="t")
                await eventually(
                    lambda: alerts.find(alert_pb2.ALERT_KIND_LINK_LOST, drone, False),
                    30,
                    "link recovered",
                )
                breach = await eventually(
                    lambda: alerts.find(alert_pb2.ALERT_KIND_GEOFENCE_BREACH, drone, True),
                    30,
                    "geofence breach",
                )
                assert breach.subject_id == f"nfz-{run}"

                async def fire_feed() -> set[str] | None:
                    types = {item["type"] for item in received if item["drone_id"] == drone}
                    wanted = {"drone.position", "alert.geofence_breach"}
                    return types if wanted <= types else None

                await eventually(fire_feed, 30, "fire feed items over SSE")
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

            # A replayed batch (new ce_ids, same seqs) is not written twice.
            for value in (old, inside):
                await producer.send_and_wait(TELEMETRY_RAW, value, key=drone, ce_type="t")
            since = "2000-01-01T00:00:00Z"

            async def track() -> dict[str, Any] | None:
                r = await client.get(
                    f"/v1/drones/{drone}/track", params={"since": since}, headers=operator
                )
                assert r.status_code == 200, r.text
                body: dict[str, Any] = r.json()
                return body if body["count"] == 2 else None

            body = await eventually(track, 30, "two track points")
            assert [p["seq"] for p in body["points"]] == [1, 2]
            assert sorted(await track_rows(settings, drone)) == [(1, 1), (2, 1)]
            bad = await client.get(
                f"/v1/drones/{drone}/track",
                params={"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"},
                headers=operator,
            )
            assert bad.status_code == 400
    finally:
        await alerts.consumer.stop()
        await producer.stop()


async def test_kill_9_under_load_rebuilds_state_without_double_track(
    prefixed: Settings, tmp_path: Path
) -> None:
    settings = prefixed
    await ensure_topics(settings)
    keys = await issue_keys(settings)
    run = uuid.uuid4().hex[:6]
    drones = [f"dr-k{i}-{run}" for i in range(20)]
    producer = Producer(settings, source="airgrid/test")
    await producer.start()
    operator = {"Authorization": f"Bearer {keys.operator}"}
    per_drone = 150
    log = tmp_path / "telemetry.log"
    try:
        await register(producer, drones)

        async def produce(first_seq: int, last_seq: int) -> None:
            base = now_ms()
            for seq in range(first_seq, last_seq + 1):
                for drone_id in drones:
                    value = record(drone_id, seq, base + seq * 10, battery_pct=90.0)
                    await producer.send(TELEMETRY_RAW, value, key=drone_id, ce_type="t")
                if seq % 10 == 0:
                    await producer.flush()
            await producer.flush()

        async with telemetry_service(settings, log) as first:
            await produce(1, 50)
            async with httpx.AsyncClient(base_url=first.url, timeout=5.0) as client:

                async def some_state() -> bool | None:
                    r = await client.get(f"/v1/drones/{drones[0]}/state", headers=operator)
                    return r.status_code == 200 or None

                await eventually(some_state, 60, "the first state")
            loading = asyncio.create_task(produce(51, 100))
            await asyncio.sleep(0)  # let the load start before the kill
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait(timeout=15)
            await loading

        async with (
            telemetry_service(settings, log) as second,
            httpx.AsyncClient(base_url=second.url, timeout=5.0) as client,
        ):
            await produce(101, per_drone)

            async def all_caught_up() -> bool | None:
                for drone_id in drones:
                    r = await client.get(f"/v1/drones/{drone_id}/state", headers=operator)
                    if r.status_code != 200 or r.json()["last_seq"] != per_drone:
                        return None
                return True

            await eventually(all_caught_up, 120, "state of every drone rebuilt and current")
        for drone_id in drones[:5]:
            rows = await track_rows(settings, drone_id)
            assert len(rows) == per_drone
            assert all(copies == 1 for _, copies in rows)
    finally:
        await producer.stop()
