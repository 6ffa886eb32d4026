"""Loads and checks a zone data directory: boundary, nests, fleet, departments, geofences,
incident types, and (optional) scenarios and inspection plans.

A zone is data, not code: another city is another directory with the same six files
(see airgrid/data/east-lake/README.md). Everything here is read-only and frozen.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from airgrid.geo import (
    is_valid_lon_lat,
    point_in_polygon,
    polygon_area_km2,
    polygon_centroid,
    ring_self_intersects,
)

DEFAULT_ZONE = Path(__file__).parent / "data" / "east-lake"
CAPABILITIES = frozenset(
    {"visual", "thermal", "zoom", "loudspeaker", "gas_sensor", "spotlight", "payload"}
)
GEOFENCE_KINDS = frozenset({"no-fly", "altitude-limit", "temporary"})
NEST_STATUSES = frozenset({"online", "offline", "maintenance"})
PRIORITIES = range(1, 5)
SEVERITIES = ("low", "medium", "high", "critical")
DEFAULT_CAMERA_FOV_DEG = 56.0
"""A drone's camera field of view, narrower side, when drones.json gives none: the vertical
view of a 4:3 wide camera of 84° diagonal, the usual inspection camera (DJI M30T, M3TD).
Freshness uses the narrower side so the ground disc it counts lies inside the picture at any
heading."""

T = TypeVar("T")


class ReferenceDataError(ValueError):
    """The zone data is missing or inconsistent; the message names the file and the entry."""


@dataclass(frozen=True)
class Zone:
    name: str
    synthetic: bool
    boundary: tuple[tuple[float, float], ...]
    """Exterior ring, (lon, lat), closed as in the GeoJSON file."""
    area_km2: float
    centre: tuple[float, float]
    """Area centroid (lon, lat)."""


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
    camera_fov_deg: float = DEFAULT_CAMERA_FOV_DEG
    """Camera field of view, narrower side, degrees (optional in drones.json)."""


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
    """One of GEOFENCE_KINDS: "no-fly", "altitude-limit", "temporary"."""
    ring: tuple[tuple[float, float], ...]
    """Exterior ring, (lon, lat), closed."""
    max_altitude_m: float | None
    active_from: str | None
    """ISO 8601 with offset, or None for always."""
    active_until: str | None


@dataclass(frozen=True)
class IncidentType:
    code: str
    name: str
    default_priority: int
    """1 (life-safety) … 4 (routine)."""
    required_capabilities: tuple[str, ...]
    departments: tuple[str, ...]
    """Department codes that usually report this type."""
    description: str = ""


@dataclass(frozen=True)
class EscalationSpec:
    min_confidence: float
    """A detection at least this confident (0 … 1) escalates its case."""
    incident_type: str
    """Code from incident_types.json."""
    priority: int


@dataclass(frozen=True)
class ScenarioSpec:
    """One entry of the scenario catalogue: what a detection is about and who owns its cases."""

    code: str
    name: str
    departments: tuple[str, ...]
    severity: str
    """One of SEVERITIES."""
    merge_radius_m: float
    merge_window_s: int
    escalation: EscalationSpec | None
    description: str = ""


@dataclass(frozen=True)
class InspectionPlanSpec:
    """A plan as the zone ships it. Its geometry and windows are checked by the registry's
    inspection rules when it is seeded (the kernel knows no registry rules)."""

    id: str
    name: str
    department: str
    geometry: Mapping[str, Any]
    """GeoJSON Polygon (an area) or LineString (a corridor's centre line)."""
    width_m: float | None
    revisit_interval_s: int
    active_windows: tuple[tuple[str, str], ...]
    """(start, end) local HH:MM pairs; empty means all day."""


@dataclass(frozen=True)
class ReferenceData:
    zone: Zone
    nests: tuple[NestSpec, ...]
    drones: tuple[DroneSpec, ...]
    departments: tuple[DepartmentSpec, ...]
    geofences: tuple[GeofenceSpec, ...]
    incident_types: tuple[IncidentType, ...]
    scenarios: tuple[ScenarioSpec, ...] = ()
    """scenarios.json; a zone without it has no scenario catalogue."""
    inspection_plans: tuple[InspectionPlanSpec, ...] = ()
    """inspection_plans.json; a zone without it ships no plans."""
    source: Path = field(default=DEFAULT_ZONE, compare=False)
    """The directory it was loaded from."""


def load_reference(path: Path | None = None) -> ReferenceData:
    """Read and check a zone directory; None means the packaged East Lake reference zone.

    Raises ReferenceDataError naming the file and entry when the data is unusable.
    Results are cached per directory, so callers may load freely.
    """
    directory = Path(path) if path is not None else DEFAULT_ZONE
    return _load(directory.resolve())


@lru_cache(maxsize=8)
def _load(directory: Path) -> ReferenceData:
    if not directory.is_dir():
        raise ReferenceDataError(f"{directory} is not a zone data directory")
    zone = _zone(directory)
    nests = _entries(directory, "nests.json", _nest)
    _unique("nests.json", "nest id", [n.id for n in nests])
    for n in nests:
        if not point_in_polygon(n.lon, n.lat, zone.boundary):
            raise ReferenceDataError(
                f"nests.json: {n.id} at ({n.lon}, {n.lat}) lies outside the zone boundary; "
                "move it inside or widen zone.geojson"
            )
    drones = _entries(directory, "drones.json", _drone)
    _unique("drones.json", "drone id", [d.id for d in drones])
    _check_fleet(nests, drones)
    departments = _entries(directory, "departments.json", _department)
    _unique("departments.json", "department code", [d.code for d in departments])
    geofences = _geofences(directory, zone, nests)
    incident_types = _entries(directory, "incident_types.json", _incident_type)
    _unique("incident_types.json", "incident type code", [t.code for t in incident_types])
    _check_catalogue(incident_types, drones, departments)
    scenarios = _optional_entries(directory, "scenarios.json", _scenario)
    _unique("scenarios.json", "scenario code", [s.code for s in scenarios])
    _check_scenarios(scenarios, incident_types, departments)
    plans = _optional_entries(directory, "inspection_plans.json", _inspection_plan)
    _unique("inspection_plans.json", "plan id", [p.id for p in plans])
    _check_plan_owners(plans, departments)
    return ReferenceData(
        zone=zone,
        nests=nests,
        drones=drones,
        departments=departments,
        geofences=geofences,
        incident_types=incident_types,
        scenarios=scenarios,
        inspection_plans=plans,
        source=directory,
    )


# --- reading ---------------------------------------------------------------------------------


def _read(directory: Path, name: str) -> Any:
    path = directory / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ReferenceDataError(f"{path} is missing; every zone directory needs it") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReferenceDataError(f"{path} is not readable UTF-8 JSON: {error}") from error


def _entries(directory: Path, name: str, parse: Callable[[Mapping[str, Any]], T]) -> tuple[T, ...]:
    raw = _read(directory, name)
    if not isinstance(raw, list) or not raw:
        raise ReferenceDataError(f"{name}: expected a non-empty JSON list of objects")
    return tuple(_parse(name, i, entry, parse) for i, entry in enumerate(raw))


def _optional_entries(
    directory: Path, name: str, parse: Callable[[Mapping[str, Any]], T]
) -> tuple[T, ...]:
    """A file a zone may leave out (an empty tuple then); present, it must be well formed."""
    if not (directory / name).exists():
        return ()
    return _entries(directory, name, parse)


def _parse(name: str, index: int, entry: Any, parse: Callable[[Mapping[str, Any]], T]) -> T:
    label = entry.get("id") or entry.get("code") if isinstance(entry, dict) else None
    where = f"{name}: entry {index}" + (f" ({label})" if label else "")
    if not isinstance(entry, dict):
        raise ReferenceDataError(f"{where}: expected a JSON object")
    try:
        return parse(entry)
    except KeyError as error:
        raise ReferenceDataError(f"{where}: the field {error.args[0]!r} is missing") from error
    except (TypeError, ValueError) as error:
        raise ReferenceDataError(f"{where}: {error}") from error


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string, not {value!r}")
    return value


def _number(entry: Mapping[str, Any], key: str, *, positive: bool = False) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key!r} must be a finite number, not {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{key!r} must be greater than zero, not {value!r}")
    return float(value)


def _count(entry: Mapping[str, Any], key: str) -> int:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key!r} must be a whole number of at least 1, not {value!r}")
    return int(value)


