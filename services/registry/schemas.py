"""Registry HTTP shapes: what the API answers and what it takes (Create, Update, Read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airgrid.auth import Role
from airgrid.reference import CAPABILITIES
from services.registry.domain.geojson import MAX_RING_POSITIONS, polygon_problems, position_problems

T = TypeVar("T")

ENTITY_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEPARTMENT_CODE = r"^[a-z][a-z0-9-]{1,31}$"
NestStatus = Literal["online", "offline", "maintenance"]
DroneStatus = Literal["active", "maintenance", "retired"]
GeofenceKind = Literal["no-fly", "altitude-limit", "temporary"]
FeedEvent = Literal["incident", "mission", "position", "alert"]


def _all_feed_events() -> list[FeedEvent]:
    return ["incident", "mission", "position", "alert"]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def _nul_free(value: Any, where: str = "body") -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character; remove it")
    elif isinstance(value, dict):
        for key, item in value.items():
            _nul_free(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            _nul_free(item, where)


class Strict(BaseModel):
    """A request shape: unknown fields and NUL characters (which no database text holds) are
    refused with 422."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _nul_free(data)
        return data


# A GeoJSON position as the document states it: longitude, latitude, an optional altitude.
POSITION_SCHEMA: dict[str, Any] = {
    "minItems": 2,
    "maxItems": 3,
    "prefixItems": [
        {"type": "number", "minimum": -180, "maximum": 180},
        {"type": "number", "minimum": -90, "maximum": 90},
    ],
}
Position = Annotated[list[float], Field(json_schema_extra=POSITION_SCHEMA)]
MIN_RING_POSITIONS = 4


class PointGeometry(Strict):
    type: Literal["Point"]
    coordinates: Position = Field(description="[longitude, latitude] in WGS84 degrees.")

    @field_validator("coordinates")
    @classmethod
    def _in_range(cls, value: list[float]) -> list[float]:
        problems = position_problems(value, "coordinates")
        if problems:
            raise ValueError(problems[0])
        return value[:2]


class PolygonGeometry(Strict):
    type: Literal["Polygon"]
    coordinates: list[
        Annotated[
            list[Position], Field(min_length=MIN_RING_POSITIONS, max_length=MAX_RING_POSITIONS)
        ]
    ] = Field(
        min_length=1,
        description="Linear rings of [longitude, latitude]; closed, not self-intersecting.",
    )

    @field_validator("coordinates")
    @classmethod
    def _simple_closed_rings(cls, value: list[list[list[float]]]) -> list[list[list[float]]]:
        problems = polygon_problems(value)
        if problems:
            raise ValueError("; ".join(problems[:3]))
        return value


class FeedPreferences(Strict):
    events: list[FeedEvent] = Field(
        default_factory=_all_feed_events,
        description="Which updates the department's feed carries.",
    )
    area: PolygonGeometry | None = Field(
        default=None, description="Only updates inside this polygon; none means the whole zone."
    )
    transport: Literal["kafka", "sse", "both"] = "both"


# -- departments -------------------------------------------------------------------------


class DepartmentCreate(Strict):
    code: str = Field(pattern=DEPARTMENT_CODE, description="Used in credentials, topics, URLs.")
    name_en: str = Field(min_length=1, max_length=200)
    name_zh: str = Field(min_length=1, max_length=200)
    contact: str = Field(default="", max_length=200)
    feed_preferences: FeedPreferences = Field(default_factory=FeedPreferences)


class DepartmentUpdate(Strict):
    name_en: str | None = Field(default=None, min_length=1, max_length=200)
    name_zh: str | None = Field(default=None, min_length=1, max_length=200)
    contact: str | None = Field(default=None, max_length=200)
    feed_preferences: FeedPreferences | None = None


class DepartmentRead(BaseModel):
    code: str
    name_en: str
    name_zh: str
    contact: str
    feed_preferences: dict[str, Any]
    version: int


# -- nests -------------------------------------------------------------------------------


class NestCreate(Strict):
    id: str = Field(pattern=ENTITY_ID)
    name: str = Field(min_length=1, max_length=200)
    location: PointGeometry
    charging_slots: int = Field(ge=1, le=64)
    status: NestStatus = "online"
    wind_mps: float = Field(default=0.0, ge=0, le=100)
    wind_hold_mps: float = Field(default=12.0, gt=0, le=60)


class NestUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    location: PointGeometry | None = None
    charging_slots: int | None = Field(default=None, ge=1, le=64)
    status: NestStatus | None = None
    wind_mps: float | None = Field(default=None, ge=0, le=100)
    wind_hold_mps: float | None = Field(default=None, gt=0, le=60)


class NestRead(BaseModel):
    id: str
    name: str
    location: dict[str, Any]
    charging_slots: int
    status: str
    wind_mps: float
    wind_hold_mps: float
    version: int


# -- drones ------------------------------------------------------------------------------


