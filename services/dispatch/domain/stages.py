"""Mission stages observed from a drone's reported state."""

from __future__ import annotations

from airgrid.v1.telemetry_pb2 import FlightMode
from services.dispatch.domain.model import MissionStage

ON_SCENE_RADIUS_M = 60.0

_ORDER = [
    MissionStage.ASSIGNED,
    MissionStage.LAUNCHED,
    MissionStage.ON_SCENE,
    MissionStage.RETURNING,
    MissionStage.COMPLETED,
]
_AIRBORNE_OUT = (
    FlightMode.FLIGHT_MODE_TAKING_OFF,
    FlightMode.FLIGHT_MODE_CRUISING,
    FlightMode.FLIGHT_MODE_HOVERING,
)
_HEADING_HOME = (FlightMode.FLIGHT_MODE_RETURNING, FlightMode.FLIGHT_MODE_LANDING)


def observed_stage(
    current: MissionStage,
    *,
    flying_this_mission: bool,
    mode: int,
    distance_to_scene_m: float,
) -> MissionStage | None:
    """The stage the report shows the mission has reached, if it is further than current."""
    seen: MissionStage | None = None
    if flying_this_mission and mode in _AIRBORNE_OUT:
        seen = MissionStage.LAUNCHED
        if mode == FlightMode.FLIGHT_MODE_HOVERING and distance_to_scene_m <= ON_SCENE_RADIUS_M:
            seen = MissionStage.ON_SCENE
    elif flying_this_mission and mode in _HEADING_HOME:
        seen = MissionStage.RETURNING
    elif mode == FlightMode.FLIGHT_MODE_DOCKED and current != MissionStage.ASSIGNED:
        seen = MissionStage.COMPLETED
    if seen is None or current not in _ORDER:
        return None
    return seen if _ORDER.index(seen) > _ORDER.index(current) else None
