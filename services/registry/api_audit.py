"""Registry REST resources: the audit log of writes and the snapshot of the whole registry."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from airgrid.bus import topic_name
from airgrid.query_params import Limit, Offset
from airgrid.topics import REGISTRY_CHANGES
from services.registry import service
from services.registry.api_deps import InfraDep, OverseerPrincipal, paged
from services.registry.models import AuditRow
from services.registry.schemas import (
    AuditRead,
    Page,
    Snapshot,
)

router = APIRouter()

EntityKind = Literal["department", "nest", "drone", "geofence"]
ENTITY_KINDS = ("department", "nest", "drone", "geofence")


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
        total, rows = await paged(session, query, AuditRow.id.desc(), limit, offset)
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
        return await service.take_snapshot(
            session, topic_name(infra.settings, REGISTRY_CHANGES), set(include or ENTITY_KINDS)
        )
