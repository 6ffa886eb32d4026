"""Durable anomaly state for a worker that takes drones over (start-up or rebalance).

`drone_alert_state` keeps, per drone and alert subject (kind, and zone for a breach), whether
the alert is raised: written once the broker acknowledged the alert, never before. With the
last time each drone was heard of (its live state, and the track, which survives an empty
broker) it seeds the anomaly detector of the worker that takes the drone over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.telemetry.domain.anomalies import AlertKind, LastSeen, RaisedAlert
from services.telemetry.models import drone_alert_state, track_points

log = logging.getLogger("airgrid.telemetry")


@dataclass(frozen=True)
class AlertStateRow:
    drone_id: str
    kind: str
    subject_id: str
    active: bool
    alert_id: str
    event_time_ms: int


async def save(engine: AsyncEngine, rows: Iterable[AlertStateRow]) -> None:
    """Upserts acknowledged alerts; an older alert never overwrites a newer one."""
    values = [row.__dict__ for row in rows]
    if not values:
        return
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert(drone_alert_state)
    statement = statement.on_conflict_do_update(
        index_elements=["drone_id", "kind", "subject_id"],
        set_={
            "active": statement.excluded.active,
            "alert_id": statement.excluded.alert_id,
            "event_time_ms": statement.excluded.event_time_ms,
        },
        where=statement.excluded.event_time_ms >= drone_alert_state.c.event_time_ms,
    )
    async with engine.begin() as connection:
        await connection.execute(statement, values)


async def raised_alerts(
    engine: AsyncEngine, drone_ids: Collection[str]
) -> dict[str, list[RaisedAlert]]:
    """The alerts currently raised for `drone_ids`."""
    if not drone_ids:
        return {}
    query = sa.select(
        drone_alert_state.c.drone_id, drone_alert_state.c.kind, drone_alert_state.c.subject_id
    ).where(drone_alert_state.c.active, drone_alert_state.c.drone_id.in_(list(drone_ids)))
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    out: dict[str, list[RaisedAlert]] = {}
    for row in rows:
        drone_id, kind, subject_id = str(row[0]), str(row[1]), str(row[2])
        try:
            out.setdefault(drone_id, []).append(RaisedAlert(AlertKind(kind), subject_id))
        except ValueError:  # a kind this version does not know
            continue
    return out


async def last_tracked(engine: AsyncEngine, drone_ids: Collection[str]) -> dict[str, LastSeen]:
    """Each drone's newest track point (the track outlives an empty broker). On PostgreSQL one
    backward index probe per drone (`ix_track_points_drone_time`)."""
    if not drone_ids:
        return {}
    ids = sorted(drone_ids)
    rows: Sequence[Any]
    if engine.dialect.name == "postgresql":
        lateral = sa.text(
            "SELECT p.drone_id, p.event_time_ms, p.lon, p.lat "
            "FROM unnest(CAST(:ids AS text[])) AS d(id) "
            "CROSS JOIN LATERAL (SELECT drone_id, event_time_ms, lon, lat FROM track_points "
            "WHERE drone_id = d.id ORDER BY event_time_ms DESC LIMIT 1) AS p"
        )
        async with engine.connect() as connection:
            rows = (await connection.execute(lateral, {"ids": ids})).all()
    else:
        newest = (
            sa.select(
                track_points.c.drone_id,
                sa.func.max(track_points.c.event_time_ms).label("newest"),
            )
            .where(track_points.c.drone_id.in_(ids))
            .group_by(track_points.c.drone_id)
            .subquery()
        )
        query = sa.select(
            track_points.c.drone_id,
            track_points.c.event_time_ms,
            track_points.c.lon,
            track_points.c.lat,
        ).join(
            newest,
            sa.and_(
                newest.c.drone_id == track_points.c.drone_id,
                newest.c.newest == track_points.c.event_time_ms,
            ),
        )
        async with engine.connect() as connection:
            rows = (await connection.execute(query)).all()
    return {str(row[0]): LastSeen(int(row[1]), float(row[2]), float(row[3])) for row in rows}


class AlertStateWriter:
    """Writes acknowledged alerts in the background, one write at a time; a failed write is
    tried again with the next (the newest row per subject wins, so memory stays bounded)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._rows: dict[tuple[str, str, str], AlertStateRow] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, row: AlertStateRow) -> None:
        key = (row.drone_id, row.kind, row.subject_id)
        current = self._rows.get(key)
        if current is None or current.event_time_ms <= row.event_time_ms:
            self._rows[key] = row
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="telemetry-alert-state")

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await self._task

    async def _run(self) -> None:
        while self._rows:
            taken, self._rows = self._rows, {}
            try:
                await save(self.engine, taken.values())
            except Exception as error:
                log.warning("alert state not saved; retrying", extra={"error": repr(error)})
                for key, row in taken.items():
                    newer = self._rows.get(key)
                    if newer is None or newer.event_time_ms < row.event_time_ms:
                        self._rows[key] = row
                await asyncio.sleep(1.0)
