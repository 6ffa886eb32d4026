"""Dispatch REST API: departments post and follow incidents; operators read everything."""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.sql import Select
from starlette.responses import Response

from airgrid import tracing
from airgrid.auth import CurrentPrincipal, Principal, Role, require_role
from airgrid.db import transaction, utcnow
from airgrid.geo import point_in_polygon
from airgrid.outbox import OutboxRecord, enqueue
from airgrid.problems import Problem
from airgrid.query_params import DateTime, Limit, Offset, WholeNumber
from airgrid.reference import ReferenceData
from airgrid.service_app import Infrastructure
from airgrid.topics import DEPARTMENT_CODES, INCIDENTS
from airgrid.v1 import incident_pb2
from services.dispatch import idempotency, store
from services.dispatch.domain.model import IncidentStatus, MissionStage
from services.dispatch.metrics import INCIDENTS_ACCEPTED
from services.dispatch.models import IncidentRow, MissionRow
from services.dispatch.schemas import (
    CancelRequest,
    IncidentCreate,
    IncidentMission,
    IncidentPage,
    IncidentRead,
    MissionPage,
    MissionRead,
    PointGeometry,
    StageRead,
)

router = APIRouter(prefix="/v1", tags=["incidents"])

CAPABILITIES = frozenset(
    {"visual", "thermal", "zoom", "loudspeaker", "gas_sensor", "spotlight", "payload"}
)
# The departments as an enum of the document, so a filter names one of them or is refused.
DepartmentCode = enum.StrEnum("DepartmentCode", {code: code for code in DEPARTMENT_CODES})  # type: ignore[misc]
NO_FLY_KINDS = ("no-fly", "temporary")


def _infra(request: Request) -> Infrastructure:
    return request.app.state.infra  # type: ignore[no-any-return]


def _reference(request: Request) -> ReferenceData:
    return request.app.state.reference  # type: ignore[no-any-return]


InfraDep = Annotated[Infrastructure, Depends(_infra)]
ReferenceDep = Annotated[ReferenceData, Depends(_reference)]


def _scene_point(body: IncidentCreate) -> tuple[float, float]:
    if isinstance(body.location, PointGeometry):
        return body.location.coordinates[0], body.location.coordinates[1]
    ring = body.location.coordinates[0][:-1]
    return sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)


def _live_worker(request: Request) -> Any | None:
    """The dispatch worker of this process once its registry view has caught up, else None
    (then the packaged reference data stands in for the registry)."""
    worker = getattr(request.app.state, "worker", None)
    view = getattr(worker, "registry_view", None)
    caught_up = getattr(view, "caught_up", None)
    return worker if caught_up is not None and caught_up.is_set() else None


def _fleet_capabilities(request: Request, reference: ReferenceData) -> list[frozenset[str]]:
    """Capabilities of every registered drone, whatever its status today (it may return)."""
    worker = _live_worker(request)
    specs = getattr(worker, "specs", None) or {}
    if specs:
        return [frozenset(spec.capabilities) for spec in specs.values()]
    return [frozenset(d.capabilities) for d in reference.drones]


def _no_fly_zones(request: Request, reference: ReferenceData) -> Iterable[tuple[str, Any]]:
    """(id, ring) of the no-fly polygons in force now: the live registry view when there is
    one, else the reference geofences."""
    now_ms = int(time.time() * 1000)
    worker = _live_worker(request)
    if worker is not None:
        for zone in dict(getattr(worker, "zone_views", {})).values():
            if zone.active_at(now_ms):
                yield zone.id, zone.ring
        return
    for fence in reference.geofences:
        if fence.kind not in NO_FLY_KINDS:
            continue
        starts = _iso_ms(fence.active_from)
        ends = _iso_ms(fence.active_until)
        if (starts and now_ms < starts) or (ends and now_ms > ends):
            continue
        yield fence.id, fence.ring


def _iso_ms(value: str | None) -> int:
    return int(datetime.fromisoformat(value).timestamp() * 1000) if value else 0


def _validate_reachable(body: IncidentCreate, request: Request, reference: ReferenceData) -> None:
    """Refuse what no drone could ever serve, so it is not queued forever."""
    wanted = frozenset(body.required_capabilities)
    capable = sum(1 for caps in _fleet_capabilities(request, reference) if wanted <= caps)
    if capable == 0:
        raise Problem(
            422,
            "Impossible capability",
            f"No drone of the fleet carries all of {', '.join(sorted(wanted))}; ask for fewer "
            "capabilities on one drone, or post one incident per capability.",
            kind="impossible-capability",
            errors=[{"field": "required_capabilities", "message": "no drone has them all"}],
        )
    if capable < body.drones_needed:
        raise Problem(
            422,
            "Not enough capable drones",
            f"drones_needed is {body.drones_needed} but the fleet has only {capable} drone(s) "
            f"with {', '.join(sorted(wanted)) or 'no special capability'}; ask for at most "
            f"{capable}.",
            kind="impossible-capability",
            errors=[{"field": "drones_needed", "message": f"at most {capable}"}],
        )
    lon, lat = _scene_point(body)
    for zone_id, ring in _no_fly_zones(request, reference):
        if point_in_polygon(lon, lat, ring):
            raise Problem(
                422,
                "Location inside a no-fly zone",
                f"[{lon}, {lat}] lies inside no-fly zone {zone_id}, which drones may not enter; "
                "report the nearest point outside it (drones observe from the edge).",
                kind="inside-no-fly-zone",
                errors=[{"field": "location", "message": f"inside no-fly zone {zone_id}"}],
            )


