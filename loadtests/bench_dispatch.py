"""Dispatch benchmark, one run: (a) the core's decision latency (incident consumed ->
decision produced) at 10, 100 and 1,000 incidents/s with 186 and 10,000 drones; (b) the
core's full decision against one Redis GEOSEARCH and one PostGIS KNN round trip on the same
drones and queries; (c) POST /v1/incidents -> decision visible on GET against the broker hop,
in interleaved rounds on each broker compared (embedded Tansu, Apache Kafka), with the time
of each stage of the path."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.geo import point_in_polygon
from airgrid.migrate import upgrade
from airgrid.reference import DroneSpec, ReferenceData, load_reference
from airgrid.topics import DRONE_STATE, INCIDENTS, REGISTRY_CHANGES
from airgrid.v1 import drone_state_pb2, incident_pb2, registry_pb2, telemetry_pb2
from loadtests.bench_brokers import broker_hop, broker_labels, brokers, database, fresh_topics
from loadtests.rounds import Spread, percentile, ratio, spread, table, tail_stage
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import Assigned, DroneView, NestView
from services.dispatch.domain.nofly import NoFlyZone

Print = Callable[[str], None]

DECISION_P99_TARGET_MS = 5.0
POST_TO_DECISION_P99_TARGET_MS = 50.0
PEER_RATIO_TARGET = 10.0
CAPABILITY_SETS = (("thermal",), ("visual",), ("zoom",), ())
NO_FLY_KINDS = ("no-fly", "temporary")


@dataclass
class BenchConfig:
    rates: tuple[float, ...] = (10.0, 100.0, 1000.0)
    fleets: tuple[int, ...] = (186, 10_000)
    seconds: float = 3.0
    min_samples: int = 30
    queries: int = 300
    posts: int = 60
    post_rate: float = 10.0
    seed: int = 7
    redis_url: str = "redis://127.0.0.1:6379/0"
    brokers: str = "both"
    rounds: int = 3
    polling_posts: int = 20


@dataclass
class Figures:
    decision_ms: dict[tuple[int, float], list[float]] = field(default_factory=dict)
    service_ms: dict[tuple[int, float], list[float]] = field(default_factory=dict)
    core_full_ms: dict[int, list[float]] = field(default_factory=dict)
    core_search_ms: dict[int, list[float]] = field(default_factory=dict)
    core_decode_ms: dict[int, list[float]] = field(default_factory=dict)
    redis_ms: dict[int, list[float]] = field(default_factory=dict)
    postgis_ms: dict[int, list[float]] = field(default_factory=dict)
    post_rounds: dict[str, list[PostRound]] = field(default_factory=dict)
    """(c) per broker label, one entry per round."""


# -- the zone, the fleet and the incidents -------------------------------------------------


def _no_fly(reference: ReferenceData) -> list[NoFlyZone]:
    return [
        NoFlyZone(g.id, g.ring)
        for g in reference.geofences
        if g.kind in NO_FLY_KINDS  # time windows are ignored: the bench flies around all
    ]


def random_scene(reference: ReferenceData, rng: random.Random) -> tuple[float, float]:
    """A point in the zone and outside every no-fly polygon, as the API would accept."""
    lons = [p[0] for p in reference.zone.boundary]
    lats = [p[1] for p in reference.zone.boundary]
    zones = _no_fly(reference)
    while True:
        lon, lat = rng.uniform(min(lons), max(lons)), rng.uniform(min(lats), max(lats))
        if point_in_polygon(lon, lat, reference.zone.boundary) and not any(
            point_in_polygon(lon, lat, z.ring) for z in zones
        ):
            return lon, lat


@dataclass(frozen=True)
class BenchDrone:
    spec: DroneSpec
    id: str
    lon: float
    lat: float
    airborne: bool


def fleet(reference: ReferenceData, size: int, rng: random.Random) -> list[BenchDrone]:
    """The reference drones docked at home; beyond 186, clones spread over the nests, a
    fifth of them airborne somewhere in the zone."""
    nests = {n.id: n for n in reference.nests}
    drones = [
        BenchDrone(d, d.id, nests[d.home_nest].lon, nests[d.home_nest].lat, False)
        for d in reference.drones[:size]
    ]
    while len(drones) < size:
        spec = reference.drones[len(drones) % len(reference.drones)]
        nest = rng.choice(reference.nests)
        if rng.random() < 0.2:
            lon, lat = random_scene(reference, rng)
            airborne = True
        else:
            lon, lat, airborne = nest.lon, nest.lat, False
        spec = DroneSpec(**{**spec.__dict__, "home_nest": nest.id})
        drones.append(BenchDrone(spec, f"bench-dr-{len(drones):05d}", lon, lat, airborne))
    return drones


def drone_view(drone: BenchDrone) -> DroneView:
    s = drone.spec
    return DroneView(
        id=drone.id, home_nest=s.home_nest, capabilities=frozenset(s.capabilities),
        cruise_speed_mps=s.cruise_speed_mps, climb_rate_mps=s.climb_rate_mps,
        cruise_altitude_m=s.cruise_altitude_m, launch_delay_s=s.launch_delay_s,
        endurance_s=s.endurance_s, lon=drone.lon, lat=drone.lat, battery_pct=95.0,
        airborne=drone.airborne, link_ok=True,
        mode=telemetry_pb2.FLIGHT_MODE_CRUISING if drone.airborne
        else telemetry_pb2.FLIGHT_MODE_DOCKED,
    )  # fmt: skip


def build_core(reference: ReferenceData, drones: list[BenchDrone], at_ms: int) -> DispatchCore:
    core = DispatchCore(origin=reference.zone.centre)
    for zone in _no_fly(reference):
        core.upsert_zone(zone)
    for n in reference.nests:
        core.upsert_nest(NestView(n.id, n.lon, n.lat, wind_hold_mps=n.wind_hold_mps))
    for drone in drones:
        core.upsert_drone(drone_view(drone), at_ms)
    return core


def incident_bytes(reference: ReferenceData, rng: random.Random, n: int, at_ms: int) -> bytes:
    """An accepted incident as the worker consumes it from airgrid.incidents."""
    lon, lat = random_scene(reference, rng)
    types = reference.incident_types
    return incident_pb2.IncidentEvent(
        accepted=incident_pb2.Incident(
            id=f"bench-inc-{n:07d}", department="fire", type=types[n % len(types)].code,
            priority=1 + n % 4, lon=lon, lat=lat,
            required_capabilities=CAPABILITY_SETS[n % len(CAPABILITY_SETS)], drones_needed=1,
            on_scene_seconds=600, accepted_time_ms=at_ms,
        )
    ).SerializeToString()  # fmt: skip


def decide(core: DispatchCore, record: bytes, at_ms: int) -> list[Any]:
    """What the worker does between consuming a record and having a decision: decode it,
    build the core's request and run the core (search, feasibility, detours)."""
    from services.dispatch.core_feed import request_of

    incident = incident_pb2.IncidentEvent.FromString(record).accepted
    return core.accept(request_of(incident), at_ms)


