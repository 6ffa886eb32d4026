"""Seeds a zone's inspection plans and scenario catalogue through the same checks as REST.

A bad entry in the zone's files stops the seed with ReferenceDataError naming the file, the
entry and the field, before anything of the seed commits.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.problems import Problem
from airgrid.reference import InspectionPlanSpec, ReferenceData, ReferenceDataError, ScenarioSpec
from services.registry import inspection
from services.registry.inspection import PLAN, SCENARIO, InspectionContext
from services.registry.inspection_schemas import PlanCreate, ScenarioCreate
from services.registry.service import Actor


def plan_document(spec: InspectionPlanSpec) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": spec.id,
        "name": spec.name,
        "department": spec.department,
        "geometry": dict(spec.geometry),
        "revisit_interval_s": spec.revisit_interval_s,
        "active_windows": [{"start": s, "end": e} for s, e in spec.active_windows],
    }
    if spec.width_m is not None:
        document["width_m"] = spec.width_m
    return document


def scenario_document(spec: ScenarioSpec) -> dict[str, Any]:
    rule = spec.escalation
    return {
        "code": spec.code,
        "name": spec.name,
        "departments": list(spec.departments),
        "severity": spec.severity,
        "merge_radius_m": spec.merge_radius_m,
        "merge_window_s": spec.merge_window_s,
        "escalation": None
        if rule is None
        else {
            "min_confidence": rule.min_confidence,
            "incident_type": rule.incident_type,
            "priority": rule.priority,
        },
        "description": spec.description,
    }


def _body(shape: type[BaseModel], document: dict[str, Any], where: str) -> BaseModel:
    try:
        return shape.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "entry"
        raise ReferenceDataError(f"{where}: {field}: {first['msg']}") from None


async def seed_inspection(
    session: AsyncSession,
    reference: ReferenceData,
    known: dict[str, set[str]],
    *,
    actor: Actor,
    timezone: str,
) -> tuple[int, int]:
    """Add the zone's plans and scenarios that the registry never had; (plans, scenarios)."""
    context = InspectionContext(reference.zone, timezone, reference.incident_types)
    added = {PLAN: 0, SCENARIO: 0}
    entries: list[tuple[str, str, str, type[BaseModel], dict[str, Any]]] = [
        (SCENARIO, "scenarios.json", s.code, ScenarioCreate, scenario_document(s))
        for s in reference.scenarios
    ]
    entries += [
        (PLAN, "inspection_plans.json", p.id, PlanCreate, plan_document(p))
        for p in reference.inspection_plans
    ]
    for kind, file, key, shape, document in entries:
        if key in known.get(kind, set()):
            continue
        where = f"{file}: {key}"
        body = _body(shape, document, where)
        try:
            await inspection.create(session, kind=kind, body=body, actor=actor, context=context)
        except Problem as problem:
            raise ReferenceDataError(f"{where}: {problem.detail}") from None
        added[kind] += 1
    return added[PLAN], added[SCENARIO]
