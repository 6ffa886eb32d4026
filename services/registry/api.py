"""Registry REST API: thin routers over the registry use cases (services/registry/service.py).

Reads: admin and operator see everything, a department sees its own department record and the
fleet, a gateway sees only its own nest and that nest's drones. Writes: admin only, with
If-Match. Every write is audited and published on airgrid.registry.changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.auth import (
    Authenticator,
    Credential,
    CurrentPrincipal,
    Principal,
    Role,
    current_principal,
    issue_credential,
    require_role,
)
from airgrid.bus import topic_name
from airgrid.db import utcnow
from airgrid.problems import Problem
from airgrid.query_params import DateTime, Limit, Offset
from airgrid.service_app import Infrastructure
from airgrid.topics import REGISTRY_CHANGES
from services.registry import service
from services.registry.changes import Row, publish_revoked
from services.registry.models import AuditRow, DepartmentRow, DroneRow, GeofenceRow, NestRow
from services.registry.schemas import (
    AuditRead,
    CredentialCreate,
    CredentialIssued,
    CredentialRead,
    CredentialRotate,
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
    Snapshot,
)


async def _refuse_nul(request: Request, principal: CurrentPrincipal) -> None:
    """No database text holds NUL: a path or query carrying one is a 422, never a 500."""
    texts = [*request.path_params.values(), *request.query_params.values()]
    if any("\x00" in str(text) for text in texts):
        raise Problem(
            422,
            "Invalid request",
            "The path or query contains a NUL character; remove it.",
            kind="invalid-request",
        )


router = APIRouter(prefix="/v1", tags=["registry"], dependencies=[Depends(_refuse_nul)])

T = TypeVar("T", bound=BaseModel)
EntityKind = Literal["department", "nest", "drone", "geofence"]
ENTITY_KINDS = ("department", "nest", "drone", "geofence")
IfMatch = Annotated[
    str | None,
    Header(description="The ETag from GET; required, a stale one answers 412.", max_length=200),
]


def _infra(request: Request) -> Infrastructure:
    return request.app.state.infra  # type: ignore[no-any-return]


InfraDep = Annotated[Infrastructure, Depends(_infra)]


async def _admin(principal: CurrentPrincipal) -> Principal:
    require_role(principal, Role.ADMIN)
    return principal


async def _admin_or_operator(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    require_role(principal, Role.ADMIN, Role.OPERATOR)
    return principal


# Role checks are dependencies, so a wrong role gets 403 before its body is even validated.
AdminPrincipal = Annotated[Principal, Depends(_admin)]
OverseerPrincipal = Annotated[Principal, Depends(_admin_or_operator)]

WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Duplicate id, full nest, or the entity is still in use"},
    412: {"description": "Stale If-Match: the entity changed since you read it"},
    428: {"description": "If-Match is missing: GET the entity and send its ETag"},
}
ETAG_HEADER = {"ETag": {"description": "The entity's version", "schema": {"type": "string"}}}


def links_to_one(path: str, key: str, methods: Sequence[str]) -> dict[str, Any]:
    """OpenAPI links from a created entity to the operations on it: its `id` (or `code`) is
    their path parameter. Clients and the stateful fuzzer follow them."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    field = "code" if key == "code" else "id"
    return {
        f"{method.capitalize()}Created": {
            "operationRef": f"#/paths/{pointer}/{method}",
            "parameters": {key: f"$response.body#/{field}"},
        }
        for method in methods
    }


def _actor(principal: Principal) -> service.Actor:
    return service.Actor(principal.credential_id, principal.role.value)


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
            "Another write got there first (a duplicate id, or a reference that is still in "
            "use); nothing was changed. Read the current state and retry.",
            kind="conflict",
        ) from None
    relay = getattr(request.app.state, "relay", None)
    if relay is not None:
        relay.notify()


async def _page(
    session: AsyncSession, query: Any, order: Any, limit: int, offset: int
) -> tuple[int, Sequence[Any]]:
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = (await session.scalars(query.order_by(order).limit(limit).offset(offset))).all()
    return total, rows


def _with_etag(response: Response, row: Row) -> None:
    response.headers["ETag"] = service.etag(row.version)