# -- (a) decision latency at a fixed rate ----------------------------------------------------


def decision_latency(
    core: DispatchCore, reference: ReferenceData, rate: float, count: int, seed: int
) -> tuple[list[float], list[float]]:
    """Open loop at `rate`: latency counts from the record's arrival, so a core slower than
    the rate shows up as queueing. Each incident is cancelled afterwards (untimed work that
    still delays the next arrival) so the fleet stays the same size."""
    rng = random.Random(seed)
    base = now_ms()
    records = [incident_bytes(reference, rng, i, base + i) for i in range(count)]
    latencies, service = [], []
    start = time.perf_counter()
    for i, record in enumerate(records):
        arrival = start + i / rate
        pause = arrival - time.perf_counter()
        if pause > 0.002:
            time.sleep(pause - 0.002)
        while time.perf_counter() < arrival:
            pass  # the last 2 ms spun: a sleeper's late wake-up is the OS's, not the core's
        began = time.perf_counter()
        decide(core, record, base + i)
        done = time.perf_counter()
        latencies.append((done - arrival) * 1000)
        service.append((done - began) * 1000)
        core.cancel(f"bench-inc-{i:07d}", base + i)
    return latencies, service


# -- (b) candidate search against peers ----------------------------------------------------


def core_queries(
    core: DispatchCore, reference: ReferenceData, queries: int, seed: int
) -> tuple[list[float], list[float], list[float], list[tuple[float, float]]]:
    """The full decision (decode, search, feasibility, detours, the decisions) per query,
    then, in a second pass over the same queries, the record decode alone and the candidate
    search alone. Two passes, so that no query finds the scene its previous measurement
    prepared (the core keeps the latest scene's target and return leg)."""
    from services.dispatch.core_feed import request_of

    rng = random.Random(seed)
    base = now_ms()
    records = [incident_bytes(reference, rng, 10_000_000 + i, base) for i in range(queries)]
    full, decode, search, points = [], [], [], []
    for record in records:
        t0 = time.perf_counter()
        decisions = decide(core, record, base)
        full.append((time.perf_counter() - t0) * 1000)
        assert any(isinstance(d, Assigned) for d in decisions) or decisions
        incident = incident_pb2.IncidentEvent.FromString(record).accepted
        points.append((incident.lon, incident.lat))
        core.cancel(incident.id, base)
    for record in records:
        t0 = time.perf_counter()
        request = request_of(incident_pb2.IncidentEvent.FromString(record).accepted)
        t1 = time.perf_counter()
        core.candidates(request, 1)
        t2 = time.perf_counter()
        decode.append((t1 - t0) * 1000)
        search.append((t2 - t1) * 1000)
    return full, decode, search, points


