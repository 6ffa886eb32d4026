"""Dispatch REST API: departments post and follow incidents; operators read everything."""

from __future__ import annotations

import enum
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from sqlalchemy import func, select
from starlette.responses import Response

from airgrid.auth import CurrentPrincipal, Role, require_role
from airgrid.query_params import DateTime, Limit, Offset, WholeNumber
from airgrid.reference import ReferenceData
from airgrid.service_app import Infrastructure
from airgrid.topics import DEPARTMENT_CODES
from services.dispatch import idempotency, service
from services.dispatch.domain.model import IncidentStatus, MissionStage
from services.dispatch.fleet_view import Fleet, LiveFleet, ReferenceFleet
from services.dispatch.models import IncidentRow, MissionRow
from services.dispatch.schemas import (
    CancelRequest,
    IncidentCreate,
    IncidentPage,
    IncidentRead,
    MissionPage,
    MissionRead,
)
from services.dispatch.stream import DispatchWorker

router = APIRouter(prefix="/v1", tags=["incidents"])

# The departments as an enum of the document, so a filter names one of them or is refused.
DepartmentCode = enum.StrEnum("DepartmentCode", {code: code for code in DEPARTMENT_CODES})  # type: ignore[misc]


def _infra(request: Request) -> Infrastructure:
    return request.app.state.infra  # type: ignore[no-any-return]


def _reference(request: Request) -> ReferenceData:
    return request.app.state.reference  # type: ignore[no-any-return]


InfraDep = Annotated[Infrastructure, Depends(_infra)]
ReferenceDep = Annotated[ReferenceData, Depends(_reference)]


def _fleet(request: Request, reference: ReferenceDep) -> Fleet:
    """The dispatch worker's registry view once it has caught up, else the packaged
    reference data standing in for the registry."""
    worker = getattr(request.app.state, "worker", None)
    if isinstance(worker, DispatchWorker) and worker.registry_view.caught_up.is_set():
        return LiveFleet(worker, reference)
    return ReferenceFleet(reference)


FleetDep = Annotated[Fleet, Depends(_fleet)]


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


@router.post(
    "/incidents",
    status_code=201,
    response_model=IncidentRead,
    summary="Report an incident",
    description="Returns 201 once the incident is durable; dispatch follows asynchronously.",
    responses={
        409: {"description": "Same Idempotency-Key still in flight"},
        422: {"description": "Invalid incident, or Idempotency-Key reused with another body"},
    },
)
async def create_incident(
    request: Request,
    body: IncidentCreate,
    principal: CurrentPrincipal,
    infra: InfraDep,
    reference: ReferenceDep,
    fleet: FleetDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    require_role(principal, Role.DEPARTMENT)
    assert principal.department is not None
    service.check_against_catalogue(body, reference)
    service.check_reachable(body, fleet)
    if idempotency_key is not None:
        fingerprint = idempotency.request_fingerprint(await request.body())
        replay = await idempotency.claim(
            infra.sessions, caller=principal.caller, key=idempotency_key, fingerprint=fingerprint
        )
        if replay is not None:
            return _json(replay.status_code, replay.body, {"Idempotent-Replayed": "true"})
    try:
        incident_id, payload = await service.accept_incident(
            sessions=infra.sessions,
            body=body,
            principal=principal,
            idempotency_key=idempotency_key,
        )
    except BaseException:
        if idempotency_key is not None:
            await idempotency.release(infra.sessions, caller=principal.caller, key=idempotency_key)
        raise
    return _json(201, payload, {"Location": f"/v1/incidents/{incident_id}"})


@router.get("/incidents", response_model=IncidentPage, summary="List incidents you may see")
async def list_incidents(
    principal: CurrentPrincipal,
    infra: InfraDep,
    status: Annotated[IncidentStatus | None, Query(description="The incident status.")] = None,
    department: Annotated[
        DepartmentCode | None, Query(description="Reporting department code.")
    ] = None,
    priority: Annotated[int | None, Query(ge=1, le=4), WholeNumber] = None,
    incident_type: Annotated[
        str | None, Query(alias="type", max_length=40, description="Type code.")
    ] = None,
    since: Annotated[DateTime | None, Query(description="Accepted at or after (RFC 3339).")] = None,
    until: Annotated[DateTime | None, Query(description="Accepted before (RFC 3339).")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> IncidentPage:
    query = service.visible_to(select(IncidentRow), principal)
    if status:
        query = query.where(IncidentRow.status == status.value)
    if department:
        query = query.where(IncidentRow.department == department)
    if priority:
        query = query.where(IncidentRow.priority == priority)
    if incident_type:
        query = query.where(IncidentRow.type == incident_type)
    if since is not None:
        query = query.where(IncidentRow.accepted_at >= since)
    if until is not None:
        query = query.where(IncidentRow.accepted_at < until)
    async with infra.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = (
            await session.scalars(
                query.order_by(IncidentRow.accepted_at.desc()).limit(limit).offset(offset)
            )
        ).all()
        items = [await service.read_incident(session, r) for r in rows]
    return IncidentPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/incidents/{incident_id}", response_model=IncidentRead, summary="One incident")
async def get_incident(
    incident_id: str, principal: CurrentPrincipal, infra: InfraDep
) -> IncidentRead:
    async with infra.sessions() as session:
        row = await service.visible_incident(session, incident_id, principal)
        return await service.read_incident(session, row)


@router.post(
    "/incidents/{incident_id}/cancel",
    response_model=IncidentRead,
    summary="Cancel an incident",
    responses={409: {"description": "The incident is already completed or cancelled"}},
)
async def cancel_incident(
    incident_id: str,
    principal: CurrentPrincipal,
    infra: InfraDep,
    body: CancelRequest | None = None,
) -> IncidentRead:
    require_role(principal, Role.DEPARTMENT, Role.ADMIN)
    reason = body.reason if body else "cancelled by the department"
    return await service.cancel_incident(
        sessions=infra.sessions, incident_id=incident_id, principal=principal, reason=reason
    )


@router.get("/missions", response_model=MissionPage, summary="List missions you may see")
async def list_missions(
    principal: CurrentPrincipal,
    infra: InfraDep,
    stage: Annotated[MissionStage | None, Query(description="The mission stage.")] = None,
    drone_id: Annotated[str | None, Query(max_length=64)] = None,
    incident_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> MissionPage:
    visible = service.visible_to(select(IncidentRow.id), principal)
    query = select(MissionRow).where(MissionRow.incident_id.in_(visible.scalar_subquery()))
    if stage:
        query = query.where(MissionRow.stage == stage.value)
    if incident_id:
        query = query.where(MissionRow.incident_id == incident_id)
    if drone_id:
        query = query.where(MissionRow.drone_id == drone_id)
    async with infra.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = (
            await session.scalars(
                query.order_by(MissionRow.created_at.desc()).limit(limit).offset(offset)
            )
        ).all()
    items = [
        MissionRead(
            id=m.id,
            incident_id=m.incident_id,
            drone_id=m.drone_id,
            slot=m.slot,
            eta_seconds=m.eta_seconds,
            stage=m.stage,
            from_nest_id=m.from_nest_id,
            relieves=m.relieves,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )
        for m in rows
    ]
    return MissionPage(items=items, total=total, limit=limit, offset=offset)
