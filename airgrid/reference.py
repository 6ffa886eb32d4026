"""Loads and checks a zone data directory: boundary, nests, fleet, departments, geofences,
incident types, and (optional) scenarios and inspection plans.

A zone is data, not code: another city is another directory with the same six files
(see airgrid/data/east-lake/README.md). Everything here is read-only and frozen.

How a file and its fields are read is in reference_fields.py; the scenario catalogue and the
inspection plans are in inspection_reference.py. Their public names are exported from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from airgrid import reference_fields as fields
from airgrid.geo import is_valid_lon_lat, point_in_polygon, polygon_area_km2, polygon_centroid
from airgrid.inspection_reference import (
    SEVERITIES,
    EscalationSpec,
    InspectionPlanSpec,
    ScenarioSpec,
    inspection_plan,
    scenario,
)
from airgrid.reference_fields import PRIORITIES, ReferenceDataError

__all__ = [
    "CAPABILITIES",
    "DEFAULT_CAMERA_FOV_DEG",
    "DEFAULT_ZONE",
    "GEOFENCE_KINDS",
    "NEST_STATUSES",
    "PRIORITIES",
    "SEVERITIES",
    "DepartmentSpec",
    "DroneSpec",
    "EscalationSpec",
    "GeofenceSpec",
    "IncidentType",
    "InspectionPlanSpec",
    "NestSpec",
    "ReferenceData",
    "ReferenceDataError",
    "ScenarioSpec",
    "Zone",
    "load_reference",
]

DEFAULT_ZONE = Path(__file__).parent / "data" / "east-lake"
CAPABILITIES = frozenset(
    {"visual", "thermal", "zoom", "loudspeaker", "gas_sensor", "spotlight", "payload"}
)
GEOFENCE_KINDS = frozenset({"no-fly", "altitude-limit", "temporary"})
NEST_STATUSES = frozenset({"online", "offline", "maintenance"})
DEFAULT_CAMERA_FOV_DEG = 56.0
"""A drone's camera field of view, narrower side, when drones.json gives none: the vertical
view of a 4:3 wide camera of 84° diagonal, the usual inspection camera (DJI M30T, M3TD).
Freshness uses the narrower side so the ground disc it counts lies inside the picture at any
heading."""


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
    nests = fields.entries(directory, "nests.json", _nest)
    fields.unique("nests.json", "nest id", [n.id for n in nests])
    for n in nests:
        if not point_in_polygon(n.lon, n.lat, zone.boundary):
            raise ReferenceDataError(
                f"nests.json: {n.id} at ({n.lon}, {n.lat}) lies outside the zone boundary; "
                "move it inside or widen zone.geojson"
            )
    drones = fields.entries(directory, "drones.json", _drone)
    fields.unique("drones.json", "drone id", [d.id for d in drones])
    _check_fleet(nests, drones)
    departments = fields.entries(directory, "departments.json", _department)
    fields.unique("departments.json", "department code", [d.code for d in departments])
    geofences = _geofences(directory, zone, nests)
    incident_types = fields.entries(directory, "incident_types.json", _incident_type)
    fields.unique("incident_types.json", "incident type code", [t.code for t in incident_types])
    _check_catalogue(incident_types, drones, departments)
    scenarios = fields.optional_entries(directory, "scenarios.json", scenario)
    fields.unique("scenarios.json", "scenario code", [s.code for s in scenarios])
    _check_scenarios(scenarios, incident_types, departments)
    plans = fields.optional_entries(directory, "inspection_plans.json", inspection_plan)
    fields.unique("inspection_plans.json", "plan id", [p.id for p in plans])
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


# --- entities --------------------------------------------------------------------------------


def _zone(directory: Path) -> Zone:
    feature = fields.read(directory, "zone.geojson")
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ReferenceDataError("zone.geojson: expected a GeoJSON Feature with a Polygon")
    try:
        ring = fields.polygon_exterior(feature.get("geometry"), "the boundary")
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
    lon, lat = fields.number(entry, "lon"), fields.number(entry, "lat")
    if not is_valid_lon_lat(lon, lat):
        raise ValueError(f"({lon}, {lat}) is not a valid lon/lat position")
    status = str(entry.get("status", "online"))
    if status not in NEST_STATUSES:
        raise ValueError(f"status {status!r} is not one of {sorted(NEST_STATUSES)}")
    return NestSpec(
        id=fields.text(entry, "id"),
        name=fields.text(entry, "name"),
        lon=lon,
        lat=lat,
        charging_slots=fields.count(entry, "charging_slots"),
        status=status,
        wind_hold_mps=fields.number(entry, "wind_hold_mps", positive=True)
        if "wind_hold_mps" in entry
        else 12.0,
    )


def _drone(entry: Mapping[str, Any]) -> DroneSpec:
    capabilities = fields.codes(entry, "capabilities")
    unknown = sorted(set(capabilities) - CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; use only {sorted(CAPABILITIES)}")
    cruise = fields.number(entry, "cruise_speed_mps", positive=True)
    top = fields.number(entry, "max_speed_mps", positive=True)
    if cruise > top:
        raise ValueError(f"cruise_speed_mps {cruise} exceeds max_speed_mps {top}")
    payload = fields.number(entry, "payload_kg") if "payload_kg" in entry else 0.0
    if payload < 0:
        raise ValueError(f"payload_kg must not be negative, not {payload}")
    delay = fields.number(entry, "launch_delay_s")
    if delay < 0:
        raise ValueError(f"launch_delay_s must not be negative, not {delay}")
    fov = (
        fields.number(entry, "camera_fov_deg", positive=True)
        if "camera_fov_deg" in entry
        else DEFAULT_CAMERA_FOV_DEG
    )
    if fov >= 180:
        raise ValueError(f"camera_fov_deg must be under 180, not {fov}")
    return DroneSpec(
        id=fields.text(entry, "id"),
        model=fields.text(entry, "model"),
        home_nest=fields.text(entry, "home_nest"),
        capabilities=capabilities,
        cruise_speed_mps=cruise,
        max_speed_mps=top,
        climb_rate_mps=fields.number(entry, "climb_rate_mps", positive=True),
        cruise_altitude_m=fields.number(entry, "cruise_altitude_m", positive=True),
        endurance_s=fields.number(entry, "endurance_s", positive=True),
        launch_delay_s=delay,
        payload_kg=payload,
        camera_fov_deg=fov,
    )


def _department(entry: Mapping[str, Any]) -> DepartmentSpec:
    return DepartmentSpec(
        code=fields.text(entry, "code"),
        name_en=fields.text(entry, "name_en"),
        name_zh=fields.text(entry, "name_zh"),
        contact=fields.text(entry, "contact"),
    )


def _incident_type(entry: Mapping[str, Any]) -> IncidentType:
    priority = entry["default_priority"]
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise ValueError(
            f"default_priority must be 1 (life-safety) … 4 (routine), not {priority!r}"
        )
    capabilities = fields.codes(entry, "required_capabilities")
    unknown = sorted(set(capabilities) - CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; use only {sorted(CAPABILITIES)}")
    return IncidentType(
        code=fields.text(entry, "code"),
        name=fields.text(entry, "name"),
        default_priority=priority,
        required_capabilities=capabilities,
        departments=fields.codes(entry, "departments"),
        description=str(entry.get("description", "")),
    )


def _geofence(feature: Mapping[str, Any]) -> GeofenceSpec:
    props = feature["properties"]
    if not isinstance(props, dict):
        raise ValueError("'properties' must be an object")
    kind = fields.text(props, "kind")
    if kind not in GEOFENCE_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {sorted(GEOFENCE_KINDS)}")
    ceiling = (
        fields.number(props, "max_altitude_m", positive=True)
        if props.get("max_altitude_m") is not None
        else None
    )
    if kind == "altitude-limit" and ceiling is None:
        raise ValueError("an altitude-limit geofence needs max_altitude_m")
    active_from, active_until = props.get("active_from"), props.get("active_until")
    for key, value in (("active_from", active_from), ("active_until", active_until)):
        if value is not None:
            fields.timestamp(key, value)
    if kind == "temporary" and (active_from is None or active_until is None):
        raise ValueError("a temporary geofence needs active_from and active_until")
    if active_from is not None and active_until is not None:
        if fields.timestamp("active_from", active_from) >= fields.timestamp(
            "active_until", active_until
        ):
            raise ValueError("active_from must come before active_until")
    return GeofenceSpec(
        id=fields.text(props, "id"),
        name=fields.text(props, "name"),
        kind=kind,
        ring=fields.polygon_exterior(feature["geometry"], "the geometry"),
        max_altitude_m=ceiling,
        active_from=active_from,
        active_until=active_until,
    )


def _geofences(
    directory: Path, zone: Zone, nests: tuple[NestSpec, ...]
) -> tuple[GeofenceSpec, ...]:
    collection = fields.read(directory, "geofences.json")
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise ReferenceDataError("geofences.json: expected a GeoJSON FeatureCollection")
    features = collection.get("features")
    if not isinstance(features, list):
        raise ReferenceDataError("geofences.json: 'features' must be a list (it may be empty)")
    fences = tuple(
        fields.parse_entry("geofences.json", i, f, _geofence) for i, f in enumerate(features)
    )
    fields.unique("geofences.json", "geofence id", [g.id for g in fences])
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
