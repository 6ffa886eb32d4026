"""Dispatch use cases: an incident accepted (checked against the catalogue and the fleet)
or cancelled, each in one unit of work, and an incident read back as the API shows it."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from sqlalchemy import String, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Select

from airgrid import tracing
from airgrid.auth import Principal, Role
from airgrid.db import utcnow
from airgrid.geo import point_in_polygon
from airgrid.problems import Problem
from airgrid.reference import ReferenceData
from airgrid.topics import DEPARTMENT_CODES
from airgrid.v1 import incident_pb2
from services.dispatch import idempotency, store
from services.dispatch.fleet_view import Fleet
from services.dispatch.metrics import INCIDENTS_ACCEPTED
from services.dispatch.models import IncidentRow
from services.dispatch.schemas import (
    IncidentCreate,
    IncidentMission,
    IncidentRead,
    PointGeometry,
    StageRead,
)
from services.dispatch.unit_of_work import UnitOfWork

CAPABILITIES = frozenset(
    {"visual", "thermal", "zoom", "loudspeaker", "gas_sensor", "spotlight", "payload"}
)


def scene_point(body: IncidentCreate) -> tuple[float, float]:
    if isinstance(body.location, PointGeometry):
        return body.location.coordinates[0], body.location.coordinates[1]
    ring = body.location.coordinates[0][:-1]
    return sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)


def check_against_catalogue(body: IncidentCreate, reference: ReferenceData) -> None:
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
    lon, lat = scene_point(body)
    if not point_in_polygon(lon, lat, reference.zone.boundary):
        raise Problem(
            422,
            "Location outside the zone",
            f"[{lon}, {lat}] is outside {reference.zone.name}; airgrid covers only its zone.",
            kind="outside-zone",
            errors=[{"field": "location", "message": "outside the zone"}],
        )


def check_reachable(body: IncidentCreate, fleet: Fleet) -> None:
    """Refuse what no drone could ever serve, so it is not queued forever."""
    wanted = frozenset(body.required_capabilities)
    capable = sum(1 for caps in fleet.capabilities() if wanted <= caps)
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
    lon, lat = scene_point(body)
    for zone_id, ring in fleet.no_fly_zones(int(time.time() * 1000)):
        if point_in_polygon(lon, lat, ring):
            raise Problem(
                422,
                "Location inside a no-fly zone",
                f"[{lon}, {lat}] lies inside no-fly zone {zone_id}, which drones may not enter; "
                "report the nearest point outside it (drones observe from the edge).",
                kind="inside-no-fly-zone",
                errors=[{"field": "location", "message": f"inside no-fly zone {zone_id}"}],
            )


async def accept_incident(
    *,
    sessions: async_sessionmaker[AsyncSession],
    body: IncidentCreate,
    principal: Principal,
    idempotency_key: str | None,
) -> tuple[str, bytes]:
    """Store a new incident with its first stage and its record for the worker, in one unit
    of work with the idempotency key's result. Returns its id and its JSON body."""
    assert principal.department is not None
    lon, lat = scene_point(body)
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
    async with UnitOfWork(sessions) as uow:
        await uow.add_incident(row, event)
        # Just created: no mission yet and one stage, so no need to read them back.
        payload = orjson.dumps(jsonable_encoder(new_incident_read(row, now)))
        if idempotency_key is not None:
            await idempotency.complete(
                uow.session,
                caller=principal.caller,
                key=idempotency_key,
                status_code=201,
                body=payload,
            )
    INCIDENTS_ACCEPTED.labels(principal.department, str(body.priority)).inc()
    return incident_id, payload


async def cancel_incident(
    *,
    sessions: async_sessionmaker[AsyncSession],
    incident_id: str,
    principal: Principal,
    reason: str,
) -> IncidentRead:
    """Cancel an incident the principal may cancel, and publish the cancel for the worker,
    which ends its missions and sends their drones home."""
    async with UnitOfWork(sessions) as uow:
        row = await visible_incident(uow.session, incident_id, principal)
        if principal.role == Role.DEPARTMENT and row.department != principal.department:
            raise Problem(403, "Forbidden", "Only the reporting department may cancel it.")
        if row.status in ("completed", "cancelled") or await uow.was_cancelled(incident_id):
            raise Problem(409, "Already closed", f"Incident {incident_id} is already {row.status}.")
        event = incident_pb2.IncidentEvent(
            cancelled=incident_pb2.IncidentCancelled(
                incident_id=incident_id,
                department=row.department,
                cancelled_time_ms=int(time.time() * 1000),
                reason=reason,
            )
        )
        await uow.cancel_incident(incident=row, at=utcnow(), event=event)
        return await read_incident(uow.session, row)


async def read_incident(session: Any, row: IncidentRow) -> IncidentRead:
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
                mission_id=m.id,
                drone_id=m.drone_id,
                eta_seconds=m.eta_seconds,
                stage=m.stage,
                relieves=m.relieves,
            )
            for m in missions
        ],
        timeline=[StageRead(stage=s.stage, at=s.at) for s in timeline],
    )


def new_incident_read(row: IncidentRow, accepted_at: datetime) -> IncidentRead:
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


def visible_to(query: Select[Any], principal: Principal) -> Select[Any]:
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


async def visible_incident(session: Any, incident_id: str, principal: Principal) -> IncidentRow:
    query = visible_to(select(IncidentRow).where(IncidentRow.id == incident_id), principal)
    row = await session.scalar(query)
    if row is None:
        raise Problem(404, "Not found", f"No incident {incident_id} that you may see.")
    return row  # type: ignore[no-any-return]