def sla_reach_km(drones: list[BenchDrone]) -> float:
    """How far the fastest drone flies in the 300 s SLA: the radius a peer must search."""
    return 300.0 * max(d.spec.cruise_speed_mps for d in drones) / 1000.0


def redis_geosearch(
    url: str, drones: list[BenchDrone], points: list[tuple[float, float]]
) -> list[float] | str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    key = f"airgrid-bench-dispatch:{uuid.uuid4().hex[:8]}:drones"
    try:
        client.ping()
    except redis.RedisError as error:
        return f"Redis unreachable at {url} ({error}); start redis-server to compare"
    try:
        pipe = client.pipeline(transaction=False)
        for d in drones:
            pipe.geoadd(key, (d.lon, d.lat, d.id))
        pipe.execute()
        samples = []
        radius = sla_reach_km(drones)
        for lon, lat in points:
            t0 = time.perf_counter()
            client.geosearch(
                key, longitude=lon, latitude=lat, radius=radius, unit="km", sort="ASC", count=10
            )
            samples.append((time.perf_counter() - t0) * 1000)
        return samples
    finally:
        client.delete(key)
        client.close()


async def postgis_knn(
    admin_url: str, drones: list[BenchDrone], points: list[tuple[float, float]]
) -> list[float] | str:
    name = f"airgrid_bench_postgis_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(admin_url)
    except Exception as error:
        return f"PostgreSQL unreachable at {admin_url} ({error})"
    try:
        available = await admin.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'"
        )
        if not available:
            return (
                "PostGIS is not installed; install it with "
                "`sudo apt-get install postgresql-15-postgis-3` and run again"
            )
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            conn = await asyncpg.connect(admin_url.rsplit("/", 1)[0] + f"/{name}")
            try:
                await conn.execute("CREATE EXTENSION postgis")
                await conn.execute(
                    "CREATE TABLE drones (id text PRIMARY KEY, geom geometry(Point, 4326))"
                )
                await conn.executemany(
                    "INSERT INTO drones VALUES ($1, ST_SetSRID(ST_MakePoint($2, $3), 4326))",
                    [(d.id, d.lon, d.lat) for d in drones],
                )
                await conn.execute("CREATE INDEX ON drones USING gist (geom)")
                await conn.execute("ANALYZE drones")
                knn = await conn.prepare(
                    "SELECT id FROM drones "
                    "ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326) LIMIT 10"
                )
                samples = []
                for lon, lat in points:
                    t0 = time.perf_counter()
                    await knn.fetch(lon, lat)
                    samples.append((time.perf_counter() - t0) * 1000)
                return samples
            finally:
                await conn.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- (c) POST -> decision visible ------------------------------------------------------------


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


# -- the run -------------------------------------------------------------------------------


def _line(name: str, samples: list[float]) -> str:
    return (
        f"{name:<34} p50 {percentile(samples, 0.5):8.3f} ms  p99 {percentile(samples, 0.99):8.3f}"
        f" ms  ({len(samples)} samples)"
    )


