"""Registry tables: departments, nests, drones, geofences (the fleet's source of truth), audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from airgrid.db import Base, UTCDateTime, utcnow


class DepartmentRow(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(200), default="")
    feed_preferences: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class NestRow(Base):
    __tablename__ = "nests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    charging_slots: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="online")
    wind_mps: Mapped[float] = mapped_column(Float, default=0.0)
    wind_hold_mps: Mapped[float] = mapped_column(Float, default=12.0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class DroneRow(Base):
    __tablename__ = "drones"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    home_nest: Mapped[str] = mapped_column(ForeignKey("nests.id"), index=True)
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    cruise_speed_mps: Mapped[float] = mapped_column(Float)
    max_speed_mps: Mapped[float] = mapped_column(Float)
    climb_rate_mps: Mapped[float] = mapped_column(Float)
    cruise_altitude_m: Mapped[float] = mapped_column(Float)
    endurance_s: Mapped[float] = mapped_column(Float)
    launch_delay_s: Mapped[float] = mapped_column(Float)
    payload_kg: Mapped[float] = mapped_column(Float, default=0.0)
    battery_wh: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class GeofenceRow(Base):
    __tablename__ = "geofences"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_altitude_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    active_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    active_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class AuditRow(Base):
    """One registry write: who, what, when, and the entity before and after."""

    __tablename__ = "registry_audit"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(40))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        Index("ix_registry_audit_entity", "entity_kind", "entity_id"),
        Index("ix_registry_audit_at", "at"),
    )


class InspectionPlanRow(Base):
    """An area (Polygon) or a corridor (LineString and width) that its department wants seen
    again every `revisit_interval_s`, inside its daily active windows (none means all day)."""

    __tablename__ = "inspection_plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # A department that still owns plans cannot be deleted (409), like one with credentials.
    department: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    width_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    revisit_interval_s: Mapped[int] = mapped_column(Integer)
    active_windows: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ScenarioRow(Base):
    """One entry of the scenario catalogue: what a detection is about, who owns its cases, how
    detections merge into a case and when a case becomes an incident."""

    __tablename__ = "scenarios"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    severity: Mapped[str] = mapped_column(String(16))
    merge_radius_m: Mapped[float] = mapped_column(Float)
    merge_window_s: Mapped[int] = mapped_column(Integer)
    escalation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
