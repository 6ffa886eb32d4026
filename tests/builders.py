"""What the tests build: dispatch's view of a drone, an incident and a nest, and the REST body
of an incident.

The defaults describe an ordinary case: a fully charged visual drone with its link up, docked
at its nest on the base point; a routine incident a kilometre or so north-east of it. A test
overrides only what it is about, so its overrides say what it tests.
"""

from __future__ import annotations

from typing import Any

from services.dispatch.domain.model import DroneView, IncidentRequest, NestView

BASE_LON, BASE_LAT = 114.40, 30.48
SCENE_LON, SCENE_LAT = 114.41, 30.49


def drone_view(drone: int | str = "d1", **overrides: object) -> DroneView:
    """A drone as dispatch sees it; an int n names it drone-00n."""
    values: dict[str, object] = {
        "id": drone if isinstance(drone, str) else f"drone-{drone:03d}",
        "home_nest": "nest-01",
        "capabilities": frozenset({"visual"}),
        "cruise_speed_mps": 15.0,
        "climb_rate_mps": 5.0,
        "cruise_altitude_m": 120.0,
        "launch_delay_s": 20.0,
        "endurance_s": 2400.0,
        "lon": BASE_LON,
        "lat": BASE_LAT,
        "battery_pct": 100.0,
        "link_ok": True,
    }
    values.update(overrides)
    return DroneView(**values)  # type: ignore[arg-type]


def incident_request(n: int, **overrides: object) -> IncidentRequest:
    """Incident inc-n, accepted at n seconds, for one drone of any capability."""
    values: dict[str, object] = {
        "id": f"inc-{n}",
        "priority": 3,
        "lon": SCENE_LON,
        "lat": SCENE_LAT,
        "required_capabilities": frozenset(),
        "drones_needed": 1,
        "on_scene_seconds": 120,
        "accepted_ms": 1_000 * n,
    }
    values.update(overrides)
    return IncidentRequest(**values)  # type: ignore[arg-type]


def nest_view(nest_id: str = "nest-01", lon: float = BASE_LON, lat: float = BASE_LAT) -> NestView:
    return NestView(nest_id, lon, lat)


def incident_body(**overrides: Any) -> dict[str, Any]:
    """The JSON a department posts to /v1/incidents: a fire for one drone of any capability."""
    return {
        "type": "fire",
        "priority": 2,
        "location": {"type": "Point", "coordinates": [SCENE_LON, BASE_LAT]},
        "required_capabilities": [],
        "drones_needed": 1,
        "on_scene_seconds": 60,
        "description": "test incident",
        **overrides,
    }
