"""The reference zone: its counts, its area, and that its fleet covers it within 300 s."""

from __future__ import annotations

from collections import defaultdict

import pytest

from airgrid.geo import haversine_m, point_in_polygon
from airgrid.reference import DroneSpec, load_reference
from airgrid.topics import DEPARTMENT_CODES

REFERENCE = load_reference()
SLA_S = 300.0


def time_to_scene(drone: DroneSpec, distance_m: float) -> float:
    climb = drone.cruise_altitude_m / drone.climb_rate_mps
    return drone.launch_delay_s + climb + distance_m / drone.cruise_speed_mps


def test_counts_and_area() -> None:
    assert len(REFERENCE.drones) == 186
    assert sorted(d.code for d in REFERENCE.departments) == sorted(DEPARTMENT_CODES)
    assert abs(REFERENCE.zone.area_km2 - 518.0) / 518.0 < 0.01
    assert REFERENCE.zone.synthetic


def test_nests_inside_and_not_in_no_fly_zones() -> None:
    for nest in REFERENCE.nests:
        assert point_in_polygon(nest.lon, nest.lat, REFERENCE.zone.boundary)
        for fence in REFERENCE.geofences:
            assert not point_in_polygon(nest.lon, nest.lat, fence.ring), (nest.id, fence.id)


def grid_cells(step_deg: float = 0.004) -> list[tuple[float, float]]:
    ring = REFERENCE.zone.boundary
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    cells = []
    lat = min(lats)
    while lat < max(lats):
        lon = min(lons)
        while lon < max(lons):
            if point_in_polygon(lon, lat, ring):
                cells.append((lon, lat))
            lon += step_deg
        lat += step_deg * 0.87
    return cells


@pytest.mark.parametrize("capability", [None, "thermal", "payload", "gas_sensor", "loudspeaker"])
def test_fleet_reaches_every_cell_within_the_sla(capability: str | None) -> None:
    """Cells of about 400 m: each must have a drone (with the capability) within 300 s."""
    by_nest: dict[str, list[DroneSpec]] = defaultdict(list)
    for d in REFERENCE.drones:
        if capability is None or capability in d.capabilities:
            by_nest[d.home_nest].append(d)
    nests = [n for n in REFERENCE.nests if by_nest[n.id]]
    cells = grid_cells()
    covered = 0
    for lon, lat in cells:
        best = min(
            time_to_scene(d, haversine_m(lon, lat, n.lon, n.lat)) for n in nests for d in by_nest[n.id]
        )
        covered += best <= SLA_S
    share = covered / len(cells)
    target = 0.99 if capability in (None, "thermal") else 0.90
    assert share >= target, f"{capability}: {share:.3f} of the zone within {SLA_S}s"


def test_incident_catalogue_is_servable() -> None:
    capabilities = {c for d in REFERENCE.drones for c in d.capabilities}
    for kind in REFERENCE.incident_types:
        assert 1 <= kind.default_priority <= 4
        assert set(kind.required_capabilities) <= capabilities, kind.code
        assert set(kind.departments) <= set(DEPARTMENT_CODES), kind.code
