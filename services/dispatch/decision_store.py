"""How each dispatch decision changes the rows of its transaction, which outbox records it
adds, and the trace and log line it carries."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airgrid import tracing
from airgrid.v1 import dispatch_pb2, registry_pb2
from services.dispatch import outbox_records
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneOrder,
    Linked,
    MissionStage,
    PatrolStarted,
    Preempted,
    Queued,
    Redispatched,
    SlaAlert,
    StageReached,
)
from services.dispatch.metrics import MISSION_STAGES
from services.dispatch.unit_of_work import DecisionRows


def store_decision(
    rows: DecisionRows, decision: Decision, specs: Mapping[str, registry_pb2.Drone]
) -> None:
    """Change the rows as the decision says and enqueue its outbox records; `specs` gives a
    commanded drone's cruise altitude."""
    session = rows.session
    now = datetime.now(UTC)
    if isinstance(decision, PatrolStarted):
        r = decision.request
        at = _ms_to_dt(r.accepted_ms)
        rows.add_patrol(incident_id=r.id, route_id=decision.route_id, lon=r.lon, lat=r.lat, at=at)
    elif isinstance(decision, Assigned):
        incident = rows.incident(decision.incident_id)
        if incident is None or not rows.record_assigned(decision=decision, at=now):
            return
        kind = dispatch_pb2.DECISION_KIND_ASSIGNED
        outbox_records.decision_record(session, decision.incident_id, kind, incident, decision)
        for a in decision.assignments:
            outbox_records.mission_event(
                rows,
                a.mission_id,
                decision.incident_id,
                a.drone_id,
                MissionStage.ASSIGNED,
                "",
            )
        rows.sync_linked(primary=incident, at=now)
    elif isinstance(decision, Queued):
        incident = rows.incident(decision.incident_id)
        if incident is None or incident.patrol_route:
            return
        if rows.record_queued(incident_id=decision.incident_id, reason=decision.reason, at=now):
            kind = dispatch_pb2.DECISION_KIND_QUEUED
            outbox_records.decision_record(
                session, decision.incident_id, kind, incident, None, decision.reason
            )
    elif isinstance(decision, Preempted | Redispatched | Linked):
        incident = rows.incident(decision.incident_id)
        if incident is None:
            return
        if isinstance(decision, Linked):
            rows.record_linked(
                incident_id=decision.incident_id,
                primary_id=decision.primary_id,
                reason=decision.reason,
                at=now,
            )
            kind = dispatch_pb2.DECISION_KIND_LINKED
            reason = f"{decision.primary_id}: {decision.reason}"
        elif isinstance(decision, Preempted):
            kind = dispatch_pb2.DECISION_KIND_PREEMPTED
            reason = decision.reason
        else:
            kind = dispatch_pb2.DECISION_KIND_REDISPATCHED
            reason = f"drone {decision.drone_id}: {decision.reason}"
        outbox_records.decision_record(session, decision.incident_id, kind, incident, None, reason)
    elif isinstance(decision, StageReached):
        at = _ms_to_dt(decision.at_ms) if decision.at_ms else now
        moved = rows.advance_mission(mission_id=decision.mission_id, stage=decision.stage, at=at)
        ce_id = f"{decision.mission_id}:{decision.stage.value}"
        # Each stage's event once: a cancel may have ended the mission before (the API's
        # cancel), and an event already in the outbox is not enqueued again.
        if (moved is not None or decision.stage == MissionStage.CANCELLED) and not rows.in_outbox(
            ce_id
        ):
            outbox_records.mission_event(
                rows,
                decision.mission_id,
                decision.incident_id,
                decision.drone_id,
                decision.stage,
                decision.reason,
            )
            MISSION_STAGES.labels(decision.stage.value).inc()
        incident = rows.incident(decision.incident_id)
        if incident is not None and incident.patrol_route and decision.stage in (
            MissionStage.COMPLETED, MissionStage.CANCELLED, MissionStage.FAILED,
        ):  # fmt: skip
            rows.end_patrol(
                incident_id=incident.id,
                at=at,
                reason=decision.reason,
                completed=decision.stage == MissionStage.COMPLETED,
            )
        elif incident is not None:
            rows.sync_linked(primary=incident, at=at)
    elif isinstance(decision, SlaAlert):
        outbox_records.sla_alert(rows, decision)
    elif isinstance(decision, DroneOrder):
        outbox_records.drone_command(session, decision, specs.get(decision.drone_id))


def traced(
    traces: tracing.IncidentTraces, decision: Decision
) -> contextlib.AbstractContextManager[Any]:
    """The trace a decision's records continue: its incident's, with a span of its own
    for a mission stage (on scene, completed...). Nothing when the incident has none."""
    parent = traces.get(decision.incident_id)
    if parent is None:
        return contextlib.nullcontext()
    if isinstance(decision, StageReached):
        return tracing.span(
            "dispatch.stage",
            parent=parent,
            attributes={
                "airgrid.incident_id": decision.incident_id,
                "airgrid.mission_id": decision.mission_id,
                "airgrid.drone_id": decision.drone_id,
                "airgrid.stage": decision.stage.value,
            },
        )
    return tracing.attached(parent)


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def log_fields(decision: Decision) -> dict[str, object]:
    fields: dict[str, object] = {"incident_id": decision.incident_id}
    for name in ("mission_id", "drone_id", "reason", "stage", "kind", "primary_id"):
        value = getattr(decision, name, None)
        if value is not None:
            fields[name] = str(value)
    if isinstance(decision, Assigned):
        fields["drones"] = ",".join(a.drone_id for a in decision.assignments)
    return fields
