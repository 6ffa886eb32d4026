"""Loads a zone's reference data into the registry, idempotently, and publishes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from airgrid.config import DEFAULT_ZONE_TIMEZONE
from airgrid.reference import ReferenceData
from services.registry.changes import Row, publish
from services.registry.inspection_seed import seed_inspection
from services.registry.models import (
    AuditRow,
    DepartmentRow,
    DroneRow,
    GeofenceRow,
    InspectionPlanRow,
    NestRow,
    ScenarioRow,
)
from services.registry.service import Actor, audit, document_of, kind_of

SEED_ACTOR = Actor("seed", "system")


@dataclass(frozen=True)
class SeedResult:
    departments: int
    nests: int
    drones: int
    geofences: int
    inspection_plans: int = 0
    scenarios: int = 0

    @property
    def total(self) -> int:
        return (
            self.departments
            + self.nests
            + self.drones
            + self.geofences
            + self.inspection_plans
            + self.scenarios
        )


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _record(session: AsyncSession, row: Row, key: str) -> None:
    """Audit and publish a seeded row (the audit log covers every write, seeds too)."""
    audit(
        session,
        actor=SEED_ACTOR,
        action="create",
        kind=kind_of(row),
        entity=key,
        before=None,
        after=document_of(row),
    )
    publish(session, row)


async def _known_ids(session: AsyncSession) -> dict[str, set[str]]:
    """Ids the registry has now or ever had: an entity an admin deleted is not seeded again."""
    known: dict[str, set[str]] = {}
    for kind, column in (
        ("department", DepartmentRow.code),
        ("nest", NestRow.id),
        ("drone", DroneRow.id),
        ("geofence", GeofenceRow.id),
        ("inspection-plan", InspectionPlanRow.id),
        ("scenario", ScenarioRow.code),
    ):
        known[kind] = set((await session.scalars(select(column))).all())
    audited = await session.execute(select(AuditRow.entity_kind, AuditRow.entity_id).distinct())
    for kind, entity in audited.all():
        known.setdefault(kind, set()).add(entity)
    return known


async def seed_reference(
    sessions: async_sessionmaker[AsyncSession],
    reference: ReferenceData,
    *,
    timezone: str = DEFAULT_ZONE_TIMEZONE,
) -> SeedResult:
    """Insert what is missing (never overwrites edits, never brings back a deleted entity);
    returns how many rows were added. `timezone` is the zone's, in which plans' windows are
    read (their change events carry it)."""
    added = {"departments": 0, "nests": 0, "drones": 0, "geofences": 0}
    async with sessions() as session, session.begin():
        known = await _known_ids(session)
        for d in reference.departments:
            if d.code not in known["department"]:
                row = DepartmentRow(
                    code=d.code,
                    name_en=d.name_en,
                    name_zh=d.name_zh,
                    contact=d.contact,
                    feed_preferences={},
                    version=1,
                )
                session.add(row)
                _record(session, row, d.code)
                added["departments"] += 1
        for n in reference.nests:
            if n.id not in known["nest"]:
                nest = NestRow(
                    id=n.id,
                    name=n.name,
                    lon=n.lon,
                    lat=n.lat,
                    charging_slots=n.charging_slots,
                    status=n.status,
                    wind_mps=0.0,
                    wind_hold_mps=n.wind_hold_mps,
                    version=1,
                )
                session.add(nest)
                _record(session, nest, n.id)
                added["nests"] += 1
        await session.flush()
        for s in reference.drones:
            if s.id not in known["drone"]:
                drone = DroneRow(
                    id=s.id,
                    model=s.model,
                    home_nest=s.home_nest,
                    capabilities=list(s.capabilities),
                    cruise_speed_mps=s.cruise_speed_mps,
                    max_speed_mps=s.max_speed_mps,
                    climb_rate_mps=s.climb_rate_mps,
                    cruise_altitude_m=s.cruise_altitude_m,
                    endurance_s=s.endurance_s,
                    launch_delay_s=s.launch_delay_s,
                    payload_kg=s.payload_kg,
                    battery_wh=0.0,
                    status="active",
                    version=1,
                )
                session.add(drone)
                _record(session, drone, s.id)
                added["drones"] += 1
        for g in reference.geofences:
            if g.id not in known["geofence"]:
                ring = [list(p) for p in g.ring]
                if ring[0] != ring[-1]:
                    ring.append(ring[0])
                fence = GeofenceRow(
                    id=g.id,
                    name=g.name,
                    kind=g.kind,
                    geometry={"type": "Polygon", "coordinates": [ring]},
                    max_altitude_m=g.max_altitude_m,
                    active_from=_when(g.active_from),
                    active_until=_when(g.active_until),
                    version=1,
                )
                session.add(fence)
                _record(session, fence, g.id)
                added["geofences"] += 1
        await session.flush()  # plans name their departments
        plans, scenarios = await seed_inspection(
            session, reference, known, actor=SEED_ACTOR, timezone=timezone
        )
        added["inspection_plans"], added["scenarios"] = plans, scenarios
    return SeedResult(**added)
