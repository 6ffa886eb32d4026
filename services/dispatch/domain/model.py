"""Values the dispatch core reasons about: drones, nests, incidents and its decisions."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

# Stable namespace so that the same incident and slot always yield the same mission id,
# which makes a replay of the log produce identical decisions.
_MISSION_NAMESPACE = uuid.UUID("6f3b1c84-6d0f-4d7e-9a51-1f1d2f8f0a11")


class MissionStage(enum.StrEnum):
    ASSIGNED = "assigned"
    LAUNCHED = "launched"
    ON_SCENE = "on_scene"
    RETURNING = "returning"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class IncidentStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    LAUNCHED = "launched"
    ON_SCENE = "on_scene"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class NestView:
    id: str
    lon: float
    lat: float
    online: bool = True
    wind_mps: float = 0.0
    wind_hold_mps: float = 12.0

    @property
    def weather_hold(self) -> bool:
        return self.wind_mps >= self.wind_hold_mps


@dataclass(frozen=True)
class DroneView:
    """What the core knows of a drone: its registry spec merged with its live state."""

    id: str
    home_nest: str
    capabilities: frozenset[str]
    cruise_speed_mps: float
    climb_rate_mps: float
    cruise_altitude_m: float
    launch_delay_s: float
    endurance_s: float
    active: bool = True
    lon: float | None = None
    lat: float | None = None
    battery_pct: float = 0.0
    airborne: bool = False
    link_ok: bool = False
    faults: tuple[str, ...] = ()

    @property
    def has_position(self) -> bool:
        return self.lon is not None and self.lat is not None


@dataclass(frozen=True)
class IncidentRequest:
    id: str
    priority: int
    lon: float
    lat: float
    required_capabilities: frozenset[str]
    drones_needed: int
    on_scene_seconds: int
    accepted_ms: int


@dataclass(frozen=True)
class Assignment:
    mission_id: str
    drone_id: str
    slot: int
    eta_seconds: float
    from_nest_id: str


@dataclass(frozen=True)
class Assigned:
    """Some or all open slots of an incident got drones."""

    incident_id: str
    assignments: tuple[Assignment, ...]
    complete: bool


@dataclass(frozen=True)
class Queued:
    """Nothing feasible for the open slots; the incident waits, with the reason why."""

    incident_id: str
    open_slots: tuple[int, ...]
    reason: str


Decision = Assigned | Queued


def mission_id_for(incident_id: str, slot: int, attempt: int) -> str:
    return str(uuid.uuid5(_MISSION_NAMESPACE, f"{incident_id}/{slot}/{attempt}"))


@dataclass
class IncidentSlots:
    request: IncidentRequest
    open_slots: set[int] = field(default_factory=set)
    attempts: int = 0