def _validate_against_catalogue(body: IncidentCreate, reference: ReferenceData) -> None:
    types = {t.code for t in reference.incident_types}
    if body.type not in types:
        raise Problem(
            422,
            "Unknown incident type",
            f"type {body.type!r} is not in the catalogue; use one of: {', '.join(sorted(types))}.",
            kind="unknown-incident-type",
            errors=[{"field": "type", "message": "not in the catalogue"}],
        )
    unknown = sorted(set(body.required_capabilities) - CAPABILITIES)
    if unknown:
        raise Problem(
            422,
            "Unknown capability",
            f"required_capabilities has {', '.join(unknown)}; known: "
            f"{', '.join(sorted(CAPABILITIES))}.",
            kind="unknown-capability",
            errors=[{"field": "required_capabilities", "message": "unknown capability"}],
        )
    wrong = sorted(set(body.shared_with) - set(DEPARTMENT_CODES))
    if wrong:
        raise Problem(
            422,
            "Unknown department",
            f"shared_with names unknown departments: {', '.join(wrong)}.",
            kind="unknown-department",
            errors=[{"field": "shared_with", "message": "unknown department code"}],
        )
    lon, lat = _scene_point(body)
    if not point_in_polygon(lon, lat, reference.zone.boundary):
        raise Problem(
            422,
            "Location outside the zone",
            f"[{lon}, {lat}] is outside {reference.zone.name}; airgrid covers only its zone.",
            kind="outside-zone",
            errors=[{"field": "location", "message": "outside the zone"}],
        )


async def _read(session: Any, row: IncidentRow) -> IncidentRead:
    missions = await store.incident_missions(session, row.id)
    timeline = await store.incident_timeline(session, row.id)
    return IncidentRead(
        id=row.id,
        department=row.department,
        type=row.type,
        priority=row.priority,
        status=row.status,
        status_reason=row.status_reason,
        location=row.geometry,
        required_capabilities=row.required_capabilities,
        drones_needed=row.drones_needed,
        on_scene_seconds=row.on_scene_seconds,
        description=row.description,
        shared_with=row.shared_with,
        accepted_at=row.accepted_at,
        missions=[
            IncidentMission(
                mission_id=m.id, drone_id=m.drone_id, eta_seconds=m.eta_seconds, stage=m.stage
            )
            for m in missions
        ],
        timeline=[StageRead(stage=s.stage, at=s.at) for s in timeline],
    )


def _read_new(row: IncidentRow, accepted_at: datetime) -> IncidentRead:
    return IncidentRead(
        id=row.id,
        department=row.department,
        type=row.type,
        priority=row.priority,
        status=row.status,
        status_reason=None,
        location=row.geometry,
        required_capabilities=row.required_capabilities,
        drones_needed=row.drones_needed,
        on_scene_seconds=row.on_scene_seconds,
        description=row.description,
        shared_with=row.shared_with,
        accepted_at=accepted_at,
        missions=[],
        timeline=[StageRead(stage="accepted", at=accepted_at)],
    )


def _visible_to(query: Select[Any], principal: Principal) -> Select[Any]:
    if principal.role in (Role.OPERATOR, Role.ADMIN):
        return query
    if principal.role != Role.DEPARTMENT or not principal.department:
        raise Problem(403, "Forbidden", "Only departments and operators read incidents.")
    return query.where(
        or_(
            IncidentRow.department == principal.department,
            cast(IncidentRow.shared_with, String).like(f'%"{principal.department}"%'),
        )
    )


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
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    require_role(principal, Role.DEPARTMENT)
    assert principal.department is not None
    _validate_against_catalogue(body, reference)
    _validate_reachable(body, request, reference)
    if idempotency_key is not None:
        fingerprint = idempotency.request_fingerprint(await request.body())
        replay = await idempotency.claim(
            infra.sessions, caller=principal.caller, key=idempotency_key, fingerprint=fingerprint
        )
        if replay is not None:
            return _json(replay.status_code, replay.body, {"Idempotent-Replayed": "true"})
    try:
        return await _accept(body, principal, infra, idempotency_key)
    except BaseException:
        if idempotency_key is not None:
            await idempotency.release(infra.sessions, caller=principal.caller, key=idempotency_key)
        raise