def core_parts(cfg: BenchConfig, settings: Settings, figures: Figures, print_line: Print) -> None:
    """(a) and (b): the core in this process and its peers; no broker on the path."""
    reference = load_reference(settings.reference_data)
    print_line("(a) decision latency, incident consumed -> decision produced (in-process core)")
    print_line("    (each fleet loaded, then gc.freeze(), as a worker after its restore)")
    for size in cfg.fleets:
        drones = fleet(reference, size, random.Random(cfg.seed))
        core = build_core(reference, drones, now_ms())
        # As a worker does once it has restored its state: the long-lived objects (fleet,
        # run cards, reference data) leave the collector's generations, so a full collection
        # no longer walks them in the middle of a decision.
        gc.collect()
        gc.freeze()
        decision_latency(core, reference, 10_000.0, 50, cfg.seed)  # warm the caches
        for rate in cfg.rates:
            count = max(cfg.min_samples, int(rate * cfg.seconds))
            samples, service = decision_latency(core, reference, rate, count, cfg.seed + int(rate))
            figures.decision_ms[(size, rate)] = samples
            figures.service_ms[(size, rate)] = service
            p99 = percentile(samples, 0.99)
            print_line(
                _line(f"  {size:>6} drones @ {rate:>6.0f}/s", samples)
                + f"  target p99 <= {DECISION_P99_TARGET_MS} ms: "
                f"x{ratio(DECISION_P99_TARGET_MS, p99):.1f}"
            )
            print_line(_line("      of which the core working", service))
        full, decode, search, points = core_queries(core, reference, cfg.queries, cfg.seed)
        gc.unfreeze()
        figures.core_full_ms[size] = full
        figures.core_search_ms[size] = search
        figures.core_decode_ms[size] = decode
        redis_samples = redis_geosearch(cfg.redis_url, drones, points)
        postgis_samples = asyncio.run(postgis_knn(admin_url(settings), drones, points))
        print_line(
            f"(b) candidate search, {size} drones, {len(points)} identical queries (peers: 10 "
            f"nearest, Redis within the {sla_reach_km(drones):.1f} km SLA reach)"
        )
        print_line(_line("  core full decision", full))
        print_line(_line("    of which the record decode", decode))
        print_line(_line("  core candidate search only", search))
        core_p50 = statistics.median(full)
        for peer, found, store in (
            ("Redis GEOSEARCH round trip", redis_samples, figures.redis_ms),
            ("PostGIS KNN round trip", postgis_samples, figures.postgis_ms),
        ):
            if isinstance(found, str):
                print_line(f"  {peer}: skipped: {found}")
                continue
            store[size] = found
            print_line(
                _line(f"  {peer}", found)
                + f"  peer/core p50 = {ratio(statistics.median(found), core_p50):.1f}x"
                f" (target >= {PEER_RATIO_TARGET:.0f}x)"
            )


def _ms(samples: list[float], q: float) -> float:
    return percentile(samples, q)


def round_line(label: str, n: int, r: PostRound) -> str:
    stages = ", ".join(f"{name} {_ms(r.stages[name], 0.5):.1f}" for name in STAGES)
    return (
        f"  round {n} {label:<8}: broker hop p50 {_ms(r.hop_ms, 0.5):6.2f} p99 "
        f"{_ms(r.hop_ms, 0.99):6.2f} ms | POST -> decision p50 {_ms(r.path_ms, 0.5):6.1f} p99 "
        f"{_ms(r.path_ms, 0.99):6.1f} ms | p99 / hop p99 {r.p99_ratio:5.1f}x | stages p50 (ms): "
        f"{stages}"
    )


@dataclass(frozen=True)
class BrokerSummary:
    """(c) on one broker over its rounds: medians and spreads of the per-round figures, and
    the stage that holds the tail over all the rounds' posts together."""

    hop_p50: Spread
    hop_p99: Spread
    path_p50: Spread
    path_p99: Spread
    answered_p50: Spread
    p99_ratio: Spread
    p50_ratio: Spread
    stage_p50: dict[str, Spread]
    stage_p99: dict[str, Spread]
    tail_stage: tuple[str, float]
    polling_p50: float
    database_p50: float
    commit_p50: float


def summarize(rounds: list[PostRound]) -> BrokerSummary:
    def over(figure: Callable[[PostRound], float]) -> Spread:
        return spread([figure(r) for r in rounds])

    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    totals: list[float] = []
    for r in rounds:
        totals += r.stage_totals
        for name in STAGES:
            stages[name] += r.stages[name]
    first = rounds[0]
    return BrokerSummary(
        hop_p50=over(lambda r: _ms(r.hop_ms, 0.5)),
        hop_p99=over(lambda r: _ms(r.hop_ms, 0.99)),
        path_p50=over(lambda r: _ms(r.path_ms, 0.5)),
        path_p99=over(lambda r: _ms(r.path_ms, 0.99)),
        answered_p50=over(lambda r: _ms(r.answered_ms, 0.5)),
        p99_ratio=over(lambda r: r.p99_ratio),
        p50_ratio=over(lambda r: ratio(_ms(r.path_ms, 0.5), _ms(r.hop_ms, 0.5))),
        stage_p50={n: spread([_ms(r.stages[n], 0.5) for r in rounds]) for n in STAGES},
        stage_p99={n: spread([_ms(r.stages[n], 0.99) for r in rounds]) for n in STAGES},
        tail_stage=tail_stage(stages, totals),
        polling_p50=_ms(first.polling_ms, 0.5),
        database_p50=_ms(first.database_ms, 0.5),
        commit_p50=_ms(first.commit_ms, 0.5),
    )


