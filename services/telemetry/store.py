"""Track history in the database: batched idempotent inserts, time-range reads, retention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.v1 import telemetry_pb2
from services.telemetry.models import track_points


@dataclass(frozen=True)
class TrackPoint:
    drone_id: str
    seq: int
    event_time_ms: int
    lon: float
    lat: float
    alt_m: float
    ground_speed_mps: float
    heading_deg: float
    battery_pct: float
    flight_mode: int
    mission_id: str


def row_of(record: telemetry_pb2.Telemetry) -> dict[str, object]:
    return {
        "drone_id": record.drone_id,
        "seq": record.seq,
        "event_time_ms": record.event_time_ms,
        "lon": record.lon,
        "lat": record.lat,
        "alt_m": record.alt_m,
        "ground_speed_mps": record.ground_speed_mps,
        "heading_deg": record.heading_deg,
        "battery_pct": record.battery_pct,
        "flight_mode": record.flight_mode,
        "mission_id": record.mission_id,
    }


async def write_points(engine: AsyncEngine, rows: Sequence[dict[str, object]]) -> None:
    """One executemany in one transaction; (drone_id, seq) already stored is skipped, so a
    replayed batch never writes a point twice."""
    if not rows:
        return
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert(track_points).on_conflict_do_nothing(index_elements=["drone_id", "seq"])
    async with engine.begin() as connection:
        await connection.execute(statement, list(rows))


_COLUMNS = (
    "drone_id",
    "seq",
    "event_time_ms",
    "lon",
    "lat",
    "alt_m",
    "ground_speed_mps",
    "heading_deg",
    "battery_pct",
    "flight_mode",
    "mission_id",
)
_STAGED_INSERT = (
    f"INSERT INTO track_points ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} "
    "FROM track_stage "
    "ON CONFLICT (drone_id, seq) DO NOTHING"
)


async def write_records(engine: AsyncEngine, records: Sequence[telemetry_pb2.Telemetry]) -> None:
    """The track points of `records`, written like `write_points`: (drone_id, seq) already
    stored is skipped. On PostgreSQL (asyncpg) a binary COPY, the cheapest insert there is;
    when a point is already stored (a replay) the COPY fails as a whole and the batch goes
    through a per-connection staging table and `ON CONFLICT DO NOTHING` instead."""
    if not records:
        return
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "asyncpg":
        await write_points(engine, [row_of(record) for record in records])
        return
    rows = [
        (
            r.drone_id,
            r.seq,
            r.event_time_ms,
            r.lon,
            r.lat,
            r.alt_m,
            r.ground_speed_mps,
            r.heading_deg,
            r.battery_pct,
            r.flight_mode,
            r.mission_id,
        )
        for r in records
    ]
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            await driver.copy_records_to_table("track_points", records=rows, columns=_COLUMNS)
            return
        except asyncpg.UniqueViolationError:
            pass
        async with driver.transaction():
            await driver.execute(
                "CREATE TEMP TABLE IF NOT EXISTS track_stage "
                "(LIKE track_points) ON COMMIT DELETE ROWS"
            )
            await driver.copy_records_to_table("track_stage", records=rows, columns=_COLUMNS)
            await driver.execute(_STAGED_INSERT)


async def read_track(
    engine: AsyncEngine, *, drone_id: str, since_ms: int, until_ms: int, limit: int
) -> list[TrackPoint]:
    query = (
        sa.select(track_points)
        .where(
            track_points.c.drone_id == drone_id,
            track_points.c.event_time_ms >= since_ms,
            track_points.c.event_time_ms < until_ms,
        )
        .order_by(track_points.c.event_time_ms, track_points.c.seq)
        .limit(limit)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [TrackPoint(**row._mapping) for row in rows]


def downsample(points: Sequence[TrackPoint], max_points: int) -> list[TrackPoint]:
    """At most `max_points`, one per equal time bucket (the bucket's first), ends kept."""
    if len(points) <= max_points or max_points < 2:
        return list(points[:max_points]) if max_points < 2 else list(points)
    start, end = points[0].event_time_ms, points[-1].event_time_ms
    width = max((end - start) / (max_points - 1), 1.0)
    kept: list[TrackPoint] = []
    last_bucket = -1
    for point in points[:-1]:
        bucket = int((point.event_time_ms - start) // width)
        if bucket != last_bucket:
            kept.append(point)
            last_bucket = bucket
    kept = kept[: max_points - 1]
    kept.append(points[-1])
    return kept


async def purge_older_than(engine: AsyncEngine, cutoff_ms: int) -> int:
    """The retention policy: deletes points with event time before `cutoff_ms`."""
    async with engine.begin() as connection:
        result = await connection.execute(
            sa.delete(track_points).where(track_points.c.event_time_ms < cutoff_ms)
        )
    return int(result.rowcount or 0)
