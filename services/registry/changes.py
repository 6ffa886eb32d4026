"""Registry rows as RegistryChange events, and the outbox writes that publish them."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.outbox import enqueue
from airgrid.topics import REGISTRY_CHANGES
from airgrid.v1 import registry_pb2
from services.registry.models import (
    DepartmentRow,
    DroneRow,
    GeofenceRow,
    InspectionPlanRow,
    NestRow,
    ScenarioRow,
)

Row = DepartmentRow | NestRow | DroneRow | GeofenceRow


def _ms(value: object) -> int:
    return int(value.timestamp() * 1000) if value is not None else 0  # type: ignore[attr-defined]


def change_of(row: Row) -> registry_pb2.RegistryChange:
    change = registry_pb2.RegistryChange(
        version=row.version, changed_time_ms=int(time.time() * 1000)
    )
    if isinstance(row, DepartmentRow):
        change.entity_id = row.code
        change.department.CopyFrom(
            registry_pb2.Department(
                code=row.code, name_en=row.name_en, name_zh=row.name_zh, contact=row.contact
            )
        )
    elif isinstance(row, NestRow):
        change.entity_id = row.id
        change.nest.CopyFrom(
            registry_pb2.Nest(
                id=row.id,
                name=row.name,
                lon=row.lon,
                lat=row.lat,
                charging_slots=row.charging_slots,
                status=row.status,
                wind_mps=row.wind_mps,
                wind_hold_mps=row.wind_hold_mps,
            )
        )
    elif isinstance(row, DroneRow):
        change.entity_id = row.id
        change.drone.CopyFrom(
            registry_pb2.Drone(
                id=row.id,
                model=row.model,
                home_nest=row.home_nest,
                capabilities=row.capabilities,
                cruise_speed_mps=row.cruise_speed_mps,
                max_speed_mps=row.max_speed_mps,
                climb_rate_mps=row.climb_rate_mps,
                cruise_altitude_m=row.cruise_altitude_m,
                endurance_s=row.endurance_s,
                launch_delay_s=row.launch_delay_s,
                payload_kg=row.payload_kg,
                status=row.status,
            )
        )
    else:
        ring = row.geometry["coordinates"][0]
        change.entity_id = row.id
        change.geofence.CopyFrom(
            registry_pb2.Geofence(
                id=row.id,
                name=row.name,
                kind=row.kind,
                ring_lon=[p[0] for p in ring],
                ring_lat=[p[1] for p in ring],
                max_altitude_m=row.max_altitude_m or 0.0,
                active_from_ms=_ms(row.active_from),
                active_until_ms=_ms(row.active_until),
            )
        )
    return change


def plan_entity_id(plan_id: str) -> str:
    """Plans share the compacted topic with every registry entity: the prefix keeps a plan's
    key from ever replacing a nest or a drone of the same id."""
    return f"inspection-plan:{plan_id}"


def scenario_entity_id(code: str) -> str:
    return f"scenario:{code}"


def plan_change(row: InspectionPlanRow, timezone: str) -> registry_pb2.RegistryChange:
    plan = registry_pb2.InspectionPlan(
        id=row.id,
        name=row.name,
        department=row.department,
        kind="corridor" if row.geometry["type"] == "LineString" else "area",
        width_m=row.width_m or 0.0,
        revisit_interval_s=row.revisit_interval_s,
        active_windows=[
            registry_pb2.ActiveWindow(start=w["start"], end=w["end"]) for w in row.active_windows
        ],
        timezone=timezone,
    )
    if row.geometry["type"] == "LineString":
        plan.path_lon.extend(p[0] for p in row.geometry["coordinates"])
        plan.path_lat.extend(p[1] for p in row.geometry["coordinates"])
    else:
        plan.ring_lon.extend(p[0] for p in row.geometry["coordinates"][0])
        plan.ring_lat.extend(p[1] for p in row.geometry["coordinates"][0])
    change = registry_pb2.RegistryChange(
        entity_id=plan_entity_id(row.id),
        version=row.version,
        changed_time_ms=int(time.time() * 1000),
    )
    change.inspection_plan.CopyFrom(plan)
    return change


def scenario_change(row: ScenarioRow) -> registry_pb2.RegistryChange:
    scenario = registry_pb2.Scenario(
        code=row.code,
        name=row.name,
        departments=row.departments,
        severity=row.severity,
        merge_radius_m=row.merge_radius_m,
        merge_window_s=row.merge_window_s,
        description=row.description,
    )
    if row.escalation is not None:
        scenario.escalation.CopyFrom(
            registry_pb2.EscalationRule(
                min_confidence=row.escalation["min_confidence"],
                incident_type=row.escalation["incident_type"],
                priority=row.escalation["priority"],
            )
        )
    change = registry_pb2.RegistryChange(
        entity_id=scenario_entity_id(row.code),
        version=row.version,
        changed_time_ms=int(time.time() * 1000),
    )
    change.scenario.CopyFrom(scenario)
    return change


def publish_plan(session: AsyncSession, row: InspectionPlanRow, timezone: str) -> None:
    _enqueue(session, plan_change(row, timezone))


def publish_scenario(session: AsyncSession, row: ScenarioRow) -> None:
    _enqueue(session, scenario_change(row))


def publish(session: AsyncSession, row: Row) -> None:
    """Queue the row's current state on airgrid.registry.changes, in the caller's transaction."""
    _enqueue(session, change_of(row))


def publish_deleted(session: AsyncSession, *, kind: str, entity_id: str, version: int) -> None:
    """Queue a delete: the entity id, its kind and the version the delete gave it."""
    change = registry_pb2.RegistryChange(
        entity_id=entity_id,
        deleted=True,
        deleted_kind=kind,
        version=version,
        changed_time_ms=int(time.time() * 1000),
    )
    _enqueue(session, change, ce_type=f"airgrid.registry.{kind}.deleted")


def publish_revoked(session: AsyncSession, credential_id: str) -> None:
    """Tell every service to drop a revoked credential from its cache at once."""
    change = registry_pb2.RegistryChange(
        entity_id=f"credential:{credential_id}",
        version=1,
        changed_time_ms=int(time.time() * 1000),
        credential_revoked=registry_pb2.CredentialRevoked(credential_id=credential_id),
    )
    _enqueue(session, change)


def _enqueue(
    session: AsyncSession, change: registry_pb2.RegistryChange, ce_type: str | None = None
) -> None:
    enqueue(
        session,
        service="registry",
        topic=REGISTRY_CHANGES,
        key=change.entity_id,
        ce_type=ce_type or f"airgrid.registry.{change.WhichOneof('entity')}",
        payload=change.SerializeToString(),
        ce_id=uuid.uuid4().hex,
    )


async def publish_snapshot(session: AsyncSession, *, timezone: str) -> int:
    """Queue every entity, so a consumer of an empty or new topic can rebuild the registry.
    `timezone` is the zone's, in which the plans' windows are read."""
    rows: list[Row] = []
    rows.extend((await session.scalars(select(DepartmentRow))).all())
    rows.extend((await session.scalars(select(NestRow))).all())
    rows.extend((await session.scalars(select(DroneRow))).all())
    rows.extend((await session.scalars(select(GeofenceRow))).all())
    for row in rows:
        publish(session, row)
    plans = (await session.scalars(select(InspectionPlanRow))).all()
    for plan in plans:
        publish_plan(session, plan, timezone)
    scenarios = (await session.scalars(select(ScenarioRow))).all()
    for scenario in scenarios:
        publish_scenario(session, scenario)
    return len(rows) + len(plans) + len(scenarios)
