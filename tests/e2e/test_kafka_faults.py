"""Faults on a three-broker Apache Kafka cluster under load: the services as processes, 2
incidents/s over HTTP and a small fleet flying and reporting through its nest gateways.

Each fault (SIGKILL of an `airgrid.incidents` partition leader mid-burst; a rolling restart of
the three brokers; one broker down for 60 s) is followed by the same checks: every accepted
incident has exactly one outcome; the decisions read back from `airgrid.dispatch.decisions`,
deduplicated on `ce_id` as consumers do, give no slot, mission or drone twice, and every
accepted incident has one; every telemetry record a 202 acknowledged is in its drone's track.
Each test prints its time to recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from airgrid.auth import Role, issue_credential
from airgrid.bus import client_options, ensure_topics, topic_name
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from airgrid.servers.kafka import KafkaCluster
from airgrid.topics import ALL_TOPICS, INCIDENTS
from loadtests.chaos.dispatch_log import (
    DispatchLog,
    double_assignments,
    drones_twice,
    read_dispatch_log,
)
from loadtests.chaos.flying_fleet import FlyingFleet, fleet_of
from tests import kafka_fixtures
from tests.e2e.conftest import RunningServices, services_running
from tests.eventually import eventually, until

pytestmark = pytest.mark.e2e

kafka_three = kafka_fixtures.kafka_three

NESTS = ["nest-01", "nest-02"]  # 8 drones near the zone's centre
RATE_PER_S = 2.0
OUTCOMES = {"queued", "assigned", "launched", "on_scene", "completed", "cancelled"}
ACTIVE_STAGES = {"assigned", "launched", "on_scene"}
STEADY_S = 10.0


@dataclass
class Stack:
    cluster: KafkaCluster
    settings: Settings
    services: RunningServices
    fire_key: str
    operator_key: str
    fleet: FlyingFleet
    started: datetime


@dataclass
class IncidentLoad:
    """Posts incidents at RATE_PER_S near the fleet's nests until stopped."""

    url: str
    key: str
    accepted: dict[str, float] = field(default_factory=dict)  # id -> monotonic time of 201
    answers: Counter[int] = field(default_factory=Counter)  # HTTP status, 0 = no answer
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def body(self, n: int) -> dict[str, Any]:
        base = (114.4456, 30.4856) if n % 2 else (114.4046, 30.4849)
        dx, dy = (n // 2) % 9 - 4, (n // 18) % 9 - 4
        return {
            "type": "fire",
            "priority": 2,
            "location": {
                "type": "Point",
                "coordinates": [base[0] + dx * 0.002, base[1] + dy * 0.002],
            },
            "required_capabilities": [],
            "drones_needed": 1,
            "on_scene_seconds": 60,
            "description": f"kafka fault load {n}",
        }

    async def run(self) -> None:
        n = 0
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                n += 1
                headers = {
                    "Authorization": f"Bearer {self.key}",
                    "Idempotency-Key": uuid.uuid4().hex,
                }
                try:
                    r = await client.post("/v1/incidents", json=self.body(n), headers=headers)
                    self.answers[r.status_code] += 1
                    if r.status_code == 201:
                        self.accepted[r.json()["id"]] = time.monotonic()
                except httpx.HTTPError:
                    self.answers[0] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 1 / RATE_PER_S)


# -- the stack ---------------------------------------------------------------------------------


async def _own_database(url: str, name: str) -> str:
    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port,
        user=parsed.username or "postgres",
        password=parsed.password,
        database="postgres",
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


async def _keys(settings: Settings) -> tuple[str, str, dict[str, str]]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, fire = issue_credential(session, role=Role.DEPARTMENT, department="fire")
            _, operator = issue_credential(session, role=Role.OPERATOR)
            gateways = {
                nest: issue_credential(session, role=Role.GATEWAY, nest_id=nest)[1]
                for nest in NESTS
            }
    finally:
        await engine.dispose()
    return fire, operator, gateways


