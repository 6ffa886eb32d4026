"""Registry use cases: create, update and delete entities, each write audited and published;
the whole registry as a snapshot.

Every function runs inside the caller's transaction: the row, its audit entry and its
RegistryChange outbox record commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.auth import Credential
from airgrid.db import utcnow
from airgrid.problems import Problem
from airgrid.reference import Zone
from services.registry.changes import Row, publish, publish_deleted

__all__ = ["Row"]
from services.registry.domain.zone_bounds import check_geofence_ring, check_nest_position
from services.registry.models import AuditRow, DepartmentRow, DroneRow, GeofenceRow, NestRow
from services.registry.schemas import (
    DepartmentRead,
    DroneRead,
    FeedPreferences,
    GeofenceRead,
    NestRead,
    Snapshot,
    check_window,
)

T = TypeVar("T", bound=BaseModel)

ROWS: dict[str, type[Row]] = {
    "department": DepartmentRow,
    "nest": NestRow,
    "drone": DroneRow,
    "geofence": GeofenceRow,
}
# Columns an update may set to null; every other field needs a value.
NULLABLE = {"max_altitude_m", "active_from", "active_until"}


@dataclass(frozen=True)
class Actor:
    """Who writes: a credential id and its role, or a command such as `seed` or `import`."""

    id: str
    role: str


def entity_id(row: Row) -> str:
    return row.code if isinstance(row, DepartmentRow) else row.id


def kind_of(row: Row) -> str:
    for kind, cls in ROWS.items():
        if isinstance(row, cls):
            return kind
    raise TypeError(f"not a registry row: {row!r}")


def etag(version: int) -> str:
    return f'"{version}"'


def read_of(row: Row) -> DepartmentRead | NestRead | DroneRead | GeofenceRead:
    if isinstance(row, DepartmentRow):
        return DepartmentRead(
            code=row.code,
            name_en=row.name_en,
            name_zh=row.name_zh,
            contact=row.contact,
            # Rows from before feed preferences existed read as the defaults.
            feed_preferences=FeedPreferences.model_validate(row.feed_preferences or {}).model_dump(
                mode="json"
            ),
            version=row.version,
        )
    if isinstance(row, NestRow):
        return NestRead(
            id=row.id,
            name=row.name,
            location={"type": "Point", "coordinates": [row.lon, row.lat]},
            charging_slots=row.charging_slots,
            status=row.status,
            wind_mps=row.wind_mps,
            wind_hold_mps=row.wind_hold_mps,
            version=row.version,
        )
    if isinstance(row, DroneRow):
        return DroneRead(
            id=row.id,
            model=row.model,
            home_nest=row.home_nest,
            capabilities=sorted(row.capabilities),
            cruise_speed_mps=row.cruise_speed_mps,
            max_speed_mps=row.max_speed_mps,
            climb_rate_mps=row.climb_rate_mps,
            cruise_altitude_m=row.cruise_altitude_m,
            endurance_s=row.endurance_s,
            launch_delay_s=row.launch_delay_s,
            payload_kg=row.payload_kg,
            battery_wh=row.battery_wh,
            status=row.status,
            version=row.version,
        )
    return GeofenceRead(
        id=row.id,
        name=row.name,
        kind=row.kind,
        geometry=row.geometry,
        max_altitude_m=row.max_altitude_m,
        active_from=row.active_from,
        active_until=row.active_until,
        version=row.version,
    )


def document_of(row: Row) -> dict[str, Any]:
    """The entity as JSON, as the API shows it: what the audit log keeps."""
    document: dict[str, Any] = read_of(row).model_dump(mode="json")
    return document


def audit(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    kind: str,
    entity: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session.add(
        AuditRow(
            actor=actor.id,
            actor_role=actor.role,
            action=action,
            entity_kind=kind,
            entity_id=entity,
            before=before,
            after=after,
        )
    )


def check_if_match(if_match: str | None, row: Row) -> None:
    """Optimistic concurrency: the caller must name the version it read (RFC 9110 If-Match)."""
    what = f"{kind_of(row)} {entity_id(row)}"
    current = etag(row.version)
    if if_match is None:
        raise Problem(
            428,
            "Precondition required",
            f"Send If-Match: {current} (the ETag of GET on the {what}) so that a change you "
            "have not seen is never overwritten.",
            kind="if-match-required",
            current_etag=current,
        )
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    if "*" not in tags and current not in tags:
        raise Problem(
            412,
            "Precondition failed",
            f"The {what} changed since you read it: it is at ETag {current}, you sent "
            f"{if_match}. GET it again, re-apply your change and retry.",
            kind="stale-etag",
            current_etag=current,
        )


# -- rows from request bodies ------------------------------------------------------------


def _columns(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Request fields (already validated) as column values."""
    values = dict(fields)
    if kind == "nest" and values.get("location") is not None:
        lon, lat = values.pop("location")["coordinates"][:2]
        values["lon"], values["lat"] = float(lon), float(lat)
    return values


