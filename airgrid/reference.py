"""Loads a zone's data directory (boundary, nests, drones, departments, no-fly zones, catalogue)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from airgrid.geo import point_in_polygon, polygon_area_km2, ring_self_intersects

DEFAULT_ZONE = Path(__file__).parent / "data" / "east-lake"
CAPABILITIES = frozenset(
    {"visual", "thermal", "zoom", "loudspeaker", "gas_sensor", "spotlight", "payload"}
)
GEOFENCE_KINDS = frozenset({"no-fly", "altitude-limit", "temporary"})


class ReferenceDataError(ValueError):
    """The zone data is inconsistent; the message names the file and the entry."""


@dataclass(frozen=True)
class Zone:
    name: str
    synthetic: bool
    boundary: tuple[tuple[float, float], ...]
    area_km2: float
    centre: tuple[float, float]


@dataclass(frozen=True)
class NestSpec:
    id: str
    name: str
    lon: float
    lat: float
    charging_slots: int
    status: str
    wind_hold_mps: float


@dataclass(frozen=True)
class DroneSpec:
    id: str
    model: str
    home_nest: str
    capabilities: tuple[str, ...]
    cruise_speed_mps: float
    max_speed_mps: float
    climb_rate_mps: float
    cruise_altitude_m: float
    endurance_s: float
    launch_delay_s: float
    payload_kg: float


@dataclass(frozen=True)
class DepartmentSpec:
    code: str
    name_en: str
    name_zh: str
    contact: str


@dataclass(frozen=True)
class GeofenceSpec:
    id: str
    name: str
    kind: str
    ring: tuple[tuple[float, float], ...]
    max_altitude_m: float | None
    active_from: str | None
    active_until: str | None


@dataclass(frozen=True)
class IncidentType:
    code: str
    name: str
    default_priority: int
    required_capabilities: tuple[str, ...]
    departments: tuple[str, ...]


@dataclass(frozen=True)
class ReferenceData:
    zone: Zone
    nests: tuple[NestSpec, ...]
    drones: tuple[DroneSpec, ...]
    departments: tuple[DepartmentSpec, ...]
    geofences: tuple[GeofenceSpec, ...]
    incident_types: tuple[IncidentType, ...]


def _read(directory: Path, name: str) -> Any:
    path = directory / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ReferenceDataError(f"{path} is missing; a zone directory needs it") from error
    except json.JSONDecodeError as error:
        raise ReferenceDataError(f"{path} is not valid JSON: {error}") from error


def _ring(coordinates: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(p[0]), float(p[1])) for p in coordinates)


def _unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for value in ids:
        if value in seen:
            raise ReferenceDataError(f"{kind} id {value!r} appears twice")
        seen.add(value)


def _zone(directory: Path) -> Zone:
    feature = _read(directory, "zone.geojson")
    ring = _ring(feature["geometry"]["coordinates"][0])
    if ring_self_intersects(ring):
        raise ReferenceDataError("zone.geojson: the boundary crosses itself")
    points = ring[:-1] if ring[0] == ring[-1] else ring
    centre = (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))
    props = feature.get("properties", {})
    return Zone(
        name=str(props.get("name", directory.name)),
        synthetic=bool(props.get("synthetic", False)),
        boundary=ring,
        area_km2=polygon_area_km2(ring),
        centre=centre,
    )


def load_reference(path: Path | None = None) -> ReferenceData:
    """Read and check a zone directory; None means the packaged East Lake reference zone."""
    return _load(Path(path) if path is not None else DEFAULT_ZONE)


@lru_cache(maxsize=4)
def _load(directory: Path) -> ReferenceData:
    if not directory.is_dir():
        raise ReferenceDataError(f"{directory} is not a zone data directory")
    zone = _zone(directory)
    nests = tuple(
        NestSpec(
            id=n["id"],
            name=n["name"],
            lon=float(n["lon"]),
            lat=float(n["lat"]),
            charging_slots=int(n["charging_slots"]),
            status=n.get("status", "online"),
            wind_hold_mps=float(n.get("wind_hold_mps", 12.0)),
        )
        for n in _read(directory, "nests.json")
    )
    _unique("nest", [n.id for n in nests])
    for n in nests:
        if not point_in_polygon(n.lon, n.lat, zone.boundary):
            raise ReferenceDataError(f"nests.json: {n.id} lies outside the zone boundary")
    drones = tuple(
        DroneSpec(
            id=d["id"],
            model=d["model"],
            home_nest=d["home_nest"],
            capabilities=tuple(d["capabilities"]),
            cruise_speed_mps=float(d["cruise_speed_mps"]),
            max_speed_mps=float(d["max_speed_mps"]),
            climb_rate_mps=float(d["climb_rate_mps"]),
            cruise_altitude_m=float(d["cruise_altitude_m"]),
            endurance_s=float(d["endurance_s"]),
            launch_delay_s=float(d["launch_delay_s"]),
            payload_kg=float(d.get("payload_kg", 0.0)),
        )
        for d in _read(directory, "drones.json")
    )
    _unique("drone", [d.id for d in drones])
    slots = {n.id: n.charging_slots for n in nests}
    for d in drones:
        if d.home_nest not in slots:
            raise ReferenceDataError(f"drones.json: {d.id} has unknown home nest {d.home_nest}")
        slots[d.home_nest] -= 1
        if slots[d.home_nest] < 0:
            raise ReferenceDataError(f"drones.json: nest {d.home_nest} has more drones than slots")
        unknown = set(d.capabilities) - CAPABILITIES
        if unknown:
            raise ReferenceDataError(f"drones.json: {d.id} has unknown capabilities {unknown}")
    departments = tuple(
        DepartmentSpec(
            code=d["code"], name_en=d["name_en"], name_zh=d["name_zh"], contact=d["contact"]
        )
        for d in _read(directory, "departments.json")
    )
    _unique("department", [d.code for d in departments])
    geofences = tuple(
        GeofenceSpec(
            id=f["properties"]["id"],
            name=f["properties"]["name"],
            kind=f["properties"]["kind"],
            ring=_ring(f["geometry"]["coordinates"][0]),
            max_altitude_m=f["properties"].get("max_altitude_m"),
            active_from=f["properties"].get("active_from"),
            active_until=f["properties"].get("active_until"),
        )
        for f in _read(directory, "geofences.json")["features"]
    )
    _unique("geofence", [g.id for g in geofences])
    for g in geofences:
        if g.kind not in GEOFENCE_KINDS:
            raise ReferenceDataError(f"geofences.json: {g.id} has unknown kind {g.kind}")
    types = tuple(
        IncidentType(
            code=t["code"],
            name=t["name"],
            default_priority=int(t["default_priority"]),
            required_capabilities=tuple(t["required_capabilities"]),
            departments=tuple(t["departments"]),
        )
        for t in _read(directory, "incident_types.json")
    )
    _unique("incident type", [t.code for t in types])
    return ReferenceData(zone, nests, drones, departments, geofences, types)
