"""The dispatch benchmark's part (b): the core's full decision against the candidate search of
its peers, one Redis GEOSEARCH and one PostGIS KNN round trip, on the same drones and queries."""

from __future__ import annotations

import random
import time
import uuid

import asyncpg

from airgrid.bus import now_ms
from airgrid.reference import ReferenceData
from airgrid.v1 import incident_pb2
from loadtests.bench_dispatch_world import BenchDrone, decide, incident_bytes
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import Assigned


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
