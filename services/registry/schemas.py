"""Registry HTTP shapes: what the API answers and what it takes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from airgrid.auth import Role

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class DepartmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name_en: str
    name_zh: str
    contact: str
    version: int


class NestRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    location: dict[str, Any]
    charging_slots: int
    status: str
    wind_mps: float
    wind_hold_mps: float
    version: int


class DroneRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    model: str
    home_nest: str
    capabilities: list[str]
    cruise_speed_mps: float
    max_speed_mps: float
    climb_rate_mps: float
    cruise_altitude_m: float
    endurance_s: float
    launch_delay_s: float
    payload_kg: float
    status: str
    version: int


class GeofenceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str
    geometry: dict[str, Any]
    max_altitude_m: float | None
    active_from: datetime | None
    active_until: datetime | None
    version: int


class CredentialCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    department: str | None = Field(default=None, description="Required for role department.")
    nest_id: str | None = Field(default=None, description="Required for role gateway.")
    label: str = Field(default="", max_length=200)
    expires_at: datetime | None = None


class CredentialIssued(BaseModel):
    id: str
    role: Role
    department: str | None
    nest_id: str | None
    label: str
    expires_at: datetime | None
    key: str = Field(description="The secret, shown once: store it now.")
