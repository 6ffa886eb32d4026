"""Registry positions stay in the zone: a nest inside its boundary, a no-fly zone overlapping it.

Every consumer sizes its structures from these positions (dispatch's run cards span the
nests' bounding box), so one entity on the other side of the world must never get in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from airgrid.geo import EARTH_RADIUS_M, point_in_polygon
from airgrid.problems import Problem
from airgrid.reference import Zone

# A no-fly zone may reach this far beyond the zone's bounding box (an airport at the edge).
GEOFENCE_MARGIN_M = 5_000.0


def _outside(field: str, detail: str, zone: Zone) -> Problem:
    return Problem(
        422,
        "Outside the zone",
        f"{detail} Positions must lie in the {zone.name} zone; see GET /v1/nests for where "
        "its nests are.",
        kind="outside-zone",
        errors=[{"field": field, "message": "outside the zone"}],
    )


def check_nest_position(zone: Zone, lon: float, lat: float) -> None:
    """A nest must stand inside the zone's boundary."""
    if not point_in_polygon(lon, lat, zone.boundary):
        raise _outside(
            "location", f"The nest's location ({lon}, {lat}) lies outside the zone.", zone
        )


def check_geofence_ring(zone: Zone, ring: Sequence[Sequence[float]]) -> None:
    """A no-fly zone must overlap the zone (a vertex inside it) and stay within
    GEOFENCE_MARGIN_M of the zone's bounding box."""
    lons = [p[0] for p in zone.boundary]
    lats = [p[1] for p in zone.boundary]
    dlat = math.degrees(GEOFENCE_MARGIN_M / EARTH_RADIUS_M)
    dlon = dlat / math.cos(math.radians(max(abs(min(lats)), abs(max(lats)))))
    for lon, lat, *_ in ring:
        if not (
            min(lons) - dlon <= lon <= max(lons) + dlon
            and min(lats) - dlat <= lat <= max(lats) + dlat
        ):
            raise _outside(
                "geometry",
                f"The no-fly zone's vertex ({lon}, {lat}) lies more than "
                f"{GEOFENCE_MARGIN_M:.0f} m outside the zone.",
                zone,
            )
    if not any(point_in_polygon(p[0], p[1], zone.boundary) for p in ring):
        raise _outside("geometry", "The no-fly zone has no vertex inside the zone.", zone)
