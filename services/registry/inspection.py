"""Inspection use cases: create, update and delete inspection plans and scenarios.

Like every registry write (services/registry/service.py), each runs in the caller's
transaction: the row, its audit entry and its RegistryChange outbox record commit together.
Checks that need the database or the zone answer 422 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.problems import Problem
from airgrid.reference import IncidentType, Zone
from services.registry.changes import (
    plan_entity_id,
    publish_deleted,
    publish_plan,
    publish_scenario,
    scenario_entity_id,
)
from services.registry.domain.inspection_rules import corridor_width_problems, zone_problems
from services.registry.inspection_schemas import PlanRead, ScenarioRead, WindowRead
from services.registry.models import AuditRow, DepartmentRow, InspectionPlanRow, ScenarioRow
from services.registry.service import Actor, audit, etag, patched_fields

PLAN = "inspection-plan"
SCENARIO = "scenario"
InspectionRow = InspectionPlanRow | ScenarioRow


@dataclass(frozen=True)
class InspectionContext:
    """What the checks need beyond the database: the zone, its time zone, the incident
    catalogue that escalations name."""

    zone: Zone
    timezone: str
    incident_types: tuple[IncidentType, ...]


def invalid(field: str, message: str, detail: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        f"{field}: {detail}",
        kind="invalid-request",
        errors=[{"field": field, "message": message}],
    )


# -- reads -------------------------------------------------------------------------------


def plan_read(row: InspectionPlanRow, timezone: str) -> PlanRead:
    return PlanRead(
        id=row.id,
        name=row.name,
        department=row.department,
        kind="corridor" if row.geometry["type"] == "LineString" else "area",
        geometry=row.geometry,
        width_m=row.width_m,
        revisit_interval_s=row.revisit_interval_s,
        active_windows=[WindowRead(start=w["start"], end=w["end"]) for w in row.active_windows],
        timezone=timezone,
        version=row.version,
    )


def scenario_read(row: ScenarioRow) -> ScenarioRead:
    return ScenarioRead.model_validate(
        {
            "code": row.code,
            "name": row.name,
            "departments": list(row.departments),
            "severity": row.severity,
            "merge_radius_m": row.merge_radius_m,
            "merge_window_s": row.merge_window_s,
            "escalation": row.escalation,
            "description": row.description,
            "version": row.version,
        }
    )


def _document(row: InspectionRow, context: InspectionContext) -> dict[str, Any]:
    read = (
        plan_read(row, context.timezone)
        if isinstance(row, InspectionPlanRow)
        else scenario_read(row)
    )
    document: dict[str, Any] = read.model_dump(mode="json")
    return document


def _key(row: InspectionRow) -> str:
    return row.id if isinstance(row, InspectionPlanRow) else row.code


def _kind(row: InspectionRow) -> str:
    return PLAN if isinstance(row, InspectionPlanRow) else SCENARIO


# -- checks ------------------------------------------------------------------------------


async def _check_departments(session: AsyncSession, field: str, codes: list[str]) -> None:
    known = set(
        await session.scalars(select(DepartmentRow.code).where(DepartmentRow.code.in_(codes)))
    )
    unknown = sorted(set(codes) - known)
    if unknown:
        raise invalid(
            field,
            "unknown department",
            f"no department {', '.join(unknown)}; pick codes from GET /v1/departments.",
        )


def _check_plan_shape(row: InspectionPlanRow, zone: Zone) -> None:
    corridor = row.geometry["type"] == "LineString"
    if corridor:
        problems = corridor_width_problems(row.width_m)
        if problems:
            raise invalid("width_m", "invalid corridor width", problems[0])
        positions = row.geometry["coordinates"]
    else:
        if row.width_m is not None:
            raise invalid(
                "width_m",
                "only a corridor has a width",
                "an area (Polygon) has no width; leave width_m out, or send a LineString.",
            )
        positions = row.geometry["coordinates"][0]
    problems = zone_problems(positions, zone.boundary)
    if problems:
        raise Problem(
            422,
            "Outside the zone",
            f"geometry: {problems[0]}; a plan must lie in the {zone.name} zone.",
            kind="outside-zone",
            errors=[{"field": "geometry", "message": "outside the zone"}],
        )


def _check_escalation(escalation: dict[str, Any] | None, context: InspectionContext) -> None:
    if escalation is None:
        return
    codes = {t.code for t in context.incident_types}
    if escalation["incident_type"] not in codes:
        raise invalid(
            "escalation.incident_type",
            "not in the incident catalogue",
            f"{escalation['incident_type']!r} is not an incident type; use one of: "
            f"{', '.join(sorted(codes))}.",
        )


async def _check(session: AsyncSession, row: InspectionRow, context: InspectionContext) -> None:
    if isinstance(row, InspectionPlanRow):
        await _check_departments(session, "department", [row.department])
        _check_plan_shape(row, context.zone)
    else:
        await _check_departments(session, "departments", list(row.departments))
        _check_escalation(row.escalation, context)


def check_version(if_match: str | None, row: InspectionRow) -> None:
    """Optimistic concurrency, as for every registry entity (RFC 9110 If-Match)."""
    what = f"{_kind(row)} {_key(row)}"
    current = etag(row.version)
    if if_match is None:
        raise Problem(
            428,
            "Precondition required",
            f"Send If-Match: {current} (the ETag of GET on the {what}) so that a change you "
            "have not seen is never overwritten.",
            kind="if-match-required",
            current_etag=current,
        )
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    if "*" not in tags and current not in tags:
        raise Problem(
            412,
            "Precondition failed",
            f"The {what} changed since you read it: it is at ETag {current}, you sent "
            f"{if_match}. GET it again, re-apply your change and retry.",
            kind="stale-etag",
            current_etag=current,
        )


# -- writes ------------------------------------------------------------------------------

ROWS: dict[str, type[InspectionRow]] = {PLAN: InspectionPlanRow, SCENARIO: ScenarioRow}
# Fields an update may set to null; every other field needs a value.
NULLABLE = {"width_m", "escalation"}
COLLECTION = {PLAN: "/v1/inspection-plans", SCENARIO: "/v1/inspection/scenarios"}


def new_row(kind: str, body: BaseModel) -> InspectionRow:
    values = body.model_dump(mode="json")
    row: InspectionRow = ROWS[kind](**values, version=1)
    return row


def _publish(session: AsyncSession, row: InspectionRow, context: InspectionContext) -> None:
    if isinstance(row, InspectionPlanRow):
        publish_plan(session, row, context.timezone)
    else:
        publish_scenario(session, row)


async def _next_life_version(session: AsyncSession, kind: str, key: str) -> int:
    """A re-created id continues after its delete's version, so that a consumer that kept the
    delete never mistakes the new entity for an older one."""
    last = await session.scalar(
        select(AuditRow)
        .where(AuditRow.entity_kind == kind)
        .where(AuditRow.entity_id == key)
        .order_by(AuditRow.id.desc())
        .limit(1)
    )
    if last is None or last.action != "delete" or not last.before:
        return 1
    return int(last.before.get("version", 0)) + 2


async def find(session: AsyncSession, kind: str, key: str, *, lock: bool = False) -> InspectionRow:
    row: InspectionRow | None = await session.get(ROWS[kind], key, with_for_update=lock)
    if row is None:
        raise Problem(
            404, "Not found", f"No {kind} {key!r}; list them with GET {COLLECTION[kind]}."
        )
    return row


async def create(
    session: AsyncSession,
    *,
    kind: str,
    body: BaseModel,
    actor: Actor,
    context: InspectionContext,
) -> InspectionRow:
    row = new_row(kind, body)
    await _check(session, row, context)
    key = _key(row)
    if await session.get(ROWS[kind], key) is not None:
        raise Problem(
            409,
            "Duplicate id",
            f"A {kind} {key!r} already exists; choose another, or PATCH the existing one.",
            kind="duplicate-id",
        )
    row.version = await _next_life_version(session, kind, key)
    session.add(row)
    await session.flush()
    after = _document(row, context)
    audit(session, actor=actor, action="create", kind=kind, entity=key, before=None, after=after)
    _publish(session, row, context)
    return row


async def update(
    session: AsyncSession,
    *,
    kind: str,
    key: str,
    body: BaseModel,
    if_match: str | None,
    actor: Actor,
    context: InspectionContext,
) -> InspectionRow:
    row = await find(session, kind, key, lock=True)
    check_version(if_match, row)
    fields = patched_fields(body, NULLABLE)
    before = _document(row, context)
    # No flush before the checks: a bad reference must answer 4xx, not fail in the database.
    with session.no_autoflush:
        for name, value in fields.items():
            setattr(row, name, value)
        await _check(session, row, context)
    after = _document(row, context)
    if after == before:
        return row  # nothing changed: no new version, no event
    row.version += 1
    await session.flush()
    after["version"] = row.version
    audit(session, actor=actor, action="update", kind=kind, entity=key, before=before, after=after)
    _publish(session, row, context)
    return row


async def delete(
    session: AsyncSession,
    *,
    kind: str,
    key: str,
    if_match: str | None,
    actor: Actor,
    context: InspectionContext,
) -> None:
    row = await find(session, kind, key, lock=True)
    check_version(if_match, row)
    before = _document(row, context)
    await session.delete(row)
    await session.flush()
    audit(session, actor=actor, action="delete", kind=kind, entity=key, before=before, after=None)
    entity = plan_entity_id(key) if kind == PLAN else scenario_entity_id(key)
    publish_deleted(session, kind=kind, entity_id=entity, version=row.version + 1)
