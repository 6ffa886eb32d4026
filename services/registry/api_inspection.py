"""Inspection REST: plans (areas and corridors to revisit) and the scenario catalogue.

Any credential reads (they are the zone's shared reference data); writes are admin only,
with If-Match on update and delete, audited and published on airgrid.registry.changes like
every registry entity. Plans live at /v1/inspection-plans, the scenarios at
/v1/inspection/scenarios.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.auth import CurrentPrincipal, Principal, Role, require_role
from airgrid.problems import Problem
from airgrid.query_params import Limit, Offset
from airgrid.service_app import Infrastructure
from services.registry import inspection
from services.registry.inspection import PLAN, SCENARIO, InspectionContext
from services.registry.inspection_schemas import (
    SCENARIO_CODE,
    PlanCreate,
    PlanKind,
    PlanRead,
    PlanUpdate,
    ScenarioCreate,
    ScenarioRead,
    ScenarioUpdate,
)
from services.registry.models import InspectionPlanRow, ScenarioRow
from services.registry.schemas import DEPARTMENT_CODE, ENTITY_ID, Page
from services.registry.service import Actor, etag

router = APIRouter(prefix="/v1", tags=["inspection"])

PLAN_PATH = "/inspection-plans"
PLAN_ONE = f"{PLAN_PATH}/{{plan_id}}"
SCENARIO_PATH = "/inspection/scenarios"

IfMatch = Annotated[
    str | None,
    Header(description="The ETag from GET; required, a stale one answers 412.", max_length=200),
]
PlanId = Annotated[str, Path(pattern=ENTITY_ID, description="The plan's id.")]
ScenarioCode = Annotated[str, Path(pattern=SCENARIO_CODE, description="The scenario's code.")]
DepartmentFilter = Annotated[
    str | None, Query(pattern=DEPARTMENT_CODE, description="Only those this department owns.")
]
ETAG_HEADER = {"ETag": {"description": "The entity's version", "schema": {"type": "string"}}}
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Duplicate id, or a concurrent write got there first"},
    412: {"description": "Stale If-Match: the entity changed since you read it"},
    428: {"description": "If-Match is missing: GET the entity and send its ETag"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such entity"}}


def _infra(request: Request) -> Infrastructure:
    return request.app.state.infra  # type: ignore[no-any-return]


def _context(request: Request) -> InspectionContext:
    return request.app.state.inspection  # type: ignore[no-any-return]


async def _admin(principal: CurrentPrincipal) -> Principal:
    require_role(principal, Role.ADMIN)
    return principal


InfraDep = Annotated[Infrastructure, Depends(_infra)]
ContextDep = Annotated[InspectionContext, Depends(_context)]
# A dependency, so a wrong role gets 403 before its body is even validated.
AdminPrincipal = Annotated[Principal, Depends(_admin)]


def _actor(principal: Principal) -> Actor:
    return Actor(principal.credential_id, principal.role.value)


@contextlib.asynccontextmanager
async def _writing(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction for a write; the outbox relay is woken once it commits."""
    try:
        async with _infra(request).sessions() as session, session.begin():
            yield session
    except IntegrityError:
        raise Problem(
            409,
            "Conflict",
            "Another write got there first (a duplicate id); nothing was changed. Read the "
            "current state and retry.",
            kind="conflict",
        ) from None
    relay = getattr(request.app.state, "relay", None)
    if relay is not None:
        relay.notify()