@pytest.fixture(scope="module")
async def stack(
    kafka_three: KafkaCluster, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    settings = Settings(
        kafka_bootstrap=kafka_three.bootstrap,
        topic_replication=kafka_three.replication,
        topic_prefix=f"k{uuid.uuid4().hex[:8]}.",
        database_url=await _own_database(database_url, "airgrid_kafka_faults"),
        state_dir=tmp_path_factory.mktemp("kafka-faults-state"),
        log_format="console",
    )
    await asyncio.to_thread(upgrade, settings)
    await ensure_topics(settings)
    fire, operator, gateways = await _keys(settings)
    extra_env = {
        "AIRGRID_TOPIC_REPLICATION": str(kafka_three.replication),
        # Every report is its own incident: none is linked to another as a duplicate.
        "AIRGRID_DUPLICATE_RADIUS_M": "0",
    }
    logs = tmp_path_factory.mktemp("kafka-faults-logs")
    flying: asyncio.Task[None] | None = None
    async with services_running(settings, logs, timeout=120, extra_env=extra_env) as services:
        try:
            fleet = FlyingFleet(settings, services.urls["telemetry"], gateways, fleet_of(NESTS))
            started = datetime.now(UTC)
            flying = asyncio.create_task(fleet.run(), name="flying-fleet")
            yield Stack(kafka_three, settings, services, fire, operator, fleet, started)
        finally:
            if flying is not None:
                flying.cancel()
                with contextlib.suppress(BaseException):
                    await flying


# -- the cluster -------------------------------------------------------------------------------


async def _partitions(settings: Settings, names: list[str]) -> list[dict[str, Any]]:
    """Metadata of every partition of `names`: partition, leader, replicas, isr."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=5_000)
    await asyncio.wait_for(admin.start(), 15)
    try:
        described = await asyncio.wait_for(admin.describe_topics(names), 15)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    rows = []
    for topic in described:
        for p in topic["partitions"]:
            rows.append(
                {
                    "topic": topic.get("topic", topic.get("name")),
                    "partition": p.get("partition", p.get("partition_index")),
                    "leader": p.get("leader", p.get("leader_id")),
                    "replicas": list(p.get("replicas", p.get("replica_nodes", []))),
                    "isr": list(p.get("isr", p.get("isr_nodes", []))),
                }
            )
    return rows


async def leader_of_incidents(settings: Settings) -> int:
    name = topic_name(settings, INCIDENTS)

    async def leader() -> int | None:
        with contextlib.suppress(Exception):
            for p in await _partitions(settings, [name]):
                if p["partition"] == 0 and p["leader"] is not None and p["leader"] >= 0:
                    return int(p["leader"])
        return None

    return await eventually(leader, 60, f"the leader of {name}-0", every=0.5)


async def wait_whole(stack: Stack, timeout: float = 180.0) -> None:
    """Every node answers with all brokers registered, and every partition of the run's topics
    and of the group offsets has all its replicas in sync again."""
    await asyncio.to_thread(stack.cluster.wait_ready, timeout)
    names = [topic_name(stack.settings, t) for t in ALL_TOPICS] + ["__consumer_offsets"]

    async def in_sync() -> bool | None:
        with contextlib.suppress(Exception):
            rows = await _partitions(stack.settings, names)
            if rows and all(len(p["isr"]) == len(p["replicas"]) == 3 for p in rows):
                return True
        return None

    await eventually(in_sync, timeout, "every replica in sync", every=1.0)


# -- the checks --------------------------------------------------------------------------------


async def check_outcomes(stack: Stack, ids: list[str]) -> Counter[str]:
    """Every incident decided, and with exactly one outcome: active missions for each needed
    drone, or queued with a reason (or finished)."""
    statuses: dict[str, dict[str, Any]] = {}
    headers = {"Authorization": f"Bearer {stack.operator_key}"}
    async with httpx.AsyncClient(base_url=stack.services.urls["dispatch"], headers=headers) as c:

        async def decided() -> bool | None:
            for incident_id in ids:
                if statuses.get(incident_id, {}).get("status", "accepted") != "accepted":
                    continue
                r = await c.get(f"/v1/incidents/{incident_id}", timeout=10)
                assert r.status_code == 200, r.text
                statuses[incident_id] = r.json()
            return True if all(statuses[i]["status"] != "accepted" for i in ids) else None

        await eventually(decided, 120, "a decision for every accepted incident", every=1.0)
    for incident_id in ids:
        incident = statuses[incident_id]
        status = incident["status"]
        assert status in OUTCOMES, (incident_id, status)
        active = [m for m in incident["missions"] if m["stage"] in ACTIVE_STAGES]
        if status in ACTIVE_STAGES:
            assert len(active) == incident["drones_needed"], incident
        elif status == "queued":
            assert not active and incident["status_reason"], incident
    return Counter(statuses[i]["status"] for i in ids)


async def check_decisions(stack: Stack, ids: list[str]) -> tuple[int, int]:
    """No slot, mission or drone given twice in the log; every incident has a decision there.
    Returns (records, distinct ce_ids) of the decisions topic."""
    log = DispatchLog()

    async def all_logged() -> bool | None:
        nonlocal log
        log = await read_dispatch_log(stack.settings)
        logged = {d.incident_id for d in log.decisions}
        return True if all(i in logged for i in ids) else None

    await eventually(all_logged, 60, "a decision on Kafka for every incident", every=1.0)
    assert double_assignments(log.decisions) == []
    assert drones_twice(log.decisions, log.mission_events) == []
    return log.decision_records, len(log.decisions)


async def check_track(stack: Stack) -> int:
    """Every acknowledged record is in its drone's track; returns how many were checked."""
    acked = {drone: set(seqs) for drone, seqs in stack.fleet.acked.items()}
    headers = {"Authorization": f"Bearer {stack.operator_key}"}
    missing: dict[str, set[int]] = {}
    async with httpx.AsyncClient(base_url=stack.services.urls["telemetry"], headers=headers) as c:

        async def tracked() -> bool | None:
            missing.clear()
            for drone, seqs in acked.items():
                r = await c.get(
                    f"/v1/drones/{drone}/track",
                    params={"since": stack.started.isoformat(), "max_points": 10_000},
                    timeout=20,
                )
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["count"] == body["downsampled_from"], "the track was downsampled"
                lost = seqs - {p["seq"] for p in body["points"]}
                if lost:
                    missing[drone] = lost
            return True if not missing else None

        with contextlib.suppress(AssertionError):
            await eventually(tracked, 60, "every acknowledged record in the track", every=1.0)
    assert not missing, {d: sorted(s)[:10] for d, s in missing.items()}
    return sum(len(s) for s in acked.values())


# -- one fault under load ----------------------------------------------------------------------


def _first_after(times: list[float], moment: float) -> float | None:
    later = [t for t in times if t >= moment]
    return min(later) - moment if later else None


def _longest_gap(times: list[float], start: float, end: float) -> float:
    points = sorted([start, *(t for t in times if start <= t <= end), end])
    return max(b - a for a, b in itertools.pairwise(points))


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f} s"