def _known_capabilities(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}")
    return sorted(set(value))


class DroneCreate(Strict):
    id: str = Field(pattern=ENTITY_ID)
    model: str = Field(min_length=1, max_length=64)
    home_nest: str = Field(min_length=1, max_length=64)
    capabilities: list[str] = Field(default_factory=list, max_length=16)
    cruise_speed_mps: float = Field(gt=0, le=60)
    max_speed_mps: float = Field(gt=0, le=80)
    climb_rate_mps: float = Field(default=5.0, gt=0, le=30)
    cruise_altitude_m: float = Field(default=120.0, gt=0, le=1000)
    endurance_s: float = Field(gt=0, le=36_000)
    launch_delay_s: float = Field(default=20.0, ge=0, le=600)
    payload_kg: float = Field(default=0.0, ge=0, le=100)
    battery_wh: float = Field(default=0.0, ge=0, le=10_000)
    status: DroneStatus = "active"

    _capabilities = field_validator("capabilities")(_known_capabilities)

    @model_validator(mode="after")
    def _speeds(self) -> DroneCreate:
        if self.max_speed_mps < self.cruise_speed_mps:
            raise ValueError("max_speed_mps must be at least cruise_speed_mps")
        return self


class DroneUpdate(Strict):
    model: str | None = Field(default=None, min_length=1, max_length=64)
    home_nest: str | None = Field(default=None, min_length=1, max_length=64)
    capabilities: list[str] | None = Field(default=None, max_length=16)
    cruise_speed_mps: float | None = Field(default=None, gt=0, le=60)
    max_speed_mps: float | None = Field(default=None, gt=0, le=80)
    climb_rate_mps: float | None = Field(default=None, gt=0, le=30)
    cruise_altitude_m: float | None = Field(default=None, gt=0, le=1000)
    endurance_s: float | None = Field(default=None, gt=0, le=36_000)
    launch_delay_s: float | None = Field(default=None, ge=0, le=600)
    payload_kg: float | None = Field(default=None, ge=0, le=100)
    battery_wh: float | None = Field(default=None, ge=0, le=10_000)
    status: DroneStatus | None = None

    _capabilities = field_validator("capabilities")(_known_capabilities)


class DroneRead(BaseModel):
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
    battery_wh: float
    status: str
    version: int


# -- geofences ---------------------------------------------------------------------------


class GeofenceCreate(Strict):
    id: str = Field(pattern=ENTITY_ID)
    name: str = Field(min_length=1, max_length=200)
    kind: GeofenceKind
    geometry: PolygonGeometry
    max_altitude_m: float | None = Field(default=None, ge=0, le=10_000)
    active_from: datetime | None = None
    active_until: datetime | None = None

    @model_validator(mode="after")
    def _window(self) -> GeofenceCreate:
        check_window(self.active_from, self.active_until)
        return self


class GeofenceUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: GeofenceKind | None = None
    geometry: PolygonGeometry | None = None
    max_altitude_m: float | None = Field(default=None, ge=0, le=10_000)
    active_from: datetime | None = None
    active_until: datetime | None = None


def check_window(active_from: datetime | None, active_until: datetime | None) -> None:
    for name, value in (("active_from", active_from), ("active_until", active_until)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} needs a UTC offset, for example 2026-05-01T08:00:00Z")
    if active_from and active_until and active_until <= active_from:
        raise ValueError("active_until must be after active_from")


class GeofenceRead(BaseModel):
    id: str
    name: str
    kind: str
    geometry: dict[str, Any]
    max_altitude_m: float | None
    active_from: datetime | None
    active_until: datetime | None
    version: int


# -- credentials, audit, snapshot --------------------------------------------------------


class CredentialCreate(Strict):
    role: Role
    department: str | None = Field(default=None, description="Required for role department.")
    nest_id: str | None = Field(default=None, description="Required for role gateway.")
    label: str = Field(default="", max_length=200)
    expires_at: datetime | None = None


class CredentialRotate(Strict):
    grace_seconds: int = Field(
        default=0,
        ge=0,
        le=7 * 86_400,
        description="How long the old key keeps working; 0 revokes it at once.",
    )


class CredentialRead(BaseModel):
    id: str
    role: Role
    department: str | None
    nest_id: str | None
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    replaces: str | None


class CredentialIssued(BaseModel):
    id: str
    role: Role
    department: str | None
    nest_id: str | None
    label: str
    expires_at: datetime | None
    replaces: str | None = None
    key: str = Field(description="The secret, shown once: store it now.")


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_role: str
    action: str
    entity_kind: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Snapshot(BaseModel):
    """The whole registry at one instant. Rebuild a view from it, then apply the records of
    airgrid.registry.changes whose version is greater than the entity's version here."""

    taken_at: datetime
    topic: str
    departments: list[DepartmentRead]
    nests: list[NestRead]
    drones: list[DroneRead]
    geofences: list[GeofenceRead]
