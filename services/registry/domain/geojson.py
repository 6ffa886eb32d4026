"""GeoJSON checks for registry geometry (RFC 7946): positions in range, closed simple rings.

Pure functions: each returns the problems it found as sentences a person can act on, so the
HTTP edge and the importer report them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from airgrid.geo import is_valid_lon_lat, ring_is_closed, ring_self_intersects

# Hand-drawn zones need far fewer; the bound keeps the O(n²) crossing check cheap.
MAX_RING_POSITIONS = 500


def position_problems(position: Any, where: str) -> list[str]:
    """A position is [lon, lat] (an optional altitude is allowed) with lon/lat in range."""
    if not isinstance(position, Sequence) or isinstance(position, str) or len(position) < 2:
        return [f"{where} must be [longitude, latitude]"]
    if len(position) > 3:
        return [f"{where} has {len(position)} numbers; send [longitude, latitude]"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in position):
        return [f"{where} must hold numbers"]
    lon, lat = float(position[0]), float(position[1])
    if not is_valid_lon_lat(lon, lat):
        if math.isfinite(lon) and math.isfinite(lat) and -90 <= lon <= 90 and abs(lat) > 90:
            return [
                f"{where} = [{lon}, {lat}]: latitude must be within [-90, 90]; GeoJSON puts "
                "longitude first"
            ]
        return [
            f"{where} = [{lon}, {lat}] is out of range: longitude must be within [-180, 180] "
            "and latitude within [-90, 90]"
        ]
    return []


def polygon_problems(coordinates: Any) -> list[str]:
    """Problems of a GeoJSON Polygon's coordinates: rings closed, simple, positions in range."""
    if not isinstance(coordinates, Sequence) or isinstance(coordinates, str) or not coordinates:
        return ["coordinates must be a list of linear rings, the exterior ring first"]
    problems: list[str] = []
    for r, ring in enumerate(coordinates):
        name = "exterior ring" if r == 0 else f"hole {r}"
        if not isinstance(ring, Sequence) or isinstance(ring, str):
            problems.append(f"{name} must be a list of positions")
            continue
        if len(ring) > MAX_RING_POSITIONS:
            problems.append(f"{name} has {len(ring)} positions; at most {MAX_RING_POSITIONS}")
            continue
        ring_problems: list[str] = []
        for i, position in enumerate(ring):
            ring_problems.extend(position_problems(position, f"{name} position {i}"))
        if ring_problems:
            problems.extend(ring_problems)
            continue
        if len(ring) < 4:
            problems.append(
                f"{name} has {len(ring)} positions; a linear ring needs at least 4, "
                "the last equal to the first"
            )
        elif not ring_is_closed(ring):
            problems.append(
                f"{name} is open: its last position must repeat the first, {list(ring[0])}"
            )
        elif ring_self_intersects(ring):
            problems.append(
                f"{name} is self-intersecting (edges cross, touch or repeat a vertex); "
                "draw it as a simple polygon"
            )
    return problems
