"""The outbox records of dispatch decisions: decision, drone command, mission event and
SLA alert, each built from its protobuf message and enqueued in the decision's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from airgrid.outbox import enqueue
from airgrid.topics import ALERTS, DISPATCH_DECISIONS, DRONE_COMMANDS, MISSION_EVENTS
from airgrid.v1 import alert_pb2, command_pb2, dispatch_pb2, mission_pb2, registry_pb2
from services.dispatch.core_feed import now_ms
from services.dispatch.domain.model import (
    Assigned,
    DroneOrder,
    MissionStage,
    OrderKind,
    SlaAlert,
    SlaAlertKind,
)
from services.dispatch.domain.relays import RELAY_AT_RISK_REASON
from services.dispatch.models import IncidentRow
from services.dispatch.unit_of_work import DecisionRows, alert_ce_id

# The wire enums of mission stages and order kinds, shared with the fast twin.
STAGE_PROTO = {
    MissionStage.ASSIGNED: mission_pb2.MISSION_STAGE_ASSIGNED,
    MissionStage.LAUNCHED: mission_pb2.MISSION_STAGE_LAUNCHED,
    MissionStage.ON_SCENE: mission_pb2.MISSION_STAGE_ON_SCENE,
    MissionStage.RETURNING: mission_pb2.MISSION_STAGE_RETURNING,
    MissionStage.COMPLETED: mission_pb2.MISSION_STAGE_COMPLETED,
    MissionStage.CANCELLED: mission_pb2.MISSION_STAGE_CANCELLED,
    MissionStage.FAILED: mission_pb2.MISSION_STAGE_FAILED,
}
ALERT_PROTO = {
    SlaAlertKind.AT_RISK: alert_pb2.ALERT_KIND_SLA_AT_RISK,
    SlaAlertKind.BREACHED: alert_pb2.ALERT_KIND_SLA_BREACHED,
    SlaAlertKind.RELAY_AT_RISK: alert_pb2.ALERT_KIND_RELAY_AT_RISK,
}
ORDER_PROTO = {
    OrderKind.LAUNCH: command_pb2.COMMAND_KIND_LAUNCH,
    OrderKind.GOTO: command_pb2.COMMAND_KIND_GOTO,
    OrderKind.RETURN: command_pb2.COMMAND_KIND_RETURN,
}


def decision_record(
    session: Any,
    incident_id: str,
    kind: int,
    incident: IncidentRow,
    assigned: Assigned | None,
    reason: str = "",
) -> None:
    message = dispatch_pb2.DispatchDecision(
        decision_id=uuid.uuid4().hex,
        incident_id=incident_id,
        kind=kind,  # type: ignore[arg-type]
        reason=reason,
        priority=incident.priority,
        incident_accepted_time_ms=int(incident.accepted_at.timestamp() * 1000),
        decided_time_ms=now_ms(),
    )
    if assigned is not None:
        add_assignments(message, assigned)
    enqueue(
        session,
        service="dispatch",
        topic=DISPATCH_DECISIONS,
        key=incident_id,
        ce_type="airgrid.dispatch.decision",
        payload=message.SerializeToString(),
        ce_id=message.decision_id,
    )


def add_assignments(message: dispatch_pb2.DispatchDecision, assigned: Assigned) -> None:
    """An assignment's missions on its decision message, as the worker publishes them and
    the fast twin reports them."""
    for a in assigned.assignments:
        message.assignments.add(
            mission_id=a.mission_id,
            drone_id=a.drone_id,
            slot=a.slot,
            eta_seconds=a.eta_seconds,
            from_nest_id=a.from_nest_id,
            relieves=a.relieves,
        )


def command_of(
    order: DroneOrder,
    spec: registry_pb2.Drone | None,
    *,
    issued_ms: int,
    command_id: str = "",
) -> command_pb2.DroneCommand:
    """The drone command of an order, as the worker publishes it and the fast twin flies it;
    its target altitude is the drone's cruise altitude (120 m when the drone is unknown)."""
    command = command_pb2.DroneCommand(
        command_id=command_id,
        drone_id=order.drone_id,
        mission_id=order.mission_id,
        kind=ORDER_PROTO[order.kind],
        hold_seconds=order.hold_seconds,
        nest_id=order.nest_id,
        issued_time_ms=issued_ms,
    )
    if order.target is not None:
        command.target_lon, command.target_lat = order.target
        command.target_alt_m = spec.cruise_altitude_m if spec else 120.0
    command.path_lon.extend(p[0] for p in order.path)
    command.path_lat.extend(p[1] for p in order.path)
    return command


