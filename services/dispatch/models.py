"""Dispatch tables: incidents, their stage timeline, missions and idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from airgrid.db import Base, UTCDateTime, utcnow

# Stages in which a mission holds its drone; a partial unique index enforces one per drone.
ACTIVE_STAGES = ("assigned", "launched", "on_scene", "returning")
_ACTIVE_SQL = text("stage IN ('assigned', 'launched', 'on_scene', 'returning')")


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    department: Mapped[str] = mapped_column(String(32), index=True)
    reported_by: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    priority: Mapped[int] = mapped_column(Integer)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    required_capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    drones_needed: Mapped[int] = mapped_column(Integer, default=1)
    on_scene_seconds: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    shared_with: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A duplicate report shares the missions of the incident it is linked to.
    linked_to: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    # Set on routine-inspection sorties the dispatch core started itself.
    patrol_route: Mapped[str | None] = mapped_column(String(64), nullable=True)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class IncidentStageRow(Base):
    """The stage timeline: one row per stage reached, in order."""

    __tablename__ = "incident_stages"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("incident_id", "stage", name="uq_incident_stage"),)


class MissionRow(Base):
    __tablename__ = "missions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    drone_id: Mapped[str] = mapped_column(String(64), index=True)
    from_nest_id: Mapped[str] = mapped_column(String(64), default="")
    eta_seconds: Mapped[float] = mapped_column(Float)
    stage: Mapped[str] = mapped_column(String(16))
    # A relief of a relay chain: the mission on scene it takes over from.
    relieves: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index(
            "uq_missions_active_drone",
            "drone_id",
            unique=True,
            postgresql_where=_ACTIVE_SQL,
            sqlite_where=_ACTIVE_SQL,
        ),
        Index(
            "uq_missions_active_slot",
            "incident_id",
            "slot",
            unique=True,
            postgresql_where=_ACTIVE_SQL,
            sqlite_where=_ACTIVE_SQL,
        ),
    )


class IdempotencyKeyRow(Base):
    """IETF httpapi Idempotency-Key: scoped to the caller, replayed after completion."""

    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CoverageHoleRow(Base):
    """A cell of the zone that no available drone reaches within the SLA, as dispatch's writer
    last computed it: the read model of the operators' map (view map_coverage_holes). The
    writer replaces a zone's rows in one transaction when its set of holes changes."""

    __tablename__ = "coverage_holes"

    zone: Mapped[str] = mapped_column(String(64), primary_key=True)
    cell: Mapped[int] = mapped_column(Integer, primary_key=True)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    cell_m: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
