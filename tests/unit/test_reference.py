"""The reference zone: counts, area, 300 s coverage by the fleet, and the loader's checks."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airgrid.geo import (
    LocalProjection,
    grid_inside,
    haversine_m,
    point_in_polygon,
    polygon_area_km2,
    ring_self_intersects,
)
from airgrid.reference import (
    CAPABILITIES,
    DEFAULT_ZONE,
    DroneSpec,
    ReferenceDataError,
    load_reference,
)
from airgrid.topics import DEPARTMENT_CODES

REFERENCE = load_reference()
SLA_S = 300.0
CELL_M = 400.0


def time_to_scene_s(drone: DroneSpec, distance_m: float) -> float:
    climb_s = drone.cruise_altitude_m / drone.climb_rate_mps
    return drone.launch_delay_s + climb_s + distance_m / drone.cruise_speed_mps


def zone_cells() -> list[tuple[float, float]]:
    """Centres of CELL_M square cells that fall inside the boundary."""
    ring = REFERENCE.zone.boundary
    projection = LocalProjection(*REFERENCE.zone.centre)
    return [projection.to_lon_lat(x, y) for x, y in grid_inside(ring, CELL_M, projection)]


CELLS = zone_cells()
FLEET_BY_NEST: dict[str, list[DroneSpec]] = defaultdict(list)
for _drone in REFERENCE.drones:
    FLEET_BY_NEST[_drone.home_nest].append(_drone)


def nests_within_sla(lon: float, lat: float, capability: str | None = None) -> int:
    """How many nests have a drone (with the capability) that reaches (lon, lat) in time."""
    count = 0
    for nest in REFERENCE.nests:
        distance = haversine_m(lon, lat, nest.lon, nest.lat)
        fleet = [
            d for d in FLEET_BY_NEST[nest.id] if capability is None or capability in d.capabilities
        ]
        if any(time_to_scene_s(d, distance) <= SLA_S for d in fleet):
            count += 1
    return count


# --- the reference data ----------------------------------------------------------------------


def test_counts() -> None:
    assert len(REFERENCE.drones) == 186
    assert len(REFERENCE.departments) == 11
    assert sorted(d.code for d in REFERENCE.departments) == sorted(DEPARTMENT_CODES)
    assert 40 <= len(REFERENCE.nests) <= 60
    assert 3 <= len(REFERENCE.geofences) <= 5
    assert len(REFERENCE.incident_types) >= 12
    assert [d.id for d in REFERENCE.drones] == [f"drone-{i:03d}" for i in range(1, 187)]


def test_zone_boundary_and_area() -> None:
    zone = REFERENCE.zone
    assert zone.synthetic
    assert "East Lake" in zone.name
    assert abs(zone.area_km2 - 518.0) / 518.0 < 0.01
    assert 20 <= len(zone.boundary) - 1 <= 40
    assert not ring_self_intersects(zone.boundary)
    assert abs(zone.centre[0] - 114.43) < 0.05 and abs(zone.centre[1] - 30.48) < 0.05
    # The scene in the docs' example incident is inside the zone.
    assert point_in_polygon(114.41, 30.48, zone.boundary)


def test_nests_are_inside_and_hold_their_drones() -> None:
    for nest in REFERENCE.nests:
        assert point_in_polygon(nest.lon, nest.lat, REFERENCE.zone.boundary), nest.id
        assert nest.charging_slots >= len(FLEET_BY_NEST[nest.id]) >= 1, nest.id
        assert nest.status == "online"


def test_geofences_are_small_inside_and_clear_of_nests() -> None:
    kinds = {fence.kind for fence in REFERENCE.geofences}
    assert {"no-fly", "temporary"} <= kinds
    for fence in REFERENCE.geofences:
        assert 0.2 <= polygon_area_km2(fence.ring) <= 2.0, fence.id
        assert all(point_in_polygon(lon, lat, REFERENCE.zone.boundary) for lon, lat in fence.ring)
        for nest in REFERENCE.nests:
            assert not point_in_polygon(nest.lon, nest.lat, fence.ring), (nest.id, fence.id)
        if fence.kind == "temporary":
            assert fence.active_from and fence.active_until
        if fence.kind == "altitude-limit":
            assert fence.max_altitude_m is not None


def test_fleet_uses_the_capability_vocabulary() -> None:
    used = {c for d in REFERENCE.drones for c in d.capabilities}
    assert used == CAPABILITIES
    for d in REFERENCE.drones:
        assert d.cruise_speed_mps <= d.max_speed_mps
        assert d.launch_delay_s + d.cruise_altitude_m / d.climb_rate_mps < SLA_S


def test_every_cell_is_within_300_s_of_two_nests_where_possible() -> None:
    """Cells of CELL_M (≤ 500 m): ≥ 99 % reachable in time, and mostly from two nests."""
    assert len(CELLS) > 3000
    counts = [nests_within_sla(lon, lat) for lon, lat in CELLS]
    within = sum(c >= 1 for c in counts) / len(counts)
    redundant = sum(c >= 2 for c in counts) / len(counts)
    print(f"\n{len(CELLS)} cells: {within:.2%} within {SLA_S:.0f}s, {redundant:.2%} from ≥2 nests")
    assert within >= 0.99
    assert redundant >= 0.95


@pytest.mark.parametrize("capability", sorted(CAPABILITIES))
def test_every_capability_reaches_every_cell_within_300_s(capability: str) -> None:
    missed = [(lon, lat) for lon, lat in CELLS if nests_within_sla(lon, lat, capability) == 0]
    assert not missed, f"{capability}: {len(missed)} cells out of reach, e.g. {missed[:3]}"


def test_incident_catalogue_is_servable_and_documented() -> None:
    capabilities = {c for d in REFERENCE.drones for c in d.capabilities}
    codes = {t.code for t in REFERENCE.incident_types}
    assert {"fire", "traffic_accident", "medical_aed", "routine_inspection"} <= codes
    for kind in REFERENCE.incident_types:
        assert 1 <= kind.default_priority <= 4, kind.code
        assert kind.required_capabilities, kind.code
        assert set(kind.required_capabilities) <= capabilities, kind.code
        assert kind.departments and set(kind.departments) <= set(DEPARTMENT_CODES), kind.code
        assert kind.description, kind.code


def test_load_reference_defaults_and_caches() -> None:
    assert load_reference(DEFAULT_ZONE) is REFERENCE
    assert REFERENCE.source == DEFAULT_ZONE.resolve()


# --- the loader's checks ---------------------------------------------------------------------


def broken_zone(tmp_path: Path, name: str, change: Callable[[Any], Any]) -> Path:
    """A copy of the reference zone with one file changed."""
    target = tmp_path / "zone"
    shutil.copytree(DEFAULT_ZONE, target)
    path = target / name
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(change(data)), encoding="utf-8")
    return target


def duplicate_first_drone(drones: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drones[1]["id"] = drones[0]["id"]
    return drones


def orphan_first_drone(drones: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drones[0]["home_nest"] = "nest-99"
    return drones


def overfill_first_nest(nests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    nests[0]["charging_slots"] = 1
    return nests


def move_first_nest_away(nests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    nests[0]["lon"] = 120.0
    return nests


def twist_boundary(zone: dict[str, Any]) -> dict[str, Any]:
    ring = zone["geometry"]["coordinates"][0]
    middle = len(ring) // 2
    ring[1], ring[middle] = ring[middle], ring[1]
    return zone


def bad_priority(types: list[dict[str, Any]]) -> list[dict[str, Any]]:
    types[0]["default_priority"] = 7
    return types


def unknown_capability(types: list[dict[str, Any]]) -> list[dict[str, Any]]:
    types[0]["required_capabilities"] = ["x_ray"]
    return types


def fence_over_first_nest(fences: dict[str, Any]) -> dict[str, Any]:
    nest = load_reference().nests[0]
    d = 0.003
    square = [
        [nest.lon - d, nest.lat - d],
        [nest.lon + d, nest.lat - d],
        [nest.lon + d, nest.lat + d],
        [nest.lon - d, nest.lat + d],
        [nest.lon - d, nest.lat - d],
    ]
    fences["features"][0]["geometry"]["coordinates"] = [square]
    return fences


def drop_drone_field(drones: list[dict[str, Any]]) -> list[dict[str, Any]]:
    del drones[0]["cruise_speed_mps"]
    return drones


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("drones.json", duplicate_first_drone, "appears twice"),
        ("drones.json", orphan_first_drone, "nest-99"),
        ("drones.json", drop_drone_field, "'cruise_speed_mps' is missing"),
        ("nests.json", overfill_first_nest, "charging slots"),
        ("nests.json", move_first_nest_away, "outside the zone boundary"),
        ("zone.geojson", twist_boundary, "crosses itself"),
        ("incident_types.json", bad_priority, "default_priority"),
        ("incident_types.json", unknown_capability, "x_ray"),
        ("geofences.json", fence_over_first_nest, "covers nest-01"),
    ],
)
def test_load_rejects_inconsistent_data(
    tmp_path: Path, name: str, change: Callable[[Any], Any], message: str
) -> None:
    with pytest.raises(ReferenceDataError, match=message) as caught:
        load_reference(broken_zone(tmp_path, name, change))
    assert name in str(caught.value)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "zone"
    shutil.copytree(DEFAULT_ZONE, target)
    (target / "drones.json").unlink()
    with pytest.raises(ReferenceDataError, match=r"drones\.json is missing"):
        load_reference(target)
    with pytest.raises(ReferenceDataError, match="not a zone data directory"):
        load_reference(tmp_path / "nowhere")


def test_another_directory_is_another_zone(tmp_path: Path) -> None:
    target = tmp_path / "copy"
    shutil.copytree(DEFAULT_ZONE, target)
    copy = load_reference(target)
    assert copy == REFERENCE
    assert copy.source == target.resolve()
