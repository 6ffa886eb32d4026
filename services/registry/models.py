"""Registry tables: departments, nests, drones and geofences (the fleet's source of truth)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from airgrid.db import Base, UTCDateTime, utcnow


class DepartmentRow(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(200), default="")
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
    home_nest: Mapped[str] = mapped_column(ForeignKey("nests.id"))
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    cruise_speed_mps: Mapped[float] = mapped_column(Float)
    max_speed_mps: Mapped[float] = mapped_column(Float)
    climb_rate_mps: Mapped[float] = mapped_column(Float)
    cruise_altitude_m: Mapped[float] = mapped_column(Float)
    endurance_s: Mapped[float] = mapped_column(Float)
    launch_delay_s: Mapped[float] = mapped_column(Float)
    payload_kg: Mapped[float] = mapped_column(Float, default=0.0)
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
