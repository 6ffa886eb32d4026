"""Registry REST resources: departments, nests, drones and no-fly zones. Reads by role (see
api.py); the writes are one table of entity kinds, each created, updated and deleted alike
through the use cases of service.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select

from airgrid.auth import CurrentPrincipal, Role
from airgrid.problems import Problem
from airgrid.query_params import DateTime, Limit, Offset
from services.registry import service
from services.registry.api_deps import (
    ETAG_HEADER,
    WRITE_PROBLEMS,
    AdminPrincipal,
    IfMatch,
    InfraDep,
    actor_of,
    hidden,
    links_to_one,
    paged,
    with_etag,
    writing,
)
from services.registry.models import DepartmentRow, DroneRow, GeofenceRow, NestRow
from services.registry.schemas import (
    DepartmentCreate,
    DepartmentRead,
    DepartmentUpdate,
    DroneCreate,
    DroneRead,
    DroneStatus,
    DroneUpdate,
    GeofenceCreate,
    GeofenceKind,
    GeofenceRead,
    GeofenceUpdate,
    NestCreate,
    NestRead,
    NestStatus,
    NestUpdate,
    Page,
)

router = APIRouter()


# -- departments -------------------------------------------------------------------------


@router.get("/departments", response_model=Page[DepartmentRead], summary="List departments")
async def list_departments(
    principal: CurrentPrincipal, infra: InfraDep, limit: Limit = 50, offset: Offset = 0
) -> Page[DepartmentRead]:
    query = select(DepartmentRow)
    if principal.role == Role.DEPARTMENT:
        query = query.where(DepartmentRow.code == principal.department)
    elif principal.role == Role.GATEWAY:
        query = query.where(DepartmentRow.code.is_(None))
    async with infra.sessions() as session:
        total, rows = await paged(session, query, DepartmentRow.code, limit, offset)
    items = [DepartmentRead.model_validate(service.document_of(r)) for r in rows]
    return Page[DepartmentRead](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/departments/{code}",
    response_model=DepartmentRead,
    responses={200: {"headers": ETAG_HEADER}},
    summary="One department",
)
async def get_department(
    code: str, principal: CurrentPrincipal, infra: InfraDep, response: Response
) -> DepartmentRead:
    if principal.role == Role.GATEWAY or (
        principal.role == Role.DEPARTMENT and principal.department != code
    ):
        raise hidden("department", code)
    async with infra.sessions() as session:
        row = await service.find(session, "department", code)
    with_etag(response, row)
    return DepartmentRead.model_validate(service.document_of(row))


# -- nests -------------------------------------------------------------------------------


@router.get("/nests", response_model=Page[NestRead], summary="List nests (drone docks)")
async def list_nests(
    principal: CurrentPrincipal,
    infra: InfraDep,
    status: NestStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[NestRead]:
    query = select(NestRow)
    if principal.role == Role.GATEWAY:
        query = query.where(NestRow.id == principal.nest_id)
    if status:
        query = query.where(NestRow.status == status)
    async with infra.sessions() as session:
        total, rows = await paged(session, query, NestRow.id, limit, offset)
    items = [NestRead.model_validate(service.document_of(r)) for r in rows]
    return Page[NestRead](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/nests/{nest_id}",
    response_model=NestRead,
    responses={200: {"headers": ETAG_HEADER}},
    summary="One nest",
)
async def get_nest(
    nest_id: str, principal: CurrentPrincipal, infra: InfraDep, response: Response
) -> NestRead:
    if principal.role == Role.GATEWAY and principal.nest_id != nest_id:
        raise hidden("nest", nest_id)
    async with infra.sessions() as session:
        row = await service.find(session, "nest", nest_id)
    with_etag(response, row)
    return NestRead.model_validate(service.document_of(row))


# -- drones ------------------------------------------------------------------------------


@router.get("/drones", response_model=Page[DroneRead], summary="List drones")
async def list_drones(
    principal: CurrentPrincipal,
    infra: InfraDep,
    nest: Annotated[str | None, Query(max_length=64)] = None,
    status: DroneStatus | None = None,
    capability: Annotated[str | None, Query(max_length=32)] = None,
    model: Annotated[str | None, Query(max_length=64)] = None,
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
    if model:
        query = query.where(DroneRow.model == model)
    async with infra.sessions() as session:
        if capability:
            # Capabilities are a JSON list: filter in Python (the fleet is hundreds, not millions).
            everything = (await session.scalars(query.order_by(DroneRow.id))).all()
            matching = [r for r in everything if capability in r.capabilities]
            page: Sequence[Any] = matching[offset : offset + limit]
            total = len(matching)
        else:
            total, page = await paged(session, query, DroneRow.id, limit, offset)
    items = [DroneRead.model_validate(service.document_of(r)) for r in page]
    return Page[DroneRead](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/drones/{drone_id}",
    response_model=DroneRead,
    responses={200: {"headers": ETAG_HEADER}},
    summary="One drone",
)
async def get_drone(
    drone_id: str, principal: CurrentPrincipal, infra: InfraDep, response: Response
) -> DroneRead:
    async with infra.sessions() as session:
        row = await session.get(DroneRow, drone_id)
    if row is None or (principal.role == Role.GATEWAY and row.home_nest != principal.nest_id):
        raise hidden("drone", drone_id)
    with_etag(response, row)
    return DroneRead.model_validate(service.document_of(row))


# -- geofences ---------------------------------------------------------------------------


@router.get("/geofences", response_model=Page[GeofenceRead], summary="List no-fly zones")
async def list_geofences(
    principal: CurrentPrincipal,
    infra: InfraDep,
    kind: GeofenceKind | None = None,
    active_at: Annotated[
        DateTime | None, Query(description="Only zones active at this instant (with offset).")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[GeofenceRead]:
    query = select(GeofenceRow)
    if kind:
        query = query.where(GeofenceRow.kind == kind)
    if active_at is not None:
        if active_at.tzinfo is None:
            raise Problem(
                422,
                "Invalid request",
                "active_at needs a UTC offset, for example 2026-05-01T08:00:00Z.",
                kind="invalid-request",
                errors=[{"field": "active_at", "message": "needs a UTC offset"}],
            )
        query = query.where(
            (GeofenceRow.active_from.is_(None)) | (GeofenceRow.active_from <= active_at)
        ).where((GeofenceRow.active_until.is_(None)) | (GeofenceRow.active_until > active_at))
    async with infra.sessions() as session:
        total, rows = await paged(session, query, GeofenceRow.id, limit, offset)
    items = [GeofenceRead.model_validate(service.document_of(r)) for r in rows]
    return Page[GeofenceRead](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/geofences/{geofence_id}",
    response_model=GeofenceRead,
    responses={200: {"headers": ETAG_HEADER}},
    summary="One no-fly zone",
)
async def get_geofence(
    geofence_id: str, principal: CurrentPrincipal, infra: InfraDep, response: Response
) -> GeofenceRead:
    async with infra.sessions() as session:
        row = await service.find(session, "geofence", geofence_id)
    with_etag(response, row)
    return GeofenceRead.model_validate(service.document_of(row))


# -- writes: one table of entity kinds, the same create, update and delete for each ----------


@dataclass(frozen=True)
class WritableKind:
    """How one entity kind is written. `kind` names it to the use cases (service.ROWS gives its
    table), in the audit log and on airgrid.registry.changes. Every write is admin only."""

    kind: str
    path: str  # the collection; one entity is at {path}/{key}
    key: str  # the path parameter naming one entity
    create: type[BaseModel]
    update: type[BaseModel]
    read: type[BaseModel]
    create_summary: str
    update_summary: str
    delete_summary: str


WRITABLE_KINDS = (
    WritableKind(
        "department", "/departments", "code",
        DepartmentCreate, DepartmentUpdate, DepartmentRead,
        "Create a department (admin)",
        "Update a department (admin, If-Match)",
        "Delete a department (admin, If-Match)",
    ),
    WritableKind(
        "nest", "/nests", "nest_id",
        NestCreate, NestUpdate, NestRead,
        "Create a nest (admin)",
        "Update a nest: status, wind, slots (admin, If-Match)",
        "Delete an empty nest (admin, If-Match)",
    ),
    WritableKind(
        "drone", "/drones", "drone_id",
        DroneCreate, DroneUpdate, DroneRead,
        "Register a drone at a nest with a free charging slot (admin)",
        "Update a drone: home nest, status, capabilities (admin, If-Match)",
        "Delete a drone (admin, If-Match)",
    ),
    WritableKind(
        "geofence", "/geofences", "geofence_id",
        GeofenceCreate, GeofenceUpdate, GeofenceRead,
        "Create a no-fly zone from a GeoJSON polygon (admin)",
        "Update a no-fly zone (admin, If-Match)",
        "Delete a no-fly zone (admin, If-Match)",
    ),
)  # fmt: skip


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def _typed(endpoint: Endpoint, **annotations: Any) -> Endpoint:
    """Give a generic endpoint one kind's types where FastAPI reads them: the body's schema and
    the path parameter's name, so each kind's OpenAPI is as if written out by hand."""
    endpoint.__annotations__.update(annotations)
    return endpoint


def _route_writes(entity: WritableKind) -> None:
    async def create(
        body: BaseModel, principal: AdminPrincipal, request: Request, response: Response
    ) -> BaseModel:
        async with writing(request) as session:
            row = await service.create(
                session,
                kind=entity.kind,
                body=body,
                actor=actor_of(principal),
                zone=request.app.state.zone,
            )
        with_etag(response, row)
        return entity.read.model_validate(service.document_of(row))

    async def update(
        key: str,
        body: BaseModel,
        principal: AdminPrincipal,
        request: Request,
        response: Response,
        if_match: IfMatch = None,
    ) -> BaseModel:
        async with writing(request) as session:
            row = await service.update(
                session,
                kind=entity.kind,
                key=key,
                body=body,
                if_match=if_match,
                actor=actor_of(principal),
                zone=request.app.state.zone,
            )
        with_etag(response, row)
        return entity.read.model_validate(service.document_of(row))

    async def delete(
        key: str, principal: AdminPrincipal, request: Request, if_match: IfMatch = None
    ) -> Response:
        async with writing(request) as session:
            await service.delete(
                session, kind=entity.kind, key=key, if_match=if_match, actor=actor_of(principal)
            )
        return Response(status_code=204)

    key = Annotated[str, Path(alias=entity.key)]
    one = f"{entity.path}/{{{entity.key}}}"
    created: dict[int | str, dict[str, Any]] = {
        201: {"links": links_to_one(f"/v1{one}", entity.key, ("get", "patch", "delete"))}
    }
    router.add_api_route(
        entity.path,
        _typed(create, body=entity.create),
        methods=["POST"],
        name=f"create_{entity.kind}",
        status_code=201,
        response_model=entity.read,
        responses={**WRITE_PROBLEMS, **created},
        summary=entity.create_summary,
    )
    router.add_api_route(
        one,
        _typed(update, key=key, body=entity.update),
        methods=["PATCH"],
        name=f"update_{entity.kind}",
        response_model=entity.read,
        responses=WRITE_PROBLEMS,
        summary=entity.update_summary,
    )
    router.add_api_route(
        one,
        _typed(delete, key=key),
        methods=["DELETE"],
        name=f"delete_{entity.kind}",
        status_code=204,
        responses=WRITE_PROBLEMS,
        summary=entity.delete_summary,
    )


for _entity in WRITABLE_KINDS:
    _route_writes(_entity)
