"""Dispatch reads: open work for a rebuild, incidents awaiting a decision, an incident's
missions and timeline. The writes are unit_of_work.py's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.outbox import OutboxRecord
from services.dispatch.domain.model import IncidentStatus, MissionStage, SlaAlertKind
from services.dispatch.models import ACTIVE_STAGES, IncidentRow, IncidentStageRow, MissionRow

LIVE_STATUSES = (
    IncidentStatus.ACCEPTED.value,
    IncidentStatus.QUEUED.value,
    IncidentStatus.ASSIGNED.value,
    IncidentStatus.LAUNCHED.value,
    IncidentStatus.ON_SCENE.value,
)


async def open_incidents(session: AsyncSession) -> Sequence[IncidentRow]:
    """Incidents the core still works on: waiting, or with drones on the way or on scene."""
    return (
        await session.scalars(
            select(IncidentRow)
            .where(IncidentRow.status.in_(LIVE_STATUSES), IncidentRow.linked_to.is_(None))
            .order_by(IncidentRow.accepted_at, IncidentRow.id)
        )
    ).all()


async def undecided_incidents(
    session: AsyncSession, *, accepted_before: datetime, limit: int = 500
) -> Sequence[IncidentRow]:
    """Incidents accepted before `accepted_before` that still have no decision and are not
    linked to another: their record may never reach the worker (a broker that lost it)."""
    return (
        await session.scalars(
            select(IncidentRow)
            .where(
                IncidentRow.status == IncidentStatus.ACCEPTED.value,
                IncidentRow.linked_to.is_(None),
                IncidentRow.patrol_route.is_(None),
                IncidentRow.accepted_at < accepted_before,
            )
            .order_by(IncidentRow.accepted_at, IncidentRow.id)
            .limit(limit)
        )
    ).all()


async def awaiting_decision(session: AsyncSession, incident_ids: list[str]) -> set[str]:
    """Those of these incidents that this database holds and that still wait for a decision;
    a replay of one decided before a restart is ignored."""
    found = await session.scalars(
        select(IncidentRow.id).where(
            IncidentRow.id.in_(incident_ids),
            IncidentRow.status.in_(("accepted", "queued")),
        )
    )
    return set(found)


async def open_links(session: AsyncSession) -> dict[str, tuple[str, int]]:
    """Live duplicates: the incident each is linked to, and the duplicate's priority."""
    rows = (
        await session.execute(
            select(IncidentRow.id, IncidentRow.linked_to, IncidentRow.priority).where(
                IncidentRow.linked_to.is_not(None), IncidentRow.status.in_(LIVE_STATUSES)
            )
        )
    ).all()
    return {row[0]: (str(row[1]), int(row[2])) for row in rows}


async def mission_counts(session: AsyncSession) -> dict[str, int]:
    """How many missions (any stage) each live incident has had."""
    rows = (
        await session.execute(
            select(MissionRow.incident_id, func.count())
            .join(IncidentRow, IncidentRow.id == MissionRow.incident_id)
            .where(IncidentRow.status.in_(LIVE_STATUSES))
            .group_by(MissionRow.incident_id)
        )
    ).all()
    return {row[0]: int(row[1]) for row in rows}


async def flown_slots(session: AsyncSession) -> dict[str, set[int]]:
    """Slots of live incidents whose mission was flown to the end: done, never flown again."""
    rows = (
        await session.execute(
            select(MissionRow.incident_id, MissionRow.slot)
            .join(IncidentRow, IncidentRow.id == MissionRow.incident_id)
            .where(
                IncidentRow.status.in_(LIVE_STATUSES),
                MissionRow.stage == MissionStage.COMPLETED.value,
            )
        )
    ).all()
    done: dict[str, set[int]] = {}
    for incident_id, slot in rows:
        done.setdefault(incident_id, set()).add(int(slot))
    return done


async def scene_arrivals(session: AsyncSession) -> dict[str, int]:
    """When a drone first reached the scene of each live incident (epoch ms): the timeline's
    on_scene stage, recorded once at the core's time of the first arrival."""
    rows = (
        await session.execute(
            select(IncidentStageRow.incident_id, IncidentStageRow.at)
            .join(IncidentRow, IncidentRow.id == IncidentStageRow.incident_id)
            .where(
                IncidentRow.status.in_(LIVE_STATUSES),
                IncidentStageRow.stage == IncidentStatus.ON_SCENE.value,
            )
        )
    ).all()
    return {incident_id: int(at.timestamp() * 1000) for incident_id, at in rows}


async def raised_sla_alerts(session: AsyncSession) -> set[tuple[str, SlaAlertKind]]:
    """SLA alerts already in the outbox (ce_id "sla:<incident>:<kind>"), not to raise again.
    A relay_at_risk (ce_id "relay:<mission on scene>") counts while that mission is still on
    scene and no active mission relieves it, as the core keeps it."""
    ce_ids = (
        await session.scalars(
            select(OutboxRecord.ce_id).where(
                OutboxRecord.service == "dispatch",
                or_(OutboxRecord.ce_id.like("sla:%"), OutboxRecord.ce_id.like("relay:%")),
            )
        )
    ).all()
    raised: set[tuple[str, SlaAlertKind]] = set()
    kinds = {k.value: k for k in SlaAlertKind}
    holders: list[str] = []
    for ce_id in ce_ids:
        parts = ce_id.split(":")
        if parts[0] == "relay" and len(parts) == 2:
            holders.append(parts[1])
        elif len(parts) == 3 and parts[2] in kinds:
            raised.add((parts[1], kinds[parts[2]]))
    if holders:
        rows = await session.execute(
            select(MissionRow.id, MissionRow.incident_id).where(
                MissionRow.id.in_(holders), MissionRow.stage == MissionStage.ON_SCENE.value
            )
        )
        on_scene = {str(mission_id): str(incident_id) for mission_id, incident_id in rows}
        relieved = set(
            await session.scalars(
                select(MissionRow.relieves).where(
                    MissionRow.relieves.in_(list(on_scene)), MissionRow.stage.in_(ACTIVE_STAGES)
                )
            )
        )
        for mission_id, incident_id in on_scene.items():
            if mission_id not in relieved:
                raised.add((incident_id, SlaAlertKind.RELAY_AT_RISK))
    return raised


async def active_missions(session: AsyncSession) -> Sequence[MissionRow]:
    return (
        await session.scalars(select(MissionRow).where(MissionRow.stage.in_(ACTIVE_STAGES)))
    ).all()


async def incident_timeline(session: AsyncSession, incident_id: str) -> Sequence[IncidentStageRow]:
    return (
        await session.scalars(
            select(IncidentStageRow)
            .where(IncidentStageRow.incident_id == incident_id)
            .order_by(IncidentStageRow.at, IncidentStageRow.id)
        )
    ).all()


async def incident_missions(session: AsyncSession, incident_id: str) -> Sequence[MissionRow]:
    return (
        await session.scalars(
            select(MissionRow)
            .where(MissionRow.incident_id == incident_id)
            .order_by(MissionRow.slot, MissionRow.created_at)
        )
    ).all()
