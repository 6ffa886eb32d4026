"""The dispatch unit of work: one transaction and the writes made in it, by the REST use
cases (an incident accepted or cancelled) and by the worker (a batch of core decisions).
The rules hold for both: an incident's status and a mission's stage only move forward, and
each timeline stage is recorded once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from airgrid.db import transaction
from airgrid.outbox import OutboxRecord, enqueue
from airgrid.topics import INCIDENTS
from airgrid.v1 import incident_pb2
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneOrder,
    IncidentStatus,
    Linked,
    MissionStage,
    SlaAlert,
    StageReached,
)
from services.dispatch.domain.relays import RELAY_AT_RISK_REASON
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
STAGE_STATUS = {
    MissionStage.ASSIGNED: IncidentStatus.ASSIGNED,
    MissionStage.LAUNCHED: IncidentStatus.LAUNCHED,
    MissionStage.ON_SCENE: IncidentStatus.ON_SCENE,
}
MISSION_ORDER = {
    MissionStage.ASSIGNED: 0,
    MissionStage.LAUNCHED: 1,
    MissionStage.ON_SCENE: 2,
    MissionStage.RETURNING: 3,
    MissionStage.COMPLETED: 4,
    MissionStage.CANCELLED: 4,
    MissionStage.FAILED: 4,
}


async def _add_stage(
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


def alert_ce_id(alert: SlaAlert) -> str:
    """The outbox id of an SLA alert: once per incident and kind, and for relay_at_risk once
    per mission on scene ("relay:<mission>", within the 64 characters of an outbox id),
    since each link of a chain may need its own warning."""
    if alert.holder_id:
        return f"relay:{alert.holder_id}"
    return f"sla:{alert.incident_id}:{alert.kind.value}"


def move_status(incident: IncidentRow, status: IncidentStatus, reason: str | None) -> bool:
    """Set the incident's status (with this reason) when it changes: forward only, never out
    of completed or cancelled. True when it moved and, unless it now waits in the queue, the
    timeline needs the stage."""
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
    return True


async def _advance_incident(
    session: AsyncSession,
    *,
    incident: IncidentRow,
    status: IncidentStatus,
    at: datetime,
    reason: str | None = None,
) -> bool:
    if not move_status(incident, status, reason):
        return False
    if status != IncidentStatus.QUEUED:
        await _add_stage(session, incident_id=incident.id, stage=status.value, at=at)
    return True


async def _cancel_incident(
    session: AsyncSession, *, incident: IncidentRow, at: datetime, reason: str
) -> list[MissionRow]:
    """Cancel an incident and its active missions; returns the missions whose drones return."""
    await _advance_incident(
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


class UnitOfWork:
    """One transaction: `async with UnitOfWork(sessions) as uow:` commits when the block
    ends cleanly and rolls back when it raises."""

    session: AsyncSession

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> UnitOfWork:
        self.session = await self._stack.enter_async_context(transaction(self._sessions))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    # -- incidents, from the REST API --------------------------------------------------------

    async def add_incident(self, row: IncidentRow, event: incident_pb2.IncidentEvent) -> None:
        """A new incident, its first timeline stage and its record for the incident topic."""
        self.session.add(row)
        await self.session.flush()
        await _add_stage(self.session, incident_id=row.id, stage="accepted", at=row.accepted_at)
        self._publish(row.id, event, "accepted")

    async def was_cancelled(self, incident_id: str) -> bool:
        """Whether a cancel of this incident was recorded already."""
        found = await self.session.scalar(
            select(OutboxRecord.id).where(OutboxRecord.ce_id == f"{incident_id}:cancelled")
        )
        return found is not None

    async def cancel_incident(
        self, *, incident: IncidentRow, at: datetime, event: incident_pb2.IncidentEvent
    ) -> list[MissionRow]:
        """Cancel an incident and its active missions, and publish the cancel; returns the
        missions whose drones return."""
        reason = event.cancelled.reason
        missions = await _cancel_incident(self.session, incident=incident, at=at, reason=reason)
        self._publish(incident.id, event, "cancelled")
        await self.session.flush()
        return missions

    def _publish(self, incident_id: str, event: incident_pb2.IncidentEvent, kind: str) -> None:
        enqueue(
            self.session,
            service="dispatch",
            topic=INCIDENTS,
            key=incident_id,
            ce_type=f"airgrid.incident.{kind}",
            payload=event.SerializeToString(),
            ce_id=f"{incident_id}:{kind}",
        )

    # -- decisions, from the worker ---------------------------------------------------------

    async def decision_rows(self, decisions: Iterable[Decision]) -> DecisionRows:
        """The rows these decisions change, read and locked up front."""
        return await DecisionRows.load(self.session, decisions)


class DecisionRows:
    """Incidents (locked), their missions (locked), their timeline stages and outbox ids,
    as one transaction's decisions need them, read in a few queries up front and changed in
    memory; rows added here are seen by later decisions of the same transaction. The commit
    writes them in one flush (SQLAlchemy batches the inserts per table and emits updates
    before inserts, so a retasked drone's old mission leaves the active set before its new
    one enters it)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.incidents: dict[str, IncidentRow] = {}
        self.missions: dict[str, MissionRow] = {}
        self.missions_of: dict[str, list[MissionRow]] = {}
        self.duplicates_of: dict[str, list[IncidentRow]] = {}
        self.stages: set[tuple[str, str]] = set()
        self.ce_ids: set[str] = set()

    @classmethod
    async def load(cls, session: AsyncSession, decisions: Iterable[Decision]) -> DecisionRows:
        rows = cls(session)
        incident_ids: set[str] = set()
        mission_ids: set[str] = set()
        ce_ids: set[str] = set()
        for d in decisions:
            if isinstance(d, DroneOrder):
                continue  # only an outbox record
            incident_ids.add(d.incident_id)
            if isinstance(d, Linked):
                incident_ids.add(d.primary_id)
            elif isinstance(d, StageReached):
                mission_ids.add(d.mission_id)
                ce_ids.add(f"{d.mission_id}:{d.stage.value}")
            elif isinstance(d, SlaAlert):
                ce_ids.add(alert_ce_id(d))
        if not incident_ids:
            return rows
        # Incidents first, then missions: the order the API's cancel takes its locks in.
        # Usually one query each; a restore's thousands of decisions take a few.
        for ids, of in zip(*_paired(incident_ids, mission_ids), strict=True):
            of_missions = select(MissionRow.incident_id).where(MissionRow.id.in_(of))
            incidents = await session.scalars(
                select(IncidentRow)
                .where(
                    or_(
                        IncidentRow.id.in_(ids),
                        IncidentRow.id.in_(of_missions),
                        IncidentRow.linked_to.in_(ids),
                    )
                )
                .order_by(IncidentRow.id)
                .with_for_update()
            )
            for incident in incidents:
                rows.incidents[incident.id] = incident
        for incident in rows.incidents.values():
            rows.missions_of[incident.id] = []
            if incident.linked_to is not None:
                rows.duplicates_of.setdefault(incident.linked_to, []).append(incident)
        primaries = {i.id for i in rows.incidents.values() if i.linked_to is None}
        for ids, of in zip(*_paired(mission_ids, primaries), strict=True):
            missions = await session.scalars(
                select(MissionRow)
                .where(or_(MissionRow.id.in_(ids), MissionRow.incident_id.in_(of)))
                .order_by(MissionRow.id)
                .with_for_update()
            )
            for mission in missions:
                if mission.id not in rows.missions:
                    rows.missions[mission.id] = mission
                    rows.missions_of.setdefault(mission.incident_id, []).append(mission)
        for ids in _chunks(set(rows.incidents)):
            stages = await session.execute(
                select(IncidentStageRow.incident_id, IncidentStageRow.stage).where(
                    IncidentStageRow.incident_id.in_(ids)
                )
            )
            rows.stages.update((incident_id, stage) for incident_id, stage in stages)
        for ids in _chunks(ce_ids) if ce_ids else ():
            found = await session.scalars(
                select(OutboxRecord.ce_id).where(OutboxRecord.ce_id.in_(ids))
            )
            rows.ce_ids.update(found)
        return rows

    # -- reads -------------------------------------------------------------------------------

    def incident(self, incident_id: str) -> IncidentRow | None:
        return self.incidents.get(incident_id)

    def in_outbox(self, ce_id: str) -> bool:
        """Whether an outbox record with this id exists, committed or enqueued here."""
        return ce_id in self.ce_ids

    def enqueued(self, ce_id: str) -> None:
        self.ce_ids.add(ce_id)

    def _active(self, incident_id: str, *, besides: str = "") -> int:
        return sum(
            1
            for m in self.missions_of.get(incident_id, ())
            if m.id != besides and m.stage in ACTIVE_STAGES
        )

    # -- changes (the rules above, on the rows in memory) ---------------------------------------

    def add_stage(self, *, incident_id: str, stage: str, at: datetime, detail: str = "") -> bool:
        if (incident_id, stage) in self.stages:
            return False
        self.stages.add((incident_id, stage))
        self.session.add(
            IncidentStageRow(incident_id=incident_id, stage=stage, at=at, detail=detail)
        )
        return True

    def advance_incident(
        self,
        *,
        incident: IncidentRow,
        status: IncidentStatus,
        at: datetime,
        reason: str | None = None,
    ) -> bool:
        if not move_status(incident, status, reason):
            return False
        if status != IncidentStatus.QUEUED:
            self.add_stage(incident_id=incident.id, stage=status.value, at=at)
        return True

    def add_patrol(
        self, *, incident_id: str, route_id: str, lon: float, lat: float, at: datetime
    ) -> bool:
        """The incident row of a routine-inspection sortie (department 'airgrid', priority 4)."""
        if incident_id in self.incidents:
            return False
        row = IncidentRow(
            id=incident_id,
            department="airgrid",
            reported_by="dispatch-core",
            type="routine_inspection",
            priority=4,
            lon=lon,
            lat=lat,
            geometry={"type": "Point", "coordinates": [lon, lat]},
            required_capabilities=[],
            drones_needed=1,
            on_scene_seconds=0,
            description=f"patrol route {route_id}",
            shared_with=[],
            status=IncidentStatus.ACCEPTED.value,
            status_reason=None,
            linked_to=None,
            patrol_route=route_id,
            accepted_at=at,
        )
        self.session.add(row)
        self.incidents[incident_id] = row
        self.missions_of[incident_id] = []
        self.add_stage(incident_id=incident_id, stage="accepted", at=at)
        return True

    def record_assigned(self, *, decision: Assigned, at: datetime) -> bool:
        """Store the missions of an assignment; False when this decision was stored before."""
        incident = self.incidents.get(decision.incident_id)
        if incident is None:
            return False
        missions = self.missions_of.setdefault(incident.id, [])
        known = {m.id for m in missions}
        fresh = [a for a in decision.assignments if a.mission_id not in known]
        if not fresh:
            return False
        for a in fresh:
            mission = MissionRow(
                id=a.mission_id,
                incident_id=incident.id,
                slot=a.slot,
                drone_id=a.drone_id,
                from_nest_id=a.from_nest_id,
                eta_seconds=a.eta_seconds,
                stage=MissionStage.ASSIGNED.value,
                relieves=a.relieves or None,
                created_at=at,
            )
            self.session.add(mission)
            self.missions[mission.id] = mission
            missions.append(mission)
        if any(a.relieves for a in fresh) and incident.status_reason == RELAY_AT_RISK_REASON:
            incident.status_reason = None  # a relief goes: the chain holds again
        self.advance_incident(incident=incident, status=IncidentStatus.ASSIGNED, at=at)
        return True

    def record_queued(self, *, incident_id: str, reason: str, at: datetime) -> bool:
        """The incident waits with a reason; True when it newly waits (first time, or again
        after its drones were preempted or failed)."""
        incident = self.incidents.get(incident_id)
        if incident is None:
            return False
        if incident.status == IncidentStatus.QUEUED.value:
            incident.status_reason = reason
            return False
        if incident.status == IncidentStatus.ACCEPTED.value:
            return self.advance_incident(
                incident=incident, status=IncidentStatus.QUEUED, at=at, reason=reason
            )
        if incident.status in (
            IncidentStatus.ASSIGNED.value,
            IncidentStatus.LAUNCHED.value,
            IncidentStatus.ON_SCENE.value,
        ) and not self._active(incident_id):  # every drone was taken away: back in the queue
            incident.status = IncidentStatus.QUEUED.value
            incident.status_reason = reason
            return True
        return False

    def record_linked(
        self, *, incident_id: str, primary_id: str, reason: str, at: datetime
    ) -> bool:
        """A duplicate report joins the primary incident's missions and follows its status."""
        incident = self.incidents.get(incident_id)
        primary = self.incidents.get(primary_id)
        if incident is None or primary is None or incident.linked_to == primary_id:
            return False
        if incident.linked_to is not None:
            before = self.duplicates_of.get(incident.linked_to, [])
            self.duplicates_of[incident.linked_to] = [r for r in before if r is not incident]
        incident.linked_to = primary_id
        self.duplicates_of.setdefault(primary_id, []).append(incident)
        incident.status_reason = f"linked to {primary_id}: {reason}"
        self.add_stage(incident_id=incident_id, stage="linked", at=at, detail=primary_id)
        self.sync_linked(primary=primary, at=at)
        return True

    def sync_linked(self, *, primary: IncidentRow, at: datetime) -> None:
        """Duplicates linked to primary take its status (forward only)."""
        target = IncidentStatus(primary.status)
        for row in self.duplicates_of.get(primary.id, ()):
            if row.status != target.value:
                self.advance_incident(incident=row, status=target, at=at, reason=row.status_reason)

    def advance_mission(
        self, *, mission_id: str, stage: MissionStage, at: datetime
    ) -> MissionRow | None:
        """Move a mission forward (never back) and its incident with it; None when nothing
        moved."""
        mission = self.missions.get(mission_id)
        if mission is None:
            return None
        if MISSION_ORDER[stage] <= MISSION_ORDER[MissionStage(mission.stage)]:
            return None
        mission.stage = stage.value
        incident = self.incidents.get(mission.incident_id)
        if incident is None:
            return mission
        if stage in STAGE_STATUS:
            self.advance_incident(incident=incident, status=STAGE_STATUS[stage], at=at)
        elif stage == MissionStage.COMPLETED and not self._active(incident.id, besides=mission.id):
            self.advance_incident(incident=incident, status=IncidentStatus.COMPLETED, at=at)
        return mission

    def end_patrol(self, *, incident_id: str, completed: bool, at: datetime, reason: str) -> None:
        """A patrol sortie's incident closes when its only mission ends (flown, preempted or
        failed)."""
        incident = self.incidents.get(incident_id)
        if incident is None or incident.patrol_route is None:
            return
        status = IncidentStatus.COMPLETED if completed else IncidentStatus.CANCELLED
        self.advance_incident(incident=incident, status=status, at=at, reason=reason)


# Ids per IN list: PostgreSQL takes at most 32,767 parameters in one statement, and a query
# here may use two lists (one of them twice).
_CHUNK = 5_000


def _chunks(ids: set[str]) -> list[list[str]]:
    ordered = sorted(ids)
    return [ordered[i : i + _CHUNK] for i in range(0, len(ordered), _CHUNK)] or [[]]


def _paired(first: set[str], second: set[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Both id sets in chunks, as many of each (padded with empty ones), to go together."""
    a, b = _chunks(first), _chunks(second)
    size = max(len(a), len(b))
    return a + [[]] * (size - len(a)), b + [[]] * (size - len(b))