def _hidden(kind: str, key: str) -> Problem:
    return Problem(404, "Not found", f"No {kind} {key!r} that you may see.")


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
        total, rows = await _page(session, query, DepartmentRow.code, limit, offset)
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
        raise _hidden("department", code)
    async with infra.sessions() as session:
        row = await service.find(session, "department", code)
    _with_etag(response, row)
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
        total, rows = await _page(session, query, NestRow.id, limit, offset)
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
        raise _hidden("nest", nest_id)
    async with infra.sessions() as session:
        row = await service.find(session, "nest", nest_id)
    _with_etag(response, row)
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
            total, page = await _page(session, query, DroneRow.id, limit, offset)
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
        raise _hidden("drone", drone_id)
    _with_etag(response, row)
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
        total, rows = await _page(session, query, GeofenceRow.id, limit, offset)
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
    _with_etag(response, row)
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
        async with _writing(request) as session:
            row = await service.create(
                session,
                kind=entity.kind,
                body=body,
                actor=_actor(principal),
                zone=request.app.state.zone,
            )
        _with_etag(response, row)
        return entity.read.model_validate(service.document_of(row))

    async def update(
        key: str,
        body: BaseModel,
        principal: AdminPrincipal,
        request: Request,
        response: Response,
        if_match: IfMatch = None,
    ) -> BaseModel:
        async with _writing(request) as session:
            row = await service.update(
                session,
                kind=entity.kind,
                key=key,
                body=body,
                if_match=if_match,
                actor=_actor(principal),
                zone=request.app.state.zone,
            )
        _with_etag(response, row)
        return entity.read.model_validate(service.document_of(row))

    async def delete(
        key: str, principal: AdminPrincipal, request: Request, if_match: IfMatch = None
    ) -> Response:
        async with _writing(request) as session:
            await service.delete(
                session, kind=entity.kind, key=key, if_match=if_match, actor=_actor(principal)
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


# -- credentials -------------------------------------------------------------------------


def _credential_read(row: Credential) -> CredentialRead:
    return CredentialRead(
        id=row.id,
        role=Role(row.role),
        department=row.department,
        nest_id=row.nest_id,
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        replaces=row.replaces,
    )


async def _check_scope(session: AsyncSession, body: CredentialCreate) -> None:
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
    if body.expires_at is not None and (
        body.expires_at.tzinfo is None or body.expires_at <= utcnow()
    ):
        raise Problem(
            422,
            "Invalid expiry",
            "expires_at must be in the future and carry a UTC offset.",
            errors=[{"field": "expires_at", "message": "in the past or without offset"}],
        )


@router.post(
    "/credentials",
    status_code=201,
    response_model=CredentialIssued,
    tags=["access"],
    responses={
        201: {
            "links": links_to_one(
                "/v1/credentials/{credential_id}", "credential_id", ("get", "delete")
            )
        }
    },
    summary="Issue a credential (admin); the key is returned once",
)
async def create_credential(
    body: CredentialCreate, principal: AdminPrincipal, request: Request
) -> CredentialIssued:
    async with _writing(request) as session:
        await _check_scope(session, body)
        row, key = issue_credential(
            session,
            role=body.role,
            department=body.department if body.role == Role.DEPARTMENT else None,
            nest_id=body.nest_id if body.role == Role.GATEWAY else None,
            label=body.label,
            expires_at=body.expires_at,
        )
        await session.flush()
        service.audit(
            session,
            actor=_actor(principal),
            action="create",
            kind="credential",
            entity=row.id,
            before=None,
            after=service.credential_document(row),
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


@router.get(
    "/credentials",
    response_model=Page[CredentialRead],
    tags=["access"],
    summary="List credentials, never their secrets (admin, operator)",
)
async def list_credentials(
    principal: OverseerPrincipal,
    infra: InfraDep,
    role: Role | None = None,
    department: Annotated[str | None, Query(max_length=32)] = None,
    state: Literal["active", "revoked", "expired"] | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[CredentialRead]:
    query = select(Credential)
    if role:
        query = query.where(Credential.role == role.value)
    if department:
        query = query.where(Credential.department == department)
    now = utcnow()
    if state == "revoked":
        query = query.where(Credential.revoked_at.is_not(None))
    elif state == "expired":
        query = query.where(Credential.revoked_at.is_(None)).where(Credential.expires_at <= now)
    elif state == "active":
        query = query.where(Credential.revoked_at.is_(None)).where(
            Credential.expires_at.is_(None) | (Credential.expires_at > now)
        )
    async with infra.sessions() as session:
        total, rows = await _page(session, query, Credential.created_at, limit, offset)
    items = [_credential_read(r) for r in rows]
    return Page[CredentialRead](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/credentials/{credential_id}",
    response_model=CredentialRead,
    tags=["access"],
    summary="One live credential, never its secret (admin, operator)",
    description="A revoked (deleted) credential answers 404; `GET /v1/credentials?state=revoked` "
    "and the audit log still show it.",
)
async def get_credential(
    credential_id: str, principal: OverseerPrincipal, infra: InfraDep
) -> CredentialRead:
    async with infra.sessions() as session:
        row = await session.get(Credential, credential_id)
    if row is None or row.revoked_at is not None:
        raise _hidden("credential", credential_id)
    return _credential_read(row)


def _authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator  # type: ignore[no-any-return]


@router.post(
    "/credentials/{credential_id}/rotate",
    status_code=201,
    response_model=CredentialIssued,
    tags=["access"],
    responses={409: {"description": "The credential is already revoked"}},
    summary="Rotate a credential (admin): a new key of the same scope; the old one ends",
)
async def rotate_credential(
    credential_id: str, body: CredentialRotate, principal: AdminPrincipal, request: Request
) -> CredentialIssued:
    async with _writing(request) as session:
        old = await session.get(Credential, credential_id, with_for_update=True)
        if old is None:
            raise _hidden("credential", credential_id)
        if old.revoked_at is not None:
            raise Problem(
                409,
                "Credential revoked",
                f"Credential {credential_id} is revoked; issue a new one with POST "
                "/v1/credentials.",
                kind="credential-revoked",
            )
        before = service.credential_document(old)
        new, key = issue_credential(
            session,
            role=Role(old.role),
            department=old.department,
            nest_id=old.nest_id,
            label=old.label,
            expires_at=old.expires_at,
        )
        new.replaces = old.id
        if body.grace_seconds == 0:
            old.revoked_at = utcnow()
            publish_revoked(session, old.id)
        else:
            ends = utcnow() + timedelta(seconds=body.grace_seconds)
            old.expires_at = min(old.expires_at, ends) if old.expires_at else ends
        await session.flush()
        actor = _actor(principal)
        service.audit(
            session,
            actor=actor,
            action="rotate",
            kind="credential",
            entity=old.id,
            before=before,
            after=service.credential_document(old),
        )
        service.audit(
            session,
            actor=actor,
            action="create",
            kind="credential",
            entity=new.id,
            before=None,
            after=service.credential_document(new),
        )
    _authenticator(request).forget(credential_id)
    return CredentialIssued(
        id=new.id,
        role=Role(new.role),
        department=new.department,
        nest_id=new.nest_id,
        label=new.label,
        expires_at=new.expires_at,
        replaces=new.replaces,
        key=key,
    )


@router.delete(
    "/credentials/{credential_id}",
    status_code=204,
    tags=["access"],
    summary="Revoke a credential (admin): it stops working at once",
    description="Afterwards `GET /v1/credentials/{credential_id}` answers 404; revoking again "
    "answers 204.",
)
async def revoke_credential(
    credential_id: str, principal: AdminPrincipal, request: Request
) -> Response:
    async with _writing(request) as session:
        row = await session.get(Credential, credential_id, with_for_update=True)
        if row is None:
            raise _hidden("credential", credential_id)
        if row.revoked_at is None:
            before = service.credential_document(row)
            row.revoked_at = utcnow()
            await session.flush()
            service.audit(
                session,
                actor=_actor(principal),
                action="revoke",
                kind="credential",
                entity=row.id,
                before=before,
                after=service.credential_document(row),
            )
            publish_revoked(session, row.id)
    _authenticator(request).forget(credential_id)
    return Response(status_code=204)


# -- audit and snapshot ------------------------------------------------------------------


@router.get(
    "/audit",
    response_model=Page[AuditRead],
    tags=["access"],
    summary="The audit log of registry writes, newest first (admin, operator)",
)
async def list_audit(
    principal: OverseerPrincipal,
    infra: InfraDep,
    entity_kind: Annotated[str | None, Query(max_length=16)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AuditRead]:
    query = select(AuditRow)
    if entity_kind:
        query = query.where(AuditRow.entity_kind == entity_kind)
    if entity_id:
        query = query.where(AuditRow.entity_id == entity_id)
    if actor:
        query = query.where(AuditRow.actor == actor)
    async with infra.sessions() as session:
        total, rows = await _page(session, query, AuditRow.id.desc(), limit, offset)
    items = [AuditRead.model_validate(r, from_attributes=True) for r in rows]
    return Page[AuditRead](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/snapshot",
    response_model=Snapshot,
    summary="The whole registry now: rebuild from it plus airgrid.registry.changes",
)
async def snapshot(
    principal: OverseerPrincipal,
    infra: InfraDep,
    include: Annotated[
        list[EntityKind] | None,
        Query(description="Only these kinds (repeat the parameter); all when omitted."),
    ] = None,
) -> Snapshot:
    async with infra.sessions() as session, session.begin():
        return await take_snapshot(
            session, topic_name(infra.settings, REGISTRY_CHANGES), set(include or ENTITY_KINDS)
        )


async def take_snapshot(session: AsyncSession, topic: str, kinds: set[str]) -> Snapshot:
    taken_at = utcnow()

    async def everything(cls: type[Any], order: Any, read: type[T]) -> list[T]:
        if service.kind_of(cls()) not in kinds:
            return []
        rows: Sequence[Any] = (await session.scalars(select(cls).order_by(order))).all()
        return [read.model_validate(service.document_of(r)) for r in rows]

    return Snapshot(
        taken_at=taken_at,
        topic=topic,
        departments=await everything(DepartmentRow, DepartmentRow.code, DepartmentRead),
        nests=await everything(NestRow, NestRow.id, NestRead),
        drones=await everything(DroneRow, DroneRow.id, DroneRead),
        geofences=await everything(GeofenceRow, GeofenceRow.id, GeofenceRead),
    )