async def _accept(
    body: IncidentCreate,
    principal: Principal,
    infra: Infrastructure,
    idempotency_key: str | None,
) -> Response:
    assert principal.department is not None
    lon, lat = _scene_point(body)
    now = utcnow()
    incident_id = f"inc_{uuid.uuid4().hex[:24]}"
    tracing.annotate(incident_id=incident_id)
    row = IncidentRow(
        id=incident_id,
        department=principal.department,
        reported_by=principal.credential_id,
        type=body.type,
        priority=body.priority,
        lon=lon,
        lat=lat,
        geometry=body.location.model_dump(),
        required_capabilities=sorted(set(body.required_capabilities)),
        drones_needed=body.drones_needed,
        on_scene_seconds=body.on_scene_seconds,
        description=body.description,
        shared_with=sorted(set(body.shared_with)),
        status="accepted",
        accepted_at=now,
    )
    event = incident_pb2.IncidentEvent(
        accepted=incident_pb2.Incident(
            id=incident_id,
            department=principal.department,
            type=body.type,
            priority=body.priority,
            lon=lon,
            lat=lat,
            geometry_json=orjson.dumps(row.geometry).decode(),
            required_capabilities=row.required_capabilities,
            drones_needed=body.drones_needed,
            on_scene_seconds=body.on_scene_seconds,
            description=body.description,
            accepted_time_ms=int(now.timestamp() * 1000),
            shared_with=row.shared_with,
        )
    )
    async with transaction(infra.sessions) as session:
        session.add(row)
        await session.flush()
        await store.add_stage(session, incident_id=incident_id, stage="accepted", at=now)
        enqueue(
            session,
            service="dispatch",
            topic=INCIDENTS,
            key=incident_id,
            ce_type="airgrid.incident.accepted",
            payload=event.SerializeToString(),
            ce_id=f"{incident_id}:accepted",
        )
        # Just created: no mission yet and one stage, so no need to read them back.
        read = _read_new(row, now)
        payload = orjson.dumps(jsonable_encoder(read))
        if idempotency_key is not None:
            await idempotency.complete(
                session,
                caller=principal.caller,
                key=idempotency_key,
                status_code=201,
                body=payload,
            )
    INCIDENTS_ACCEPTED.labels(principal.department, str(body.priority)).inc()
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
    query = _visible_to(select(IncidentRow), principal)
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
        items = [await _read(session, r) for r in rows]
    return IncidentPage(items=items, total=total, limit=limit, offset=offset)


async def _visible_incident(session: Any, incident_id: str, principal: Principal) -> IncidentRow:
    query = _visible_to(select(IncidentRow).where(IncidentRow.id == incident_id), principal)
    row = await session.scalar(query)
    if row is None:
        raise Problem(404, "Not found", f"No incident {incident_id} that you may see.")
    return row  # type: ignore[no-any-return]


@router.get("/incidents/{incident_id}", response_model=IncidentRead, summary="One incident")
async def get_incident(
    incident_id: str, principal: CurrentPrincipal, infra: InfraDep
) -> IncidentRead:
    async with infra.sessions() as session:
        row = await _visible_incident(session, incident_id, principal)
        return await _read(session, row)


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
    async with transaction(infra.sessions) as session:
        row = await _visible_incident(session, incident_id, principal)
        if principal.role == Role.DEPARTMENT and row.department != principal.department:
            raise Problem(403, "Forbidden", "Only the reporting department may cancel it.")
        cancelled_before = await session.scalar(
            select(OutboxRecord.id).where(OutboxRecord.ce_id == f"{incident_id}:cancelled")
        )
        if row.status in ("completed", "cancelled") or cancelled_before is not None:
            raise Problem(409, "Already closed", f"Incident {incident_id} is already {row.status}.")
        now = utcnow()
        await store.cancel_incident(session, incident=row, at=now, reason=reason)
        event = incident_pb2.IncidentEvent(
            cancelled=incident_pb2.IncidentCancelled(
                incident_id=incident_id,
                department=row.department,
                cancelled_time_ms=int(time.time() * 1000),
                reason=reason,
            )
        )
        enqueue(
            session,
            service="dispatch",
            topic=INCIDENTS,
            key=incident_id,
            ce_type="airgrid.incident.cancelled",
            payload=event.SerializeToString(),
            ce_id=f"{incident_id}:cancelled",
        )
        await session.flush()
        read = await _read(session, row)
    return read


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
    visible = _visible_to(select(IncidentRow.id), principal)
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
            created_at=m.created_at,
            updated_at=m.updated_at,
        )
        for m in rows
    ]
    return MissionPage(items=items, total=total, limit=limit, offset=offset)
