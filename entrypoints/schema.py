"""Every table of every service in one metadata, for Alembic and the schema drift test."""

from airgrid.auth import Credential
from airgrid.db import Base
from airgrid.outbox import OutboxRecord
from services.dispatch.models import IdempotencyKeyRow, IncidentRow, IncidentStageRow, MissionRow
from services.registry.models import DepartmentRow, DroneRow, GeofenceRow, NestRow
from services.telemetry.models import case_detections, cases, drone_alert_state, track_points

metadata = Base.metadata

__all__ = [
    "Credential",
    "DepartmentRow",
    "DroneRow",
    "GeofenceRow",
    "IdempotencyKeyRow",
    "IncidentRow",
    "IncidentStageRow",
    "MissionRow",
    "NestRow",
    "OutboxRecord",
    "case_detections",
    "cases",
    "drone_alert_state",
    "metadata",
    "track_points",
]
