"""Dispatch HTTP shapes: the incident request (GeoJSON) and what the API answers."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from airgrid.topics import DEPARTMENT_CODES

Coordinate = Annotated[list[float], Field(min_length=2, max_length=3)]


def _check_position(position: list[float]) -> list[float]:
    lon, lat = position[0], position[1]
    if not all(math.isfinite(v) for v in position):
        raise ValueError("coordinates must be finite numbers")
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude {lon} is outside -180..180 (GeoJSON order is [lon, lat])")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude {lat} is outside -90..90 (GeoJSON order is [lon, lat])")
    return position


class PointGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["Point"]
    coordinates: Coordinate

    @field_validator("coordinates")
    @classmethod
    def _valid(cls, value: list[float]) -> list[float]:
        return _check_position(value)


class PolygonGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["Polygon"]
    coordinates: Annotated[
        list[Annotated[list[Coordinate], Field(min_length=4)]], Field(min_length=1)
    ]

    @field_validator("coordinates")
    @classmethod
    def _valid(cls, rings: list[list[list[float]]]) -> list[list[list[float]]]:
        for ring in rings:
            for position in ring:
                _check_position(position)
            if ring[0][:2] != ring[-1][:2]:
                raise ValueError("a polygon ring must be closed: repeat its first position last")
        return rings


Geometry = Annotated[PointGeometry | PolygonGeometry, Field(discriminator="type")]


class IncidentCreate(BaseModel):
    """POST /v1/incidents. Geometry is GeoJSON (RFC 7946), [longitude, latitude]."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "fire",
                    "priority": 1,
                    "location": {"type": "Point", "coordinates": [114.41, 30.48]},
                    "required_capabilities": ["thermal"],
                    "drones_needed": 1,
                    "on_scene_seconds": 600,
                    "description": "smoke from a warehouse roof",
                }
            ]
        },
    )

    type: str = Field(min_length=1, max_length=40, description="Code from the incident catalogue.")
    priority: int = Field(ge=1, le=4, description="1 life-safety … 4 routine.")
    location: Geometry
    required_capabilities: list[str] = Field(default_factory=list, max_length=8)
    drones_needed: int = Field(default=1, ge=1, le=5)
    on_scene_seconds: int = Field(default=600, ge=1, le=7200)
    description: str = Field(default="", max_length=2000)
    shared_with: list[Annotated[str, Field(json_schema_extra={"enum": list(DEPARTMENT_CODES)})]] = (
        Field(default_factory=list, max_length=11)
    )


_RELIEVES = (
    "A relief of a relay chain: the id of the mission on scene it takes over from (that drone "
    "is sent home when the relief arrives); null for a first arrival."
)


class MissionRead(BaseModel):
    id: str
    incident_id: str
    drone_id: str
    slot: int
    eta_seconds: float
    stage: str
    from_nest_id: str
    relieves: str | None = Field(default=None, description=_RELIEVES)
    created_at: datetime
    updated_at: datetime


class IncidentMission(BaseModel):
    mission_id: str
    drone_id: str
    eta_seconds: float
    stage: str
    relieves: str | None = Field(default=None, description=_RELIEVES)


class StageRead(BaseModel):
    stage: str
    at: datetime


class IncidentRead(BaseModel):
    id: str
    department: str
    type: str
    priority: int
    status: str
    status_reason: str | None
    location: dict[str, object]
    required_capabilities: list[str]
    drones_needed: int
    on_scene_seconds: int
    description: str
    shared_with: list[str]
    accepted_at: datetime
    missions: list[IncidentMission]
    timeline: list[StageRead]


class IncidentPage(BaseModel):
    items: list[IncidentRead]
    total: int
    limit: int
    offset: int


class MissionPage(BaseModel):
    items: list[MissionRead]
    total: int
    limit: int
    offset: int


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by the department", max_length=500)