def verdict(summary: BrokerSummary) -> str:
    """Met or not, and where the target is missed, the stage that holds the time."""
    p99 = summary.path_p99.median
    if math.isnan(p99):
        return "no figure"
    if p99 <= POST_TO_DECISION_P99_TARGET_MS:
        return "met"
    name, mean = summary.tail_stage
    return f"not met: {name} holds the tail ({mean:.0f} ms in the slowest 10 %)"


def _stage_cell(name: str) -> Callable[[BrokerSummary], str]:
    def cell(s: BrokerSummary) -> str:
        return f"{s.stage_p50[name].median:.1f} / {s.stage_p99[name].median:.1f} ms"

    return cell


def side_by_side(labels: list[str], summaries: dict[str, BrokerSummary]) -> list[str]:
    def row(figure: str, show: Callable[[BrokerSummary], str], target: str) -> list[str]:
        return [figure, *(show(summaries[label]) for label in labels), target]

    rows = [
        row("broker hop, one record, p50", lambda s: s.hop_p50.show(".2f", " ms"), "baseline"),
        row("broker hop, one record, p99", lambda s: s.hop_p99.show(".2f", " ms"), "baseline"),
        row("POST -> decision visible, p50", lambda s: s.path_p50.show(".1f", " ms"), ""),
        row(
            "POST -> decision visible, p99",
            lambda s: s.path_p99.show(".1f", " ms"),
            f"<= {POST_TO_DECISION_P99_TARGET_MS:.0f} ms",
        ),
        row("p99 / broker hop p99", lambda s: s.p99_ratio.show(".1f", "x"), ""),
        row("p50 / broker hop p50", lambda s: s.p50_ratio.show(".1f", "x"), ""),
        row("of which POST answered 201, p50", lambda s: s.answered_p50.show(".1f", " ms"), ""),
        *(row(f"stage {name}, p50 / p99", _stage_cell(name), "") for name in STAGES),
        row(
            "relay woken only by its poll, p50 (round 1)",
            lambda s: f"{s.polling_p50:.0f} ms",
            "context",
        ),
        row(
            "PostgreSQL SELECT 1 / INSERT+commit, p50",
            lambda s: f"{s.database_p50:.2f} / {s.commit_p50:.2f} ms",
            "context",
        ),
        row("target", verdict, f"p99 <= {POST_TO_DECISION_P99_TARGET_MS:.0f} ms"),
    ]
    return table(["figure", *labels, "target"], rows)


def run(cfg: BenchConfig, settings: Settings, print_line: Print) -> Figures:
    figures = Figures()
    reference = load_reference(settings.reference_data)
    labels = broker_labels(cfg.brokers, settings)
    print_line(
        f"dispatch bench: zone {reference.zone.name}, {len(reference.nests)} nests, "
        f"fleets {', '.join(str(f) for f in cfg.fleets)}, rates {cfg.rates} incidents/s; "
        f"(c) on {' and '.join(labels)}, {cfg.rounds} rounds"
    )
    with database(settings) as (db_settings, shown):
        print_line(f"database: {shown}")
        core_parts(cfg, db_settings, figures, print_line)
        print_line(
            f"(c) POST /v1/incidents -> decision visible on GET (one dispatch process, "
            f"{cfg.posts} posts at {cfg.post_rate:g}/s), each round after its baseline: the "
            f"broker hop, produce -> consume of one record, {cfg.posts} times"
        )
        with brokers(labels, db_settings) as started:
            for n in range(1, cfg.rounds + 1):
                for label in labels:  # brokers alternate, so a drift of the machine hits both
                    found = asyncio.run(post_round(started[label], cfg, first=n == 1))
                    figures.post_rounds.setdefault(label, []).append(found)
                    print_line(round_line(label, n, found))
    summaries = {label: summarize(figures.post_rounds[label]) for label in labels}
    for label in labels:
        s = summaries[label]
        print_line(
            f"{label}: POST -> decision p99 / broker hop p99 = "
            f"{s.p99_ratio.show('.1f', 'x')} over {cfg.rounds} rounds (median, min–max); p99 "
            f"{s.path_p99.show('.1f', ' ms')}; target p99 <= "
            f"{POST_TO_DECISION_P99_TARGET_MS:.0f} ms: {verdict(s)}"
        )
    print_line("")
    for line in side_by_side(labels, summaries):
        print_line(line)
    print_line("")
    print_line("stages: " + "; ".join(f"{n} = {STAGE_MEANING[n]}" for n in STAGES))
    return figures