def new_row(kind: str, body: BaseModel) -> Row:
    values = _columns(kind, body.model_dump(mode="json"))
    if kind == "geofence":
        for name in ("active_from", "active_until"):
            values[name] = getattr(body, name)
    row: Row = ROWS[kind](**values, version=1)
    return row


async def _ensure_nest_has_room(session: AsyncSession, drone: DroneRow) -> None:
    """A drone's home nest must exist and keep a charging slot for each non-retired drone."""
    # Locking the nest serialises concurrent assignments to it.
    nest = await session.get(NestRow, drone.home_nest, with_for_update=True)
    if nest is None:
        raise Problem(
            422,
            "Unknown nest",
            f"home_nest {drone.home_nest!r} does not exist; create the nest first or pick one "
            "from GET /v1/nests.",
            kind="unknown-nest",
            errors=[{"field": "home_nest", "message": "unknown nest"}],
        )
    if drone.status == "retired":
        return
    docked = await session.scalar(
        select(func.count())
        .select_from(DroneRow)
        .where(DroneRow.home_nest == nest.id)
        .where(DroneRow.id != drone.id)
        .where(DroneRow.status != "retired")
    )
    if (docked or 0) >= nest.charging_slots:
        raise Problem(
            409,
            "Nest full",
            f"Nest {nest.id} is full: {nest.charging_slots} charging slots, {docked} drones; "
            "pick another home_nest, retire a drone or add slots to the nest.",
            kind="nest-full",
        )


async def _ensure_slots_cover_drones(session: AsyncSession, nest: NestRow) -> None:
    docked = await session.scalar(
        select(func.count())
        .select_from(DroneRow)
        .where(DroneRow.home_nest == nest.id)
        .where(DroneRow.status != "retired")
    )
    if (docked or 0) > nest.charging_slots:
        raise Problem(
            409,
            "Nest too small",
            f"Nest {nest.id} houses {docked} drones; it needs at least that many charging "
            "slots. Move drones to another nest first.",
            kind="nest-full",
        )


def _check_in_zone(row: Row, zone: Zone) -> None:
    """Positions outside the zone are refused (422 naming the field)."""
    if isinstance(row, NestRow):
        check_nest_position(zone, row.lon, row.lat)
    elif isinstance(row, GeofenceRow):
        check_geofence_ring(zone, row.geometry["coordinates"][0])


async def create(
    session: AsyncSession, *, kind: str, body: BaseModel, actor: Actor, zone: Zone
) -> Row:
    row = new_row(kind, body)
    _check_in_zone(row, zone)
    key = entity_id(row)
    if await session.get(ROWS[kind], key) is not None:
        raise Problem(
            409,
            "Duplicate id",
            f"A {kind} {key!r} already exists; choose another id, or PATCH the existing one.",
            kind="duplicate-id",
        )
    if isinstance(row, DroneRow):
        await _ensure_nest_has_room(session, row)
    row.version = await _next_life_version(session, kind, key)
    session.add(row)
    await session.flush()
    audit(
        session,
        actor=actor,
        action="create",
        kind=kind,
        entity=key,
        before=None,
        after=document_of(row),
    )
    publish(session, row)
    return row


async def _next_life_version(session: AsyncSession, kind: str, key: str) -> int:
    """A re-created id continues after its delete's version, so that a consumer that kept the
    delete never mistakes the new entity for an older one."""
    last = await session.scalar(
        select(AuditRow)
        .where(AuditRow.entity_kind == kind)
        .where(AuditRow.entity_id == key)
        .order_by(AuditRow.id.desc())
        .limit(1)
    )
    if last is None or last.action != "delete" or not last.before:
        return 1
    return int(last.before.get("version", 0)) + 2


def patched_fields(body: BaseModel, nullable: Collection[str]) -> dict[str, Any]:
    """The fields a PATCH sets; 422 naming each one set to null that may not be."""
    fields = body.model_dump(mode="json", exclude_unset=True)
    nulls = sorted(name for name, value in fields.items() if value is None and name not in nullable)
    if nulls:
        raise Problem(
            422,
            "Invalid request",
            f"{', '.join(nulls)} cannot be null; leave a field out to keep its value.",
            kind="invalid-request",
            errors=[{"field": name, "message": "cannot be null"} for name in nulls],
        )
    return fields


