"""Values the dispatch core reasons about: drones, nests, incidents and its decisions."""

from __future__ import annotations

import enum
import hashlib
import uuid
from dataclasses import dataclass, field

# Stable namespace so that the same incident and slot always yield the same mission id,
# which makes a replay of the log produce identical decisions.
_MISSION_NAMESPACE = uuid.UUID("6f3b1c84-6d0f-4d7e-9a51-1f1d2f8f0a11")
_NAMESPACE_BYTES = _MISSION_NAMESPACE.bytes


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
    alt_m: float | None = None  # of the last report while airborne; None = at cruise altitude
    link_ok: bool = False
    faults: tuple[str, ...] = ()
    mode: int = 0  # FlightMode of the last report (telemetry.proto), 0 = unknown
    reported_mission: str = ""  # the mission the drone says it flies

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
    type: str = ""
    department: str = ""
    patrol_route: str = ""  # set on routine-inspection sorties, which rank below priority 4

    @property
    def rank(self) -> int:
        """Queue and preemption rank: the priority, with patrols last of all."""
        return PATROL_RANK if self.patrol_route else self.priority


PATROL_RANK = 5


@dataclass(frozen=True)
class Assignment:
    mission_id: str
    drone_id: str
    slot: int
    eta_seconds: float
    from_nest_id: str
    path: tuple[tuple[float, float], ...] = ()  # lon/lat waypoints after the start
    airborne: bool = False
    relieves: str = ""  # a relief: the mission on scene it takes over from


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


@dataclass(frozen=True)
class Preempted:
    """A drone was taken from lower-ranked work; the victim's slot is open again (re-queued)."""

    incident_id: str
    mission_id: str
    drone_id: str
    slot: int
    by_incident_id: str
    reason: str


@dataclass(frozen=True)
class Redispatched:
    """An assigned drone failed; its mission ends and the slot is open again for another."""

    incident_id: str
    mission_id: str
    drone_id: str
    slot: int
    reason: str


@dataclass(frozen=True)
class Linked:
    """A duplicate report of an event already handled: it shares the primary's missions."""

    incident_id: str
    primary_id: str
    reason: str


@dataclass(frozen=True)
class StageReached:
    mission_id: str
    incident_id: str
    drone_id: str
    stage: MissionStage
    at_ms: int
    reason: str = ""


class SlaAlertKind(enum.StrEnum):
    AT_RISK = "at_risk"
    BREACHED = "breached"
    RELAY_AT_RISK = "relay_at_risk"  # no drone can relieve the one on scene before it leaves


@dataclass(frozen=True)
class SlaAlert:
    incident_id: str
    kind: SlaAlertKind
    eta_seconds: float  # best known time to scene; inf when nothing is on its way
    seconds_left: float
    at_ms: int
    holder_id: str = ""  # relay_at_risk: the mission on scene no drone can relieve in time


class OrderKind(enum.StrEnum):
    LAUNCH = "launch"
    GOTO = "goto"
    RETURN = "return"


@dataclass(frozen=True)
class DroneOrder:
    """A command for a drone: fly to a target along a path and hold, or return to a nest."""

    incident_id: str
    mission_id: str
    drone_id: str
    kind: OrderKind
    target: tuple[float, float] | None = None
    path: tuple[tuple[float, float], ...] = ()
    hold_seconds: int = 0
    nest_id: str = ""


@dataclass(frozen=True)
class PatrolStarted:
    """A routine-inspection sortie begins; it is an incident of its own, ranked last."""

    request: IncidentRequest
    route_id: str

    @property
    def incident_id(self) -> str:
        return self.request.id


Decision = (
    PatrolStarted
    | Assigned
    | Queued
    | Preempted
    | Redispatched
    | Linked
    | StageReached
    | SlaAlert
    | DroneOrder
)


def mission_id_for(incident_id: str, slot: int, attempt: int) -> str:
    """uuid5(namespace, "incident/slot/attempt") as text, without building UUID objects."""
    name = f"{incident_id}/{slot}/{attempt}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class IncidentSlots:
    request: IncidentRequest
    open_slots: set[int] = field(default_factory=set)
    attempts: int = 0
    reason: str = ""  # why the open slots wait
    rank: int = 0  # may rise when a more urgent duplicate links to it
    tried_at: int = -1  # the core's quiet-change count when a search last left it waiting
    scene_since_ms: int = -1  # when a drone first reached the scene (core time)

    def __post_init__(self) -> None:
        self.rank = self.rank or self.request.rank


@dataclass
class Mission:
    """A drone's current work for one slot of an incident or a patrol sortie."""

    id: str
    incident_id: str
    drone_id: str
    slot: int
    stage: MissionStage
    eta_seconds: float
    assigned_ms: int
    relieves: str = ""  # a relief: the mission on scene it takes over from