def _codes(entry: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = entry[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key!r} must be a list of strings, not {value!r}")
    return tuple(value)


def _ring(coordinates: Any, what: str) -> tuple[tuple[float, float], ...]:
    try:
        ring = tuple((float(p[0]), float(p[1])) for p in coordinates)
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"{what} must be a list of [lon, lat] positions") from error
    if len(ring) < 4 or ring[0] != ring[-1]:
        raise ValueError(f"{what} must be a closed ring of at least 4 positions, first = last")
    for lon, lat in ring:
        if not is_valid_lon_lat(lon, lat):
            raise ValueError(f"{what} has an invalid position [{lon}, {lat}]")
    if ring_self_intersects(ring):
        raise ValueError(f"{what} crosses itself; a polygon edge must not cut another")
    return ring


def _polygon_exterior(geometry: Any, what: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        raise ValueError(f"{what} must be a GeoJSON Polygon geometry")
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or not coordinates:
        raise ValueError(f"{what} has no coordinates")
    return _ring(coordinates[0], f"{what} exterior ring")


def _unique(name: str, kind: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ReferenceDataError(f"{name}: {kind} {value!r} appears twice; ids must be unique")
        seen.add(value)


# --- entities --------------------------------------------------------------------------------


def _zone(directory: Path) -> Zone:
    feature = _read(directory, "zone.geojson")
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ReferenceDataError("zone.geojson: expected a GeoJSON Feature with a Polygon")
    try:
        ring = _polygon_exterior(feature.get("geometry"), "the boundary")
    except ValueError as error:
        raise ReferenceDataError(f"zone.geojson: {error}") from error
    props = feature.get("properties") or {}
    return Zone(
        name=str(props.get("name", directory.name)),
        synthetic=bool(props.get("synthetic", False)),
        boundary=ring,
        area_km2=polygon_area_km2(ring),
        centre=polygon_centroid(ring),
    )


def _nest(entry: Mapping[str, Any]) -> NestSpec:
    lon, lat = _number(entry, "lon"), _number(entry, "lat")
    if not is_valid_lon_lat(lon, lat):
        raise ValueError(f"({lon}, {lat}) is not a valid lon/lat position")
    status = str(entry.get("status", "online"))
    if status not in NEST_STATUSES:
        raise ValueError(f"status {status!r} is not one of {sorted(NEST_STATUSES)}")
    return NestSpec(
        id=_text(entry, "id"),
        name=_text(entry, "name"),
        lon=lon,
        lat=lat,
        charging_slots=_count(entry, "charging_slots"),
        status=status,
        wind_hold_mps=_number(entry, "wind_hold_mps", positive=True)
        if "wind_hold_mps" in entry
        else 12.0,
    )


def _drone(entry: Mapping[str, Any]) -> DroneSpec:
    capabilities = _codes(entry, "capabilities")
    unknown = sorted(set(capabilities) - CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; use only {sorted(CAPABILITIES)}")
    cruise = _number(entry, "cruise_speed_mps", positive=True)
    top = _number(entry, "max_speed_mps", positive=True)
    if cruise > top:
        raise ValueError(f"cruise_speed_mps {cruise} exceeds max_speed_mps {top}")
    payload = _number(entry, "payload_kg") if "payload_kg" in entry else 0.0
    if payload < 0:
        raise ValueError(f"payload_kg must not be negative, not {payload}")
    delay = _number(entry, "launch_delay_s")
    if delay < 0:
        raise ValueError(f"launch_delay_s must not be negative, not {delay}")
    fov = (
        _number(entry, "camera_fov_deg", positive=True)
        if "camera_fov_deg" in entry
        else DEFAULT_CAMERA_FOV_DEG
    )
    if fov >= 180:
        raise ValueError(f"camera_fov_deg must be under 180, not {fov}")
    return DroneSpec(
        id=_text(entry, "id"),
        model=_text(entry, "model"),
        home_nest=_text(entry, "home_nest"),
        capabilities=capabilities,
        cruise_speed_mps=cruise,
        max_speed_mps=top,
        climb_rate_mps=_number(entry, "climb_rate_mps", positive=True),
        cruise_altitude_m=_number(entry, "cruise_altitude_m", positive=True),
        endurance_s=_number(entry, "endurance_s", positive=True),
        launch_delay_s=delay,
        payload_kg=payload,
        camera_fov_deg=fov,
    )


def _department(entry: Mapping[str, Any]) -> DepartmentSpec:
    return DepartmentSpec(
        code=_text(entry, "code"),
        name_en=_text(entry, "name_en"),
        name_zh=_text(entry, "name_zh"),
        contact=_text(entry, "contact"),
    )


def _incident_type(entry: Mapping[str, Any]) -> IncidentType:
    priority = entry["default_priority"]
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise ValueError(
            f"default_priority must be 1 (life-safety) … 4 (routine), not {priority!r}"
        )
    capabilities = _codes(entry, "required_capabilities")
    unknown = sorted(set(capabilities) - CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; use only {sorted(CAPABILITIES)}")
    return IncidentType(
        code=_text(entry, "code"),
        name=_text(entry, "name"),
        default_priority=priority,
        required_capabilities=capabilities,
        departments=_codes(entry, "departments"),
        description=str(entry.get("description", "")),
    )


def _scenario(entry: Mapping[str, Any]) -> ScenarioSpec:
    severity = _text(entry, "severity")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {list(SEVERITIES)}")
    window = entry["merge_window_s"]
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"merge_window_s must be a whole number of seconds >= 1, not {window!r}")
    rule = entry.get("escalation")
    escalation = None
    if rule is not None:
        if not isinstance(rule, dict):
            raise ValueError("escalation must be an object or null")
        confidence = _number(rule, "min_confidence")
        if not 0 <= confidence <= 1:
            raise ValueError(f"escalation.min_confidence must be within 0 … 1, not {confidence}")
        priority = rule["priority"]
        if isinstance(priority, bool) or priority not in PRIORITIES:
            raise ValueError(f"escalation.priority must be 1 … 4, not {priority!r}")
        escalation = EscalationSpec(confidence, _text(rule, "incident_type"), int(priority))
    departments = _codes(entry, "departments")
    if not departments:
        raise ValueError("departments must name at least one owner department")
    return ScenarioSpec(
        code=_text(entry, "code"),
        name=_text(entry, "name"),
        departments=departments,
        severity=severity,
        merge_radius_m=_number(entry, "merge_radius_m", positive=True),
        merge_window_s=window,
        escalation=escalation,
        description=str(entry.get("description", "")),
    )


def _inspection_plan(entry: Mapping[str, Any]) -> InspectionPlanSpec:
    geometry = entry["geometry"]
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "LineString"):
        raise ValueError("geometry must be a GeoJSON Polygon (area) or LineString (corridor)")
    interval = entry["revisit_interval_s"]
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise ValueError(f"revisit_interval_s must be whole seconds, not {interval!r}")
    windows = entry.get("active_windows", [])
    if not isinstance(windows, list) or not all(
        isinstance(w, dict) and isinstance(w.get("start"), str) and isinstance(w.get("end"), str)
        for w in windows
    ):
        raise ValueError('active_windows must be a list of {"start": "HH:MM", "end": "HH:MM"}')
    width = _number(entry, "width_m") if entry.get("width_m") is not None else None
    return InspectionPlanSpec(
        id=_text(entry, "id"),
        name=_text(entry, "name"),
        department=_text(entry, "department"),
        geometry=geometry,
        width_m=width,
        revisit_interval_s=interval,
        active_windows=tuple((w["start"], w["end"]) for w in windows),
    )


def _geofence(feature: Mapping[str, Any]) -> GeofenceSpec:
    props = feature["properties"]
    if not isinstance(props, dict):
        raise ValueError("'properties' must be an object")
    kind = _text(props, "kind")
    if kind not in GEOFENCE_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {sorted(GEOFENCE_KINDS)}")
    ceiling = (
        _number(props, "max_altitude_m", positive=True)
        if props.get("max_altitude_m") is not None
        else None
    )
    if kind == "altitude-limit" and ceiling is None:
        raise ValueError("an altitude-limit geofence needs max_altitude_m")
    active_from, active_until = props.get("active_from"), props.get("active_until")
    for key, value in (("active_from", active_from), ("active_until", active_until)):
        if value is not None:
            _timestamp(key, value)
    if kind == "temporary" and (active_from is None or active_until is None):
        raise ValueError("a temporary geofence needs active_from and active_until")
    if active_from is not None and active_until is not None:
        if _timestamp("active_from", active_from) >= _timestamp("active_until", active_until):
            raise ValueError("active_from must come before active_until")
    return GeofenceSpec(
        id=_text(props, "id"),
        name=_text(props, "name"),
        kind=kind,
        ring=_polygon_exterior(feature["geometry"], "the geometry"),
        max_altitude_m=ceiling,
        active_from=active_from,
        active_until=active_until,
    )


def _timestamp(key: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be an ISO 8601 string, not {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"{key} {value!r} is not ISO 8601") from error
    if moment.tzinfo is None:
        raise ValueError(f"{key} {value!r} needs a UTC offset, e.g. +08:00")
    return moment


def _geofences(
    directory: Path, zone: Zone, nests: tuple[NestSpec, ...]
) -> tuple[GeofenceSpec, ...]:
    collection = _read(directory, "geofences.json")
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise ReferenceDataError("geofences.json: expected a GeoJSON FeatureCollection")
    features = collection.get("features")
    if not isinstance(features, list):
        raise ReferenceDataError("geofences.json: 'features' must be a list (it may be empty)")
    fences = tuple(_parse("geofences.json", i, f, _geofence) for i, f in enumerate(features))
    _unique("geofences.json", "geofence id", [g.id for g in fences])
    for g in fences:
        for nest in nests:
            if point_in_polygon(nest.lon, nest.lat, g.ring):
                raise ReferenceDataError(
                    f"geofences.json: {g.id} covers {nest.id}, so its drones could not launch; "
                    "reshape the geofence or move the nest"
                )
        if not any(point_in_polygon(lon, lat, zone.boundary) for lon, lat in g.ring):
            raise ReferenceDataError(f"geofences.json: {g.id} lies wholly outside the zone")
    return fences


# --- cross-file checks -----------------------------------------------------------------------


def _check_fleet(nests: tuple[NestSpec, ...], drones: tuple[DroneSpec, ...]) -> None:
    free = {n.id: n.charging_slots for n in nests}
    for d in drones:
        if d.home_nest not in free:
            raise ReferenceDataError(
                f"drones.json: {d.id} names home nest {d.home_nest!r}, which nests.json lacks"
            )
        free[d.home_nest] -= 1
    for nest in nests:
        if free[nest.id] < 0:
            raise ReferenceDataError(
                f"nests.json: {nest.id} has {nest.charging_slots} charging slots but "
                f"{nest.charging_slots - free[nest.id]} drones call it home; add slots "
                "or move drones"
            )


def _check_catalogue(
    types: tuple[IncidentType, ...],
    drones: tuple[DroneSpec, ...],
    departments: tuple[DepartmentSpec, ...],
) -> None:
    fleet = {c for d in drones for c in d.capabilities}
    codes = {d.code for d in departments}
    for t in types:
        missing = sorted(set(t.required_capabilities) - fleet)
        if missing:
            raise ReferenceDataError(
                f"incident_types.json: {t.code} needs {missing}, which no drone in drones.json has"
            )
        unknown = sorted(set(t.departments) - codes)
        if unknown:
            raise ReferenceDataError(
                f"incident_types.json: {t.code} names departments {unknown} "
                "that departments.json lacks"
            )


def _check_scenarios(
    scenarios: tuple[ScenarioSpec, ...],
    types: tuple[IncidentType, ...],
    departments: tuple[DepartmentSpec, ...],
) -> None:
    codes = {d.code for d in departments}
    type_codes = {t.code for t in types}
    for s in scenarios:
        unknown = sorted(set(s.departments) - codes)
        if unknown:
            raise ReferenceDataError(
                f"scenarios.json: {s.code} names departments {unknown} that departments.json lacks"
            )
        if s.escalation is not None and s.escalation.incident_type not in type_codes:
            raise ReferenceDataError(
                f"scenarios.json: {s.code} escalates to incident type "
                f"{s.escalation.incident_type!r}, which incident_types.json lacks"
            )


def _check_plan_owners(
    plans: tuple[InspectionPlanSpec, ...], departments: tuple[DepartmentSpec, ...]
) -> None:
    codes = {d.code for d in departments}
    for p in plans:
        if p.department not in codes:
            raise ReferenceDataError(
                f"inspection_plans.json: {p.id} belongs to department {p.department!r}, "
                "which departments.json lacks"
            )