async def under_load(
    stack: Stack, name: str, fault: Callable[[], Any]
) -> tuple[float, float, float, float]:
    """Runs `fault` (which returns its (start, end) monotonic times) between STEADY_S of load
    before and after, then checks and prints. Returns (start, end, wall start, wall end)."""
    load = IncidentLoad(stack.services.urls["dispatch"], stack.fire_key)
    posting = asyncio.create_task(load.run(), name="incident-load")
    try:
        await until(lambda: len(load.accepted) >= STEADY_S * RATE_PER_S / 2, 60, "steady load")
        wall_offset = time.time() - time.monotonic()
        start, end = await fault()
        await asyncio.sleep(STEADY_S)  # the load goes on after the fault
    finally:
        load.stop.set()
        await asyncio.wait_for(posting, 30)
    stopped = time.monotonic()
    for name_ in ("registry", "telemetry", "dispatch"):
        stack.services.check_running(name_)
    ids = list(load.accepted)
    outcomes = await check_outcomes(stack, ids)
    records, distinct = await check_decisions(stack, ids)
    tracked = await check_track(stack)

    decisions = (await read_dispatch_log(stack.settings)).decisions
    accepted_ms = {i: (t + wall_offset) * 1000 for i, t in load.accepted.items()}

    def first_decision_after(moment: float) -> float | None:
        moment_ms = (moment + wall_offset) * 1000
        later = [
            d.decided_time_ms - moment_ms
            for d in decisions
            if d.incident_id in accepted_ms and accepted_ms[d.incident_id] >= moment_ms
        ]
        return min(later) / 1000 if later else None

    fleet = stack.fleet
    print(
        f"\n[{name}] fault {end - start:.1f} s; incidents posted {sum(load.answers.values())}, "
        f"answers {dict(sorted(load.answers.items()))}, accepted {len(ids)}, "
        f"outcomes {dict(sorted(outcomes.items()))}"
    )
    print(
        f"[{name}] decisions topic: {records} records, {distinct} distinct ce_id, no slot, "
        f"mission or drone twice; telemetry: {tracked} acknowledged records all in the track "
        f"({fleet.counters.batches_failed} batches not acknowledged so far), fleet launches "
        f"{fleet.counters.launches}"
    )
    print(
        f"[{name}] time to recover after the fault ends: 201 "
        f"{_seconds(_first_after(list(load.accepted.values()), end))}, telemetry 202 "
        f"{_seconds(_first_after(fleet.ack_times, end))}, decision "
        f"{_seconds(first_decision_after(end))}; longest gap from the fault's start to the "
        f"load's end: 201 {_longest_gap(list(load.accepted.values()), start, stopped):.1f} s, "
        f"telemetry 202 {_longest_gap(fleet.ack_times, start, stopped):.1f} s"
    )
    assert load.answers[201] == len(ids) and not [c for c in load.answers if c >= 500 and c != 503]
    return start, end, start + wall_offset, end + wall_offset


