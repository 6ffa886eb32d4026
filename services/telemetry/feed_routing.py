"""Feed routing: which departments' feeds an item goes to, and the items themselves.

A drone on a mission belongs to the feeds of the mission's incident department and of the
departments the incident is shared with, read from the incident and mission views. A case
belongs to the feeds of its scenario's owner departments, and to no other.
"""

from __future__ import annotations

from typing import Any

import orjson

from airgrid.bus import TopicView
from airgrid.config import Settings
from airgrid.topics import DEPARTMENT_CODES, INCIDENTS, MISSION_EVENTS
from airgrid.v1 import drone_state_pb2, incident_pb2, mission_pb2
from services.telemetry.domain.cases import Case

POSITION_ITEM = "drone.position"
CASE_OPENED_ITEM = "case.opened"
CASE_UPDATED_ITEM = "case.updated"


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


def case_departments(case: Case) -> tuple[str, ...]:
    """The feeds a case goes to: its owner departments that have a feed."""
    return tuple(dict.fromkeys(code for code in case.departments if code in DEPARTMENT_CODES))


def case_body(case: Case) -> dict[str, Any]:
    """A case as feeds and REST show it."""
    return {
        "id": case.id,
        "scenario": case.scenario,
        "departments": list(case.departments),
        "status": case.status.value,
        "lon": case.lon,
        "lat": case.lat,
        "first_seen_ms": case.first_seen_ms,
        "last_seen_ms": case.last_seen_ms,
        "detection_count": case.count,
        "best_detection_id": case.best_detection_id,
        "best_confidence": case.best_confidence,
        "best_media": {"uri": case.best_media_uri, "sha256": case.best_media_sha256},
        "incident_id": case.incident_id,
        "version": case.version,
    }


def case_item(case: Case, *, opened: bool, detection_id: str, action: str, time_ms: int) -> bytes:
    """The feed item of a new or changed case. The anchor is also at the top level, so a
    stream's bbox filter applies to cases as to drone positions."""
    return encode_item(
        CASE_OPENED_ITEM if opened else CASE_UPDATED_ITEM,
        {
            "case": case_body(case),
            "detection_id": detection_id,
            "action": action,
            "lon": case.lon,
            "lat": case.lat,
            "time_ms": time_ms,
        },
    )
