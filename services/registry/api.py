"""Registry REST API: the fleet, nests, departments, no-fly zones and credentials."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.auth import CurrentPrincipal, Role, issue_credential, require_role
from airgrid.problems import Problem
from airgrid.service_app import Infrastructure
from services.registry.models import DepartmentRow, DroneRow, GeofenceRow, NestRow
from services.registry.schemas import (
    CredentialCreate,
    CredentialIssued,
    DepartmentRead,
    DroneRead,
    GeofenceRead,
    NestRead,
    Page,
)

router = APIRouter(prefix="/v1", tags=["registry"])

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]


def _infra(request: Request) -> Infrastructure:
    return request.app.state.infra  # type: ignore[no-any-return]


InfraDep = Annotated[Infrastructure, Depends(_infra)]


async def _page(session: AsyncSession, query: Any, order: Any, limit: int, offset: int) -> Any:
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = (await session.scalars(query.order_by(order).limit(limit).offset(offset))).all()
    return total, rows


def _nest(row: NestRow) -> NestRead:
    return NestRead(
        id=row.id,
        name=row.name,
        location={"type": "Point", "coordinates": [row.lon, row.lat]},
        charging_slots=row.charging_slots,
        status=row.status,
        wind_mps=row.wind_mps,
        wind_hold_mps=row.wind_hold_mps,
        version=row.version,
    )


@router.get("/departments", response_model=Page[DepartmentRead], summary="List departments")
async def list_departments(
    principal: CurrentPrincipal, infra: InfraDep, limit: Limit = 50, offset: Offset = 0
) -> Page[DepartmentRead]:
    async with infra.sessions() as session:
        total, rows = await _page(session, select(DepartmentRow), DepartmentRow.code, limit, offset)
    items = [DepartmentRead.model_validate(r) for r in rows]
    return Page[DepartmentRead](items=items, total=total, limit=limit, offset=offset)


@router.get("/nests", response_model=Page[NestRead], summary="List nests (drone docks)")
async def list_nests(
    principal: CurrentPrincipal,
    infra: InfraDep,
    status: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[NestRead]:
    query = select(NestRow)
    if status:
        query = query.where(NestRow.status == status)
    async with infra.sessions() as session:
        total, rows = await _page(session, query, NestRow.id, limit, offset)
    return Page[NestRead](items=[_nest(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/nests/{nest_id}", response_model=NestRead, summary="One nest")
async def get_nest(nest_id: str, principal: CurrentPrincipal, infra: InfraDep) -> NestRead:
    async with infra.sessions() as session:
        row = await session.get(NestRow, nest_id)
    if row is None:
        raise Problem(404, "Not found", f"No nest {nest_id}.")
    return _nest(row)


@router.get("/drones", response_model=Page[DroneRead], summary="List drones")
async def list_drones(
    principal: CurrentPrincipal,
    infra: InfraDep,
    nest: str | None = None,
    status: str | None = None,
    capability: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[DroneRead]:
    query = select(DroneRow)
    if principal.role == Role.GATEWAY:
        query = query.where(DroneRow.home_nest == principal.nest_id)
    if nest:
        query = query.where(DroneRow.home_nest == nest)
    if status:
        query = query.where(DroneRow.status == status)
    async with infra.sessions() as session:
        total, rows = await _page(session, query, DroneRow.id, limit, offset)
    items = [DroneRead.model_validate(r) for r in rows]
    if capability:
        items = [d for d in items if capability in d.capabilities]
    return Page[DroneRead](items=items, total=total, limit=limit, offset=offset)


@router.get("/drones/{drone_id}", response_model=DroneRead, summary="One drone")
async def get_drone(drone_id: str, principal: CurrentPrincipal, infra: InfraDep) -> DroneRead:
    async with infra.sessions() as session:
        row = await session.get(DroneRow, drone_id)
    if row is None or (principal.role == Role.GATEWAY and row.home_nest != principal.nest_id):
        raise Problem(404, "Not found", f"No drone {drone_id} that you may see.")
    return DroneRead.model_validate(row)


@router.get("/geofences", response_model=Page[GeofenceRead], summary="List no-fly zones")
async def list_geofences(
    principal: CurrentPrincipal, infra: InfraDep, limit: Limit = 100, offset: Offset = 0
) -> Page[GeofenceRead]:
    async with infra.sessions() as session:
        total, rows = await _page(session, select(GeofenceRow), GeofenceRow.id, limit, offset)
    items = [GeofenceRead.model_validate(r) for r in rows]
    return Page[GeofenceRead](items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/credentials",
    status_code=201,
    response_model=CredentialIssued,
    tags=["access"],
    summary="Issue a credential (admin); the key is returned once",
)
async def create_credential(
    body: CredentialCreate, principal: CurrentPrincipal, infra: InfraDep
) -> CredentialIssued:
    require_role(principal, Role.ADMIN)
    async with infra.sessions() as session, session.begin():
        if body.role == Role.DEPARTMENT:
            if not body.department or await session.get(DepartmentRow, body.department) is None:
                raise Problem(
                    422,
                    "Unknown department",
                    "A department credential needs an existing `department` code.",
                    errors=[{"field": "department", "message": "unknown department"}],
                )
        if body.role == Role.GATEWAY:
            if not body.nest_id or await session.get(NestRow, body.nest_id) is None:
                raise Problem(
                    422,
                    "Unknown nest",
                    "A gateway credential needs an existing `nest_id`.",
                    errors=[{"field": "nest_id", "message": "unknown nest"}],
                )
        row, key = issue_credential(
            session,
            role=body.role,
            department=body.department if body.role == Role.DEPARTMENT else None,
            nest_id=body.nest_id if body.role == Role.GATEWAY else None,
            label=body.label,
            expires_at=body.expires_at,
        )
    return CredentialIssued(
        id=row.id,
        role=body.role,
        department=row.department,
        nest_id=row.nest_id,
        label=row.label,
        expires_at=row.expires_at,
        key=key,
    )