@pytest.mark.timeout(400)
async def test_sigkill_of_an_incidents_partition_leader_mid_burst(stack: Stack) -> None:
    async def fault() -> tuple[float, float]:
        leader = await leader_of_incidents(stack.settings)
        killed_at = time.monotonic()
        stack.cluster.kill(leader)
        await asyncio.sleep(20)  # the burst goes on with two brokers
        await asyncio.to_thread(stack.cluster.start_node, leader, 120)
        await wait_whole(stack)
        return killed_at, killed_at

    await under_load(stack, "leader SIGKILL", fault)


@pytest.mark.timeout(500)
async def test_rolling_restart_of_all_three_brokers(stack: Stack) -> None:
    async def fault() -> tuple[float, float]:
        began = time.monotonic()
        for node_id in sorted(stack.cluster.nodes):
            await asyncio.to_thread(stack.cluster.stop_node, node_id)
            await asyncio.sleep(5)
            await asyncio.to_thread(stack.cluster.start_node, node_id, 120)
            await wait_whole(stack)
        return began, time.monotonic()

    await under_load(stack, "rolling restart", fault)


@pytest.mark.timeout(400)
async def test_one_broker_down_for_60_seconds(stack: Stack) -> None:
    async def fault() -> tuple[float, float]:
        node_id = await leader_of_incidents(stack.settings)
        await asyncio.to_thread(stack.cluster.stop_node, node_id)
        began = time.monotonic()
        await asyncio.sleep(60)
        await asyncio.to_thread(stack.cluster.start_node, node_id, 120)
        back = time.monotonic()
        await wait_whole(stack)
        return began, back

    await under_load(stack, "one broker down 60 s", fault)
