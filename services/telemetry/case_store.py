"""The case keeper's writes and reads in PostgreSQL: cases as they are after their latest
change, and which case each detection counted in."""

from __future__ import annotations

from collections.abc import Collection, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.telemetry.domain.cases import JOINABLE, Case, CaseStatus
from services.telemetry.models import case_detections, cases


def _row(case: Case) -> dict[str, object]:
    return {
        "id": case.id,
        "scenario": case.scenario,
        "departments": list(case.departments),
        "status": case.status.value,
        "lon": case.lon,
        "lat": case.lat,
        "first_seen_ms": case.first_seen_ms,
        "last_seen_ms": case.last_seen_ms,
        "detection_count": case.count,
        "best_detection_id": case.best_detection_id,
        "best_confidence": case.best_confidence,
        "best_media_uri": case.best_media_uri,
        "best_media_sha256": case.best_media_sha256,
        "incident_id": case.incident_id,
        "version": case.version,
    }


def case_of(row: sa.Row[tuple[object, ...]] | sa.RowMapping) -> Case:
    m = row._mapping if isinstance(row, sa.Row) else row
    return Case(
        id=m["id"],
        scenario=m["scenario"],
        departments=tuple(m["departments"]),
        status=CaseStatus(m["status"]),
        lon=m["lon"],
        lat=m["lat"],
        first_seen_ms=m["first_seen_ms"],
        last_seen_ms=m["last_seen_ms"],
        count=m["detection_count"],
        best_detection_id=m["best_detection_id"],
        best_confidence=m["best_confidence"],
        best_media_uri=m["best_media_uri"],
        best_media_sha256=m["best_media_sha256"],
        incident_id=m["incident_id"],
        version=m["version"],
    )


async def save_cases(
    connection: AsyncConnection, changed: Iterable[Case], members: Iterable[tuple[str, str]]
) -> None:
    """Upsert each case, never over a newer version; record (detection id, case id) pairs."""
    rows = [_row(case) for case in changed]
    if rows:
        statement = insert(cases).values(rows)
        excluded = statement.excluded
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[cases.c.id],
                set_={c.name: excluded[c.name] for c in cases.columns if c.name != "id"},
                where=cases.c.version < excluded.version,
            )
        )
    pairs = [{"detection_id": d, "case_id": c} for d, c in members]
    if pairs:
        await connection.execute(insert(case_detections).values(pairs).on_conflict_do_nothing())


async def counted(engine: AsyncEngine, detection_ids: Collection[str]) -> set[str]:
    """The detections among these that already counted in a case."""
    if not detection_ids:
        return set()
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(case_detections.c.detection_id).where(
                case_detections.c.detection_id.in_(list(detection_ids))
            )
        )
        return {row[0] for row in result}


async def joinable_cases(
    engine: AsyncEngine, *, seen_since_ms: int
) -> tuple[list[Case], dict[str, str]]:
    """The cases that may still take detections (seen at or after seen_since_ms), and the
    detection id → case id of their detections."""
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(cases).where(
                cases.c.status.in_([s.value for s in JOINABLE]),
                cases.c.last_seen_ms >= seen_since_ms,
            )
        )
        held = [case_of(row) for row in result]
        members: dict[str, str] = {}
        ids = [case.id for case in held]
        if ids:
            rows = await connection.execute(
                sa.select(case_detections).where(case_detections.c.case_id.in_(ids))
            )
            members = {row.detection_id: row.case_id for row in rows}
    return held, members
