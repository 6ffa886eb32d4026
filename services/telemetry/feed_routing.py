"""Feed routing: which departments' feeds an item goes to, and the items themselves.

A drone on a mission belongs to the feeds of the mission's incident department and of the
departments the incident is shared with, read from the incident and mission views.
"""

from __future__ import annotations

from typing import Any

import orjson

from airgrid.bus import TopicView
from airgrid.config import Settings
from airgrid.topics import DEPARTMENT_CODES, INCIDENTS, MISSION_EVENTS
from airgrid.v1 import drone_state_pb2, incident_pb2, mission_pb2

POSITION_ITEM = "drone.position"


def incident_view(settings: Settings) -> TopicView:
    return TopicView(settings, INCIDENTS, incident_pb2.IncidentEvent.FromString)


def mission_view(settings: Settings) -> TopicView:
    # Traced: a mission's events (its stage on scene among them) reach this service's feed
    # routing in the trace of their incident.
    return TopicView(
        settings,
        MISSION_EVENTS,
        mission_pb2.MissionEvent.FromString,
        traced_as="telemetry.mission_event",
    )


class FeedRouting:
    """A drone on a mission belongs to the feeds of the mission's incident department and of
    the departments the incident is shared with; read from the incident and mission views."""

    def __init__(self, incidents: TopicView, missions: TopicView) -> None:
        self.incidents = incidents
        self.missions = missions

    def departments_of(self, mission_id: str) -> tuple[str, ...]:
        if not mission_id:
            return ()
        mission: mission_pb2.MissionEvent | None = self.missions.items.get(mission_id)
        if mission is None:
            return ()
        event: incident_pb2.IncidentEvent | None = self.incidents.items.get(mission.incident_id)
        if event is None or not event.HasField("accepted"):
            return ()
        incident = event.accepted
        codes = [incident.department, *incident.shared_with]
        return tuple(dict.fromkeys(code for code in codes if code in DEPARTMENT_CODES))


def encode_item(kind: str, body: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, **body})


def position_item(state: drone_state_pb2.DroneState) -> bytes:
    """The feed item of a drone's new state."""
    return encode_item(
        POSITION_ITEM,
        {
            "drone_id": state.drone_id,
            "mission_id": state.mission_id,
            "lon": state.lon,
            "lat": state.lat,
            "alt_m": state.alt_m,
            "battery_pct": state.battery_pct,
            "seq": state.last_seq,
            "event_time_ms": state.event_time_ms,
        },
    )
