"""The dispatch benchmark's part (c): POST /v1/incidents -> the decision visible on GET, on a
scratch database and fresh topics, with the time of each stage of the path."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from airgrid.reference import ReferenceData, load_reference
from airgrid.topics import DRONE_STATE, INCIDENTS, REGISTRY_CHANGES
from airgrid.v1 import drone_state_pb2, incident_pb2, registry_pb2, telemetry_pb2
from loadtests.bench_brokers import broker_hop, fresh_topics
from loadtests.bench_dispatch_config import BenchConfig
from loadtests.bench_dispatch_world import random_scene
from loadtests.rounds import percentile, ratio


async def publish_fleet(settings: Settings, reference: ReferenceData) -> None:
    producer = Producer(settings, source="airgrid/bench")
    await producer.start()
    try:
        for n in reference.nests:
            nest = registry_pb2.Nest(
                id=n.id, name=n.name, lon=n.lon, lat=n.lat, charging_slots=n.charging_slots,
                status="online", wind_hold_mps=n.wind_hold_mps,
            )  # fmt: skip
            change = registry_pb2.RegistryChange(entity_id=n.id, nest=nest)
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=n.id, ce_type="bench"
            )
        nests = {n.id: n for n in reference.nests}
        for d in reference.drones:
            drone = registry_pb2.Drone(
                id=d.id, model=d.model, home_nest=d.home_nest, capabilities=d.capabilities,
                cruise_speed_mps=d.cruise_speed_mps, max_speed_mps=d.max_speed_mps,
                climb_rate_mps=d.climb_rate_mps, cruise_altitude_m=d.cruise_altitude_m,
                endurance_s=d.endurance_s, launch_delay_s=d.launch_delay_s, status="active",
            )  # fmt: skip
            change = registry_pb2.RegistryChange(entity_id=d.id, drone=drone)
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=d.id, ce_type="bench"
            )
            home = nests[d.home_nest]
            state = drone_state_pb2.DroneState(
                drone_id=d.id, last_seq=1, event_time_ms=now_ms(), lon=home.lon, lat=home.lat,
                battery_pct=100.0, flight_mode=telemetry_pb2.FLIGHT_MODE_DOCKED,
                nest_id=home.id, link_ok=True,
            )  # fmt: skip
            await producer.send(DRONE_STATE, state.SerializeToString(), key=d.id, ce_type="bench")
        await producer.flush()
    finally:
        await producer.stop()


async def _department_key(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, key = issue_credential(session, role=Role.DEPARTMENT, department="fire")
    finally:
        await engine.dispose()
    return key


@dataclass(frozen=True)
class Post:
    """One incident posted: perf_counter instants of the POST sent, its 201, and the first
    GET that showed a decision."""

    incident_id: str
    started: float
    answered: float
    visible: float

    @property
    def total_ms(self) -> float:
        return (self.visible - self.started) * 1000

    @property
    def answered_ms(self) -> float:
        return (self.answered - self.started) * 1000


async def post_to_decision(
    client: httpx.AsyncClient,
    key: str,
    reference: ReferenceData,
    count: int,
    rate: float,
    seed: int,
) -> list[Post]:
    """Post one incident at a time (at `rate`), poll GET every 2 ms until it is assigned or
    queued, then cancel it (untimed) so the fleet stays whole."""
    rng = random.Random(seed)
    auth = {"Authorization": f"Bearer {key}"}
    posts = []
    for i in range(count):
        lon, lat = random_scene(reference, rng)
        body = {
            "type": reference.incident_types[i % len(reference.incident_types)].code,
            "priority": 1 + i % 4,
            "location": {"type": "Point", "coordinates": [lon, lat]},
            "required_capabilities": [],
            "on_scene_seconds": 600,
            "description": "dispatch bench",
        }
        started = time.perf_counter()
        r = await client.post("/v1/incidents", json=body, headers=auth)
        if r.status_code != 201:
            raise RuntimeError(f"POST /v1/incidents answered {r.status_code}: {r.text}")
        answered = time.perf_counter()
        incident_id = r.json()["id"]
        deadline = started + 30
        while True:
            view = await client.get(f"/v1/incidents/{incident_id}", headers=auth)
            if view.json()["status"] not in ("accepted",):
                posts.append(Post(incident_id, started, answered, time.perf_counter()))
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no decision for {incident_id} after 30 s")
            await asyncio.sleep(0.002)
        await client.post(f"/v1/incidents/{incident_id}/cancel", headers=auth)
        await asyncio.sleep(max(0.0, started + 1 / rate - time.perf_counter()))
    return posts


STAGES = ("accept", "outbox relay", "broker", "decision transaction", "read")
STAGE_MEANING = {
    "accept": "POST sent -> incident committed",
    "outbox relay": "committed -> the relay sends the record",
    "broker": "sent -> the worker has the record (broker hop and fetch wait)",
    "decision transaction": "consumed -> decision stored (read, job queue, core, commit)",
    "read": "stored -> seen by the 2 ms GET poll",
}


class StageClock:
    """perf_counter instants of each posted incident inside the dispatch process: committed
    (the commit hands its outbox rows to the relay), sent (the relay sends them), consumed
    and stored (the worker's per-incident decided hook). Attached to one app's relay and to
    the worker module while the measured posts run; detached, nothing of it stays."""

    def __init__(self) -> None:
        self.committed: dict[str, float] = {}
        self.sent: dict[str, float] = {}
        self.consumed: dict[str, float] = {}
        self.stored: dict[str, float] = {}

    def _stamp(self, into: dict[str, float], rows: list[Any]) -> None:
        now = time.perf_counter()
        for row in rows:
            if row.topic == INCIDENTS.name and row.key:
                into.setdefault(row.key, now)

    @contextlib.contextmanager
    def attached(self, relay: Any) -> Iterator[None]:
        from services.dispatch import stream

        hand_over, send, decided = relay.hand_over, relay._send, stream._observe_decided

        def timed_hand_over(rows: list[Any]) -> None:
            self._stamp(self.committed, rows)
            hand_over(rows)

        async def timed_send(rows: list[Any]) -> None:
            self._stamp(self.sent, list(rows))
            await send(rows)

        def timed_decided(incident: incident_pb2.Incident, consumed: float) -> None:
            self.consumed.setdefault(incident.id, consumed)
            self.stored.setdefault(incident.id, time.perf_counter())
            decided(incident, consumed)

        relay.hand_over, relay._send = timed_hand_over, timed_send
        stream._observe_decided = timed_decided
        try:
            yield
        finally:
            relay.hand_over, relay._send = hand_over, send
            stream._observe_decided = decided

    def stages_of(self, post: Post) -> dict[str, float] | None:
        """The five stages of one post, in ms; None if one of its instants was not seen."""
        i = post.incident_id
        if not all(i in stamps for stamps in (self.committed, self.sent, self.consumed)):
            return None
        if i not in self.stored:
            return None
        instants = (
            post.started, self.committed[i], self.sent[i], self.consumed[i], self.stored[i],
            post.visible,
        )  # fmt: skip
        return {name: (instants[n + 1] - instants[n]) * 1000 for n, name in enumerate(STAGES)}


async def database_round_trips(settings: Settings, count: int) -> tuple[list[float], list[float]]:
    """SELECT 1 and a one-row committed INSERT (a WAL flush) on the same PostgreSQL: the
    units the path pays several times (the POST and the decision each commit durably)."""
    url = make_url(settings.sqlalchemy_url)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username,
        password=url.password, database=url.database,
    )  # fmt: skip
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (n int)")  # logged: a WAL flush
        reads, commits = [], []
        for n in range(count):
            t0 = time.perf_counter()
            await conn.fetchval("SELECT 1")
            t1 = time.perf_counter()
            await conn.execute("INSERT INTO bench_commit VALUES ($1)", n)
            t2 = time.perf_counter()
            reads.append((t1 - t0) * 1000)
            commits.append((t2 - t1) * 1000)
            await asyncio.sleep(0.01)
        return reads, commits
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(settings: Settings) -> AsyncIterator[Settings]:
    """A PostgreSQL database of the bench's own on the server of the bench, dropped
    afterwards."""
    url = make_url(settings.sqlalchemy_url)
    name = f"airgrid_bench_dispatch_{uuid.uuid4().hex[:8]}"
    connect = {"host": url.host or "127.0.0.1", "port": url.port or 5432, "user": url.username,
               "password": url.password}  # fmt: skip
    admin = await asyncpg.connect(database="postgres", **connect)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield settings.model_copy(
            update={"database_url": url.set(database=name).render_as_string(hide_password=False)}
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def admin_url(settings: Settings) -> str:
    """The `postgres` database of the bench's server, as asyncpg takes it (PostGIS peer)."""
    url = make_url(settings.sqlalchemy_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


@dataclass
class PostRound:
    """(c) in one round on one broker: the broker hop, then the posts, back to back."""

    hop_ms: list[float]
    posts: list[Post]
    stages: dict[str, list[float]]
    """Each stage of the posts whose five instants were all seen, aligned with
    `stage_totals`."""
    stage_totals: list[float]
    polling_ms: list[float] = field(default_factory=list)
    database_ms: list[float] = field(default_factory=list)
    commit_ms: list[float] = field(default_factory=list)

    @property
    def path_ms(self) -> list[float]:
        return [p.total_ms for p in self.posts]

    @property
    def answered_ms(self) -> list[float]:
        return [p.answered_ms for p in self.posts]

    @property
    def p99_ratio(self) -> float:
        return ratio(percentile(self.path_ms, 0.99), percentile(self.hop_ms, 0.99))


async def post_round(settings: Settings, cfg: BenchConfig, first: bool) -> PostRound:
    """One round of (c) on fresh topics and a scratch database: the broker hop (produce ->
    consume of one record, at the worker's fetch wait) measured `cfg.posts` times, then
    `cfg.posts` incidents posted. The first round also measures the context: PostgreSQL
    round trips and the relay woken only by its poll."""
    from services.dispatch.app import build_app

    reference = load_reference(settings.reference_data)
    async with scratch_database(fresh_topics(settings)) as s:
        await asyncio.to_thread(upgrade, s)
        await ensure_topics(s)
        await publish_fleet(s, reference)
        key = await _department_key(s)
        app = build_app(s)
        async with app.router.lifespan_context(app):
            worker = app.state.worker
            await asyncio.wait_for(worker.registry_view.caught_up.wait(), timeout=60)
            await asyncio.wait_for(worker.state_view.caught_up.wait(), timeout=60)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://dispatch") as client:
                await post_to_decision(client, key, reference, 5, cfg.post_rate, cfg.seed)  # warm
                hop = await broker_hop(s, cfg.posts, worker.spec.fetch_max_wait_ms)
                clock = StageClock()
                with clock.attached(app.state.relay):
                    posts = await post_to_decision(
                        client, key, reference, cfg.posts, cfg.post_rate, cfg.seed + 1
                    )
                stages: dict[str, list[float]] = {name: [] for name in STAGES}
                totals = []
                for post in posts:
                    found = clock.stages_of(post)
                    if found is not None:
                        totals.append(post.total_ms)
                        for name, ms in found.items():
                            stages[name].append(ms)
                result = PostRound(hop, posts, stages, totals)
                if first:
                    result.database_ms, result.commit_ms = await database_round_trips(s, cfg.posts)
                    # The relay as it was, woken only by its poll: what immediate
                    # publication saves.
                    relay = app.state.relay
                    relay.notify = lambda: None
                    relay.hand_over = lambda rows: None
                    polled = await post_to_decision(
                        client, key, reference, cfg.polling_posts, cfg.post_rate, cfg.seed + 2
                    )
                    result.polling_ms = [p.total_ms for p in polled]
                return result