async def find(session: AsyncSession, kind: str, key: str, *, lock: bool = False) -> Row:
    row: Row | None = await session.get(ROWS[kind], key, with_for_update=lock)
    if row is None:
        raise Problem(404, "Not found", f"No {kind} {key!r}; list them with GET /v1/{kind}s.")
    return row


async def update(
    session: AsyncSession,
    *,
    kind: str,
    key: str,
    body: BaseModel,
    if_match: str | None,
    actor: Actor,
    zone: Zone,
) -> Row:
    row = await find(session, kind, key, lock=True)
    check_if_match(if_match, row)
    fields = patched_fields(body, NULLABLE)
    if kind == "geofence":
        for name in ("active_from", "active_until"):
            if name in fields:
                fields[name] = getattr(body, name)
    before = document_of(row)
    # No flush before the checks: a bad reference must answer 4xx, not fail in the database.
    with session.no_autoflush:
        for name, value in _columns(kind, fields).items():
            setattr(row, name, value)
        if {"location", "geometry"} & fields.keys():
            _check_in_zone(row, zone)
        if isinstance(row, GeofenceRow):
            try:
                check_window(row.active_from, row.active_until)
            except ValueError as error:
                raise Problem(
                    422, "Invalid active window", str(error), kind="invalid-request"
                ) from None
        if isinstance(row, DroneRow):
            if row.max_speed_mps < row.cruise_speed_mps:
                raise Problem(
                    422,
                    "Invalid speeds",
                    "max_speed_mps must be at least cruise_speed_mps.",
                    kind="invalid-request",
                )
            if {"home_nest", "status"} & fields.keys():
                await _ensure_nest_has_room(session, row)
        if isinstance(row, NestRow) and "charging_slots" in fields:
            await _ensure_slots_cover_drones(session, row)
    after = document_of(row)
    if after == before:
        return row  # nothing changed: no new version, no event
    row.version += 1
    await session.flush()
    after["version"] = row.version
    audit(session, actor=actor, action="update", kind=kind, entity=key, before=before, after=after)
    publish(session, row)
    return row


async def delete(
    session: AsyncSession, *, kind: str, key: str, if_match: str | None, actor: Actor
) -> None:
    row = await find(session, kind, key, lock=True)
    check_if_match(if_match, row)
    if isinstance(row, NestRow):
        drones = await session.scalar(
            select(func.count()).select_from(DroneRow).where(DroneRow.home_nest == key)
        )
        if drones:
            raise Problem(
                409,
                "Nest in use",
                f"Nest {key} is home to {drones} drones; move or delete them first.",
                kind="nest-in-use",
            )
    if isinstance(row, DepartmentRow):
        active = await session.scalar(
            select(func.count())
            .select_from(Credential)
            .where(Credential.department == key)
            .where(Credential.revoked_at.is_(None))
        )
        if active:
            raise Problem(
                409,
                "Department in use",
                f"Department {key} has {active} credentials that are not revoked; revoke them "
                "first (DELETE /v1/credentials/{id}).",
                kind="department-in-use",
            )
    before = document_of(row)
    await session.delete(row)
    await session.flush()
    audit(session, actor=actor, action="delete", kind=kind, entity=key, before=before, after=None)
    publish_deleted(session, kind=kind, entity_id=key, version=row.version + 1)


def credential_document(row: Credential) -> dict[str, Any]:
    """A credential as the audit log keeps it: never the hash or the salt."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": row.id,
        "role": row.role,
        "department": row.department,
        "nest_id": row.nest_id,
        "label": row.label,
        "expires_at": when(row.expires_at),
        "revoked_at": when(row.revoked_at),
        "replaces": row.replaces,
    }


async def take_snapshot(session: AsyncSession, topic: str, kinds: set[str]) -> Snapshot:
    """Every entity of `kinds` now, with the topic that carries the changes after it."""
    taken_at = utcnow()

    async def everything(cls: type[Any], order: Any, read: type[T]) -> list[T]:
        if kind_of(cls()) not in kinds:
            return []
        rows: Sequence[Any] = (await session.scalars(select(cls).order_by(order))).all()
        return [read.model_validate(document_of(r)) for r in rows]

    return Snapshot(
        taken_at=taken_at,
        topic=topic,
        departments=await everything(DepartmentRow, DepartmentRow.code, DepartmentRead),
        nests=await everything(NestRow, NestRow.id, NestRead),
        drones=await everything(DroneRow, DroneRow.id, DroneRead),
        geofences=await everything(GeofenceRow, GeofenceRow.id, GeofenceRead),
    )
