"""Cases in the database: the case keeper's writes and reads (each case as it is after its
latest change, and which case each detection counted in), the scoped reads of the REST API,
a status write guarded by the version column, and the counts behind the precision gauge."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airgrid.auth import Principal, Role
from airgrid.problems import Problem
from services.telemetry.domain.cases import JOINABLE, Case, CaseStatus, ScenarioPrecision
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


async def stored_cases(engine: AsyncEngine, case_ids: Collection[str]) -> list[Case]:
    """These cases as stored now."""
    if not case_ids:
        return []
    async with engine.connect() as connection:
        result = await connection.execute(sa.select(cases).where(cases.c.id.in_(list(case_ids))))
        return [case_of(row) for row in result]


async def locked_cases(connection: AsyncConnection, case_ids: Collection[str]) -> list[Case]:
    """These cases as stored now, locked until the connection's transaction ends: a status
    write over REST waits for it, then finds the new version and decides again."""
    if not case_ids:
        return []
    result = await connection.execute(
        sa.select(cases)
        .where(cases.c.id.in_(sorted(case_ids)))
        .order_by(cases.c.id)
        .with_for_update()
    )
    return [case_of(row) for row in result]


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


async def escalation_candidates(engine: AsyncEngine, scenarios: Collection[str]) -> list[Case]:
    """The open or acknowledged cases of these scenarios (those with an escalation rule):
    the escalator's pending work is what the rule asks of them, so it is derived from the
    stored cases at start and needs no column of its own."""
    if not scenarios:
        return []
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(cases).where(
                cases.c.status.in_([CaseStatus.OPEN.value, CaseStatus.ACKNOWLEDGED.value]),
                cases.c.scenario.in_(list(scenarios)),
            )
        )
        return [case_of(row) for row in result]


def visible_to(query: sa.Select[Any], principal: Principal) -> sa.Select[Any]:
    """Operators and admins see every case; a department the cases whose scenario it owns (the
    owners stored with the case, the same departments whose feeds carried it)."""
    if principal.role in (Role.OPERATOR, Role.ADMIN):
        return query
    if principal.role != Role.DEPARTMENT or not principal.department:
        raise Problem(403, "Forbidden", "Only departments, operators and admins read cases.")
    return query.where(owned_by(principal.department))


def owned_by(department: str) -> sa.ColumnElement[bool]:
    return sa.cast(cases.c.departments, sa.String).like(f'%"{department}"%')


@dataclass(frozen=True)
class CaseFilter:
    status: CaseStatus | None = None
    scenario: str | None = None
    department: str | None = None
    seen_since_ms: int | None = None
    """last_seen at or after"""
    seen_until_ms: int | None = None
    """last_seen before"""


async def list_cases(
    engine: AsyncEngine, principal: Principal, where: CaseFilter, *, limit: int, offset: int
) -> tuple[list[Case], int]:
    """One page of the cases the principal may see, latest sighting first, and their total."""
    query = visible_to(sa.select(cases), principal)
    if where.status is not None:
        query = query.where(cases.c.status == where.status.value)
    if where.scenario is not None:
        query = query.where(cases.c.scenario == where.scenario)
    if where.department is not None:
        query = query.where(owned_by(where.department))
    if where.seen_since_ms is not None:
        query = query.where(cases.c.last_seen_ms >= where.seen_since_ms)
    if where.seen_until_ms is not None:
        query = query.where(cases.c.last_seen_ms < where.seen_until_ms)
    async with engine.connect() as connection:
        total = await connection.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
        result = await connection.execute(
            query.order_by(cases.c.last_seen_ms.desc(), cases.c.id).limit(limit).offset(offset)
        )
        return [case_of(row) for row in result], int(total or 0)


async def visible_case(engine: AsyncEngine, case_id: str, principal: Principal) -> Case:
    """The case, or 404 when there is none the principal may see (so ids do not leak)."""
    async with engine.connect() as connection:
        query = visible_to(sa.select(cases).where(cases.c.id == case_id), principal)
        row = (await connection.execute(query)).first()
    if row is None:
        raise Problem(404, "Not found", f"No case {case_id} that you may see.")
    return case_of(row)


async def write_if_unchanged(engine: AsyncEngine, case: Case, *, read_version: int) -> bool:
    """Write the case's new status over the version it was read at; False when another write
    got there first (the caller reads again and decides again)."""
    async with engine.begin() as connection:
        result = await connection.execute(
            sa.update(cases)
            .where(cases.c.id == case.id, cases.c.version == read_version)
            .values(status=case.status.value, incident_id=case.incident_id, version=case.version)
        )
    return bool(result.rowcount == 1)


async def precision_counts(engine: AsyncEngine) -> dict[str, ScenarioPrecision]:
    """Per scenario, all cases and the dismissed ones, counted by the database."""
    dismissed = sa.func.count().filter(cases.c.status == CaseStatus.DISMISSED.value)
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(cases.c.scenario, sa.func.count(), dismissed).group_by(cases.c.scenario)
        )
        rows = cast(list[tuple[str, int, int]], result.tuples().all())
    return {scenario: ScenarioPrecision(scenario, n, d) for scenario, n, d in rows}
