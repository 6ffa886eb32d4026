"""Dispatch persistence: incidents, their timeline, missions and idempotency keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.domain.model import Assigned, IncidentStatus, MissionStage
from services.dispatch.models import ACTIVE_STAGES, IncidentRow, IncidentStageRow, MissionRow

# How far an incident has come; its status only ever moves forward.
_STATUS_ORDER = {
    IncidentStatus.ACCEPTED: 0,
    IncidentStatus.QUEUED: 1,
    IncidentStatus.ASSIGNED: 2,
    IncidentStatus.LAUNCHED: 3,
    IncidentStatus.ON_SCENE: 4,
    IncidentStatus.COMPLETED: 5,
    IncidentStatus.CANCELLED: 5,
}
_STAGE_STATUS = {
    MissionStage.ASSIGNED: IncidentStatus.ASSIGNED,
    MissionStage.LAUNCHED: IncidentStatus.LAUNCHED,
    MissionStage.ON_SCENE: IncidentStatus.ON_SCENE,
}
_MISSION_ORDER = {
    MissionStage.ASSIGNED: 0,
    MissionStage.LAUNCHED: 1,
    MissionStage.ON_SCENE: 2,
    MissionStage.RETURNING: 3,
    MissionStage.COMPLETED: 4,
    MissionStage.CANCELLED: 4,
    MissionStage.FAILED: 4,
}


async def add_stage(
    session: AsyncSession, *, incident_id: str, stage: str, at: datetime, detail: str = ""
) -> bool:
    """Record a stage in the timeline once; returns False when it was there already."""
    existing = await session.scalar(
        select(IncidentStageRow.id).where(
            IncidentStageRow.incident_id == incident_id, IncidentStageRow.stage == stage
        )
    )
    if existing is not None:
        return False
    session.add(IncidentStageRow(incident_id=incident_id, stage=stage, at=at, detail=detail))
    return True


async def advance_incident(
    session: AsyncSession,
    *,
    incident: IncidentRow,
    status: IncidentStatus,
    at: datetime,
    reason: str | None = None,
) -> bool:
    current = IncidentStatus(incident.status)
    if _STATUS_ORDER[status] < _STATUS_ORDER[current] or current in (
        IncidentStatus.COMPLETED,
        IncidentStatus.CANCELLED,
    ):
        return False
    if status == current and reason == incident.status_reason:
        return False
    incident.status = status.value
    incident.status_reason = reason
    if status != IncidentStatus.QUEUED:
        await add_stage(session, incident_id=incident.id, stage=status.value, at=at)
    return True


async def record_assigned(session: AsyncSession, *, decision: Assigned, at: datetime) -> bool:
    """Store the missions of an assignment; False when this decision was stored before."""
    incident = await session.get(IncidentRow, decision.incident_id, with_for_update=True)
    if incident is None:
        return False
    known = set(
        (
            await session.scalars(
                select(MissionRow.id).where(MissionRow.incident_id == decision.incident_id)
            )
        ).all()
    )
    fresh = [a for a in decision.assignments if a.mission_id not in known]
    if not fresh:
        return False
    for a in fresh:
        session.add(
            MissionRow(
                id=a.mission_id,
                incident_id=decision.incident_id,
                slot=a.slot,
                drone_id=a.drone_id,
                from_nest_id=a.from_nest_id,
                eta_seconds=a.eta_seconds,
                stage=MissionStage.ASSIGNED.value,
                created_at=at,
            )
        )
    await advance_incident(session, incident=incident, status=IncidentStatus.ASSIGNED, at=at)
    await session.flush()
    return True


async def record_queued(
    session: AsyncSession, *, incident_id: str, reason: str, at: datetime
) -> bool:
    incident = await session.get(IncidentRow, incident_id, with_for_update=True)
    if incident is None or incident.status != IncidentStatus.ACCEPTED.value:
        if incident is not None and incident.status == IncidentStatus.QUEUED.value:
            incident.status_reason = reason
        return False
    return await advance_incident(
        session, incident=incident, status=IncidentStatus.QUEUED, at=at, reason=reason
    )


async def advance_mission(
    session: AsyncSession, *, mission_id: str, stage: MissionStage, at: datetime
) -> MissionRow | None:
    """Move a mission forward (never back) and its incident with it; None when nothing moved."""
    mission = await session.get(MissionRow, mission_id, with_for_update=True)
    if mission is None:
        return None
    if _MISSION_ORDER[stage] <= _MISSION_ORDER[MissionStage(mission.stage)]:
        return None
    mission.stage = stage.value
    incident = await session.get(IncidentRow, mission.incident_id, with_for_update=True)
    if incident is None:
        return mission
    if stage in _STAGE_STATUS:
        await advance_incident(session, incident=incident, status=_STAGE_STATUS[stage], at=at)
    elif stage == MissionStage.COMPLETED:
        still_open = await session.scalar(
            select(func.count())
            .select_from(MissionRow)
            .where(
                MissionRow.incident_id == incident.id,
                MissionRow.id != mission.id,
                MissionRow.stage.in_(ACTIVE_STAGES),
            )
        )
        if not still_open:
            await advance_incident(
                session, incident=incident, status=IncidentStatus.COMPLETED, at=at
            )
    return mission


async def cancel_incident(
    session: AsyncSession, *, incident: IncidentRow, at: datetime, reason: str
) -> list[MissionRow]:
    """Cancel an incident and its active missions; returns the missions whose drones return."""
    await advance_incident(
        session, incident=incident, status=IncidentStatus.CANCELLED, at=at, reason=reason
    )
    missions = (
        await session.scalars(
            select(MissionRow).where(
                MissionRow.incident_id == incident.id, MissionRow.stage.in_(ACTIVE_STAGES)
            )
        )
    ).all()
    if missions:
        await session.execute(
            update(MissionRow)
            .where(MissionRow.id.in_([m.id for m in missions]))
            .values(stage=MissionStage.CANCELLED.value)
        )
    return list(missions)


async def open_incidents(session: AsyncSession) -> Sequence[IncidentRow]:
    """Incidents still waiting for a drone, or part-way through their slots."""
    return (
        await session.scalars(
            select(IncidentRow)
            .where(
                IncidentRow.status.in_(
                    [
                        IncidentStatus.ACCEPTED.value,
                        IncidentStatus.QUEUED.value,
                        IncidentStatus.ASSIGNED.value,
                    ]
                )
            )
            .order_by(IncidentRow.accepted_at)
        )
    ).all()


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