def _links(path: str, key: str, field: str) -> dict[str, Any]:
    """OpenAPI links from a created entity to the operations on it (clients and the stateful
    fuzzer follow them)."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {
        f"{method.capitalize()}Created": {
            "operationRef": f"#/paths/{pointer}/{method}",
            "parameters": {key: f"$response.body#/{field}"},
        }
        for method in ("get", "patch", "delete")
    }


# -- plans -------------------------------------------------------------------------------


async def list_plans(
    principal: CurrentPrincipal,
    infra: InfraDep,
    context: ContextDep,
    department: DepartmentFilter = None,
    kind: Annotated[PlanKind | None, Query(description="area or corridor")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[PlanRead]:
    query = select(InspectionPlanRow)
    if department:
        query = query.where(InspectionPlanRow.department == department)
    async with infra.sessions() as session:
        rows = (await session.scalars(query.order_by(InspectionPlanRow.id))).all()
    if kind:
        # The kind follows from the geometry's type (a JSON column): filtered here, plans
        # are tens per department, not millions.
        rows = [r for r in rows if (r.geometry["type"] == "LineString") == (kind == "corridor")]
    items = [inspection.plan_read(r, context.timezone) for r in rows[offset : offset + limit]]
    return Page[PlanRead](items=items, total=len(rows), limit=limit, offset=offset)


async def get_plan(
    plan_id: PlanId,
    principal: CurrentPrincipal,
    infra: InfraDep,
    context: ContextDep,
    response: Response,
) -> PlanRead:
    async with infra.sessions() as session:
        row = await inspection.find(session, PLAN, plan_id)
    response.headers["ETag"] = etag(row.version)
    assert isinstance(row, InspectionPlanRow)
    return inspection.plan_read(row, context.timezone)


async def create_plan(
    body: PlanCreate,
    principal: AdminPrincipal,
    request: Request,
    context: ContextDep,
    response: Response,
) -> PlanRead:
    async with _writing(request) as session:
        row = await inspection.create(
            session, kind=PLAN, body=body, actor=_actor(principal), context=context
        )
    response.headers["ETag"] = etag(row.version)
    assert isinstance(row, InspectionPlanRow)
    return inspection.plan_read(row, context.timezone)


async def update_plan(
    plan_id: PlanId,
    body: PlanUpdate,
    principal: AdminPrincipal,
    request: Request,
    context: ContextDep,
    response: Response,
    if_match: IfMatch = None,
) -> PlanRead:
    async with _writing(request) as session:
        row = await inspection.update(
            session,
            kind=PLAN,
            key=plan_id,
            body=body,
            if_match=if_match,
            actor=_actor(principal),
            context=context,
        )
    response.headers["ETag"] = etag(row.version)
    assert isinstance(row, InspectionPlanRow)
    return inspection.plan_read(row, context.timezone)


async def delete_plan(
    plan_id: PlanId,
    principal: AdminPrincipal,
    request: Request,
    context: ContextDep,
    if_match: IfMatch = None,
) -> Response:
    async with _writing(request) as session:
        await inspection.delete(
            session,
            kind=PLAN,
            key=plan_id,
            if_match=if_match,
            actor=_actor(principal),
            context=context,
        )
    return Response(status_code=204)


router.add_api_route(
    PLAN_PATH,
    list_plans,
    methods=["GET"],
    name="list_inspection_plans",
    response_model=Page[PlanRead],
    summary="List inspection plans (any role)",
)
router.add_api_route(
    PLAN_ONE,
    get_plan,
    methods=["GET"],
    name="get_inspection_plan",
    response_model=PlanRead,
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND},
    summary="One inspection plan (any role)",
)
router.add_api_route(
    PLAN_PATH,
    create_plan,
    methods=["POST"],
    name="create_inspection_plan",
    status_code=201,
    response_model=PlanRead,
    responses={
        **WRITE_PROBLEMS,
        201: {"headers": ETAG_HEADER, "links": _links(f"/v1{PLAN_ONE}", "plan_id", "id")},
    },
    summary="Create an inspection plan: an area or a corridor of a department (admin)",
)
router.add_api_route(
    PLAN_ONE,
    update_plan,
    methods=["PATCH"],
    name="update_inspection_plan",
    response_model=PlanRead,
    responses={**WRITE_PROBLEMS, **NOT_FOUND, 200: {"headers": ETAG_HEADER}},
    summary="Update an inspection plan (admin, If-Match)",
)
router.add_api_route(
    PLAN_ONE,
    delete_plan,
    methods=["DELETE"],
    name="delete_inspection_plan",
    status_code=204,
    responses={**WRITE_PROBLEMS, **NOT_FOUND},
    summary="Delete an inspection plan (admin, If-Match)",
)


# -- scenarios ---------------------------------------------------------------------------


@router.get(
    SCENARIO_PATH,
    response_model=Page[ScenarioRead],
    summary="List the scenario catalogue (any role)",
)
async def list_scenarios(
    principal: CurrentPrincipal,
    infra: InfraDep,
    department: DepartmentFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[ScenarioRead]:
    async with infra.sessions() as session:
        rows = (await session.scalars(select(ScenarioRow).order_by(ScenarioRow.code))).all()
        total_all = await session.scalar(select(func.count()).select_from(ScenarioRow)) or 0
    if department:
        # Owner departments are a JSON list: filtered here (the catalogue is tens of entries).
        rows = [r for r in rows if department in r.departments]
    total = len(rows) if department else total_all
    items = [inspection.scenario_read(r) for r in rows[offset : offset + limit]]
    return Page[ScenarioRead](items=items, total=total, limit=limit, offset=offset)


@router.get(
    f"{SCENARIO_PATH}/{{code}}",
    response_model=ScenarioRead,
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND},
    summary="One scenario (any role)",
)
async def get_scenario(
    code: ScenarioCode, principal: CurrentPrincipal, infra: InfraDep, response: Response
) -> ScenarioRead:
    async with infra.sessions() as session:
        row = await inspection.find(session, SCENARIO, code)
    response.headers["ETag"] = etag(row.version)
    assert isinstance(row, ScenarioRow)
    return inspection.scenario_read(row)


@router.post(
    SCENARIO_PATH,
    status_code=201,
    response_model=ScenarioRead,
    responses={
        **WRITE_PROBLEMS,
        201: {
            "headers": ETAG_HEADER,
            "links": _links(f"/v1{SCENARIO_PATH}/{{code}}", "code", "code"),
        },
    },
    summary="Add a scenario to the catalogue (admin)",
)
async def create_scenario(
    body: ScenarioCreate,
    principal: AdminPrincipal,
    request: Request,
    context: ContextDep,
    response: Response,
) -> ScenarioRead:
    async with _writing(request) as session:
        row = await inspection.create(
            session, kind=SCENARIO, body=body, actor=_actor(principal), context=context
        )
    response.headers["ETag"] = etag(row.version)
    assert isinstance(row, ScenarioRow)
    return inspection.scenario_read(row)


@router.patch(
    f"{SCENARIO_PATH}/{{code}}",
    response_model=ScenarioRead,
    responses={**WRITE_PROBLEMS, **NOT_FOUND, 200: {"headers": ETAG_HEADER}},
    summary="Update a scenario: owners, merge rule, escalation (admin, If-Match)",
)
async def update_scenario(
    code: ScenarioCode,
    body: ScenarioUpdate,
    principal: AdminPrincipal,
    request: Request,
    context: ContextDep,
    response: Response,
    if_match: IfMatch = None,
) -> ScenarioRead:
    async with _writing(request) as session:
        row = await inspection.update(
            session,
            kind=SCENARIO,
            key=code,
            body=body,
            if_match=if_match,
            actor=_actor(principal),
            context=context,
        )
    response.headers["ETag"] = etag(row.version)
    assert isinstance(row, ScenarioRow)
    return inspection.scenario_read(row)


@router.delete(
    f"{SCENARIO_PATH}/{{code}}",
    status_code=204,
    responses={**WRITE_PROBLEMS, **NOT_FOUND},
    summary="Remove a scenario from the catalogue (admin, If-Match)",
)
async def delete_scenario(
    code: ScenarioCode,
    principal: AdminPrincipal,
    request: Request,
    context: ContextDep,
    if_match: IfMatch = None,
) -> Response:
    async with _writing(request) as session:
        await inspection.delete(
            session,
            kind=SCENARIO,
            key=code,
            if_match=if_match,
            actor=_actor(principal),
            context=context,
        )
    return Response(status_code=204)