def drone_command(session: Any, order: DroneOrder, spec: registry_pb2.Drone | None) -> None:
    """A drone's order, enqueued for the drone-commands topic."""
    command = command_of(order, spec, issued_ms=now_ms(), command_id=uuid.uuid4().hex)
    enqueue(
        session,
        service="dispatch",
        topic=DRONE_COMMANDS,
        key=order.drone_id,
        ce_type="airgrid.drone.command",
        payload=command.SerializeToString(),
        ce_id=command.command_id,
    )


def mission_event(
    rows: DecisionRows,
    mission_id: str,
    incident_id: str,
    drone_id: str,
    stage: MissionStage,
    reason: str,
) -> None:
    row = rows.missions.get(mission_id)
    event = mission_pb2.MissionEvent(
        mission_id=mission_id,
        incident_id=incident_id,
        drone_id=drone_id,
        stage=STAGE_PROTO[stage],
        event_time_ms=now_ms(),
        reason=reason,
        relieves=(row.relieves or "") if row is not None else "",
    )
    ce_id = f"{mission_id}:{stage.value}"
    rows.enqueued(ce_id)
    enqueue(
        rows.session,
        service="dispatch",
        topic=MISSION_EVENTS,
        key=mission_id,
        ce_type="airgrid.mission.event",
        payload=event.SerializeToString(),
        ce_id=ce_id,
    )


def sla_alert(rows: DecisionRows, alert: SlaAlert) -> None:
    incident = rows.incident(alert.incident_id)
    if alert.kind == SlaAlertKind.RELAY_AT_RISK and incident is not None:
        incident.status_reason = RELAY_AT_RISK_REASON  # until a relief goes
    ce_id = alert_ce_id(alert)
    if rows.in_outbox(ce_id):
        return  # raised before a restart
    rows.enqueued(ce_id)
    breached = alert.kind == SlaAlertKind.BREACHED
    eta = (
        "no drone on the way"
        if alert.eta_seconds == float("inf")
        else (f"ETA {alert.eta_seconds:.0f} s")
    )
    if alert.kind == SlaAlertKind.RELAY_AT_RISK:
        text = (
            f"Relay at risk: {'no drone can relieve' if eta == 'no drone on the way' else eta},"
            f" the drone on scene must turn home in {alert.seconds_left:.0f} s"
        )
    elif breached:
        text = f"SLA breached: no drone on scene {-alert.seconds_left:.0f} s past the deadline"
    else:
        text = f"SLA at risk: {eta}, {alert.seconds_left:.0f} s left"
    message = alert_pb2.Alert(
        alert_id=uuid.uuid4().hex,
        kind=ALERT_PROTO[alert.kind],
        severity=alert_pb2.SEVERITY_CRITICAL if breached else alert_pb2.SEVERITY_WARNING,
        subject_id=alert.incident_id,
        incident_id=alert.incident_id,
        message=text,
        event_time_ms=alert.at_ms,
        active=True,
        lon=incident.lon if incident is not None else 0.0,
        lat=incident.lat if incident is not None else 0.0,
    )
    enqueue(
        rows.session,
        service="dispatch",
        topic=ALERTS,
        key=alert.incident_id,
        ce_type="airgrid.alert",
        payload=message.SerializeToString(),
        ce_id=ce_id,
    )
