"""Plans the 128-dock layout of the East Lake zone for the 186-drone fleet (seeded; the JSON
is the product).

Run from the repository root:
    .venv/bin/python scripts/plan_docks.py [--seed N] [--check]
It writes airgrid/data/east-lake/layouts/docks-128.json, or with --check plans again, prints
the figures and fails unless the result equals the committed file. The accelerated twin reads
the file with `airgrid sim --fast --layout …`; the zone's boundary, no-fly zones, fleet and
incident catalogue stay as they are (the 54-nest layout remains the default).

The method (a planner's, documented in airgrid/data/east-lake/README.md):
1. Demand grid: 400 m cells of the zone outside the no-fly zones. Each cell's weight is the
   expected incident rate there: the load model's uniform share spread evenly (the floor
   that keeps the whole zone covered), plus the hot-spot share split over the departments by
   their share of incidents and spread over each department's known work areas (the areas
   and corridors of its inspection plans, the zone-wide baseline plan excepted); no cell
   weighs more than 4 times the even share.
2. Docks: weighted k-means (k-means++ seeding from the seed, then Lloyd rounds) with 128
   centres; each centre snaps to the nearest free site: a 250 m cell at least 200 m from
   every geofence. k-means puts docks denser where the weight is, about as its square root.
3. Check: every 250 m cell of the zone is within the 300-s reach of two docks (M30T: 20 s
   launch + 24 s climb + 15 m/s, 3.84 km, planned 100 m short).
4. Drones: each specialist model (HL8-AED, M350-MS) and the M30T first go to the docks of a
   greedy set cover, so the model reaches every cell within 300 s (emptier, then busier
   docks first among equals); the model's remaining drones are spread by a weighted k-means with
   as many centres, each taking the nearest dock still empty. The M3TDs fill the empty docks
   first, then the busiest docks (by the demand nearest them) without a thermal drone. Every
   dock gets a drone; charging slots are the drones plus one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airgrid.geo import LocalProjection, grid_inside, point_in_polygon  # noqa: E402
from airgrid.reference import ReferenceData, load_reference  # noqa: E402
from airgrid.sim.load import DEPARTMENT_WEIGHTS, HOT_SPOT_SHARE  # noqa: E402

OUT = ROOT / "airgrid" / "data" / "east-lake" / "layouts" / "docks-128.json"
DOCKS = 128
SEED = 128
DEMAND_CELL_M = 400.0
SITE_CELL_M = 250.0
FENCE_CLEARANCE_M = 200.0
LLOYD_ROUNDS = 40
MAX_CONTRAST = 4.0
SLA_S = 300.0
PLAN_MARGIN_M = 100.0  # the reach is planned this much short, so it holds between grid points
# Models in the order they are spread; the M3TDs fill in after them.
SPREAD_MODELS = ("M350-MS", "HL8-AED", "M30T")  # the tightest cover first
FILL_MODEL = "M3TD"
THERMAL = "thermal"

XY = tuple[float, float]


def reach_m(reference: ReferenceData, model: str) -> float:
    """Ground distance a model covers within the SLA after launch and climb."""
    d = next(d for d in reference.drones if d.model == model)
    flying = SLA_S - d.launch_delay_s - d.cruise_altitude_m / d.climb_rate_mps
    return flying * d.cruise_speed_mps


def _no_fly(reference: ReferenceData) -> list[list[tuple[float, float]]]:
    return [list(g.ring) for g in reference.geofences if g.kind in ("no-fly", "temporary")]


def _segment_distance(p: XY, a: XY, b: XY) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = (
        0.0
        if not length2
        else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2))
    )
    return math.dist(p, (a[0] + t * dx, a[1] + t * dy))


def demand_grid(reference: ReferenceData, projection: LocalProjection) -> list[tuple[XY, float]]:
    """(cell centre, expected share of incidents) over the zone outside the no-fly zones."""
    fences = _no_fly(reference)
    cells = [
        c
        for c in grid_inside(reference.zone.boundary, DEMAND_CELL_M, projection)
        if not any(point_in_polygon(*projection.to_lon_lat(*c), ring) for ring in fences)
    ]
    weights = [(1.0 - HOT_SPOT_SHARE) / len(cells)] * len(cells)
    total = sum(DEPARTMENT_WEIGHTS.values())
    by_department: dict[str, list[list[bool]]] = {}
    for plan in reference.inspection_plans:
        geometry = plan.geometry
        if plan.id == "zone-baseline":
            continue
        if geometry["type"] == "Polygon":
            ring = [tuple(p) for p in geometry["coordinates"][0]]
            inside = [point_in_polygon(*projection.to_lon_lat(*c), ring) for c in cells]
        else:
            line = [projection.to_xy(*p) for p in geometry["coordinates"]]
            half = max((plan.width_m or 0.0) / 2.0, DEMAND_CELL_M / 2.0)
            inside = [
                min(_segment_distance(c, a, b) for a, b in itertools.pairwise(line)) <= half
                for c in cells
            ]
        by_department.setdefault(plan.department, []).append(inside)
    for department, masks in sorted(by_department.items()):
        area = [any(m[i] for m in masks) for i in range(len(cells))]
        n = sum(area)
        if not n:
            continue
        share = HOT_SPOT_SHARE * DEPARTMENT_WEIGHTS.get(department, 0.0) / total
        for i, hit in enumerate(area):
            if hit:
                weights[i] += share / n
    # Departments without work areas keep their hot-spot share spread evenly; no cell weighs
    # more than MAX_CONTRAST times the even share, so a small busy district draws a few more
    # docks rather than a cluster (k-means density follows the weight's square root).
    left = 1.0 - sum(weights)
    even = 1.0 / len(cells)
    weights = [min(w + left * even, MAX_CONTRAST * even) for w in weights]
    total = sum(weights)
    return [(c, w / total) for c, w in zip(cells, weights, strict=True)]


def weighted_kmeans(demand: list[tuple[XY, float]], k: int, rng: random.Random) -> list[XY]:
    """k centres minimising the weighted squared distance: k-means++ seeding, Lloyd rounds."""
    points = [c for c, _ in demand]
    weights = [w for _, w in demand]
    centres = [rng.choices(points, weights=weights)[0]]
    nearest = [math.dist(p, centres[0]) ** 2 for p in points]
    while len(centres) < k:
        pick = rng.choices(points, weights=[w * d for w, d in zip(weights, nearest, strict=True)])[
            0
        ]
        centres.append(pick)
        nearest = [min(d, math.dist(p, pick) ** 2) for p, d in zip(points, nearest, strict=True)]
    for _ in range(LLOYD_ROUNDS):
        sums = [[0.0, 0.0, 0.0] for _ in centres]
        for (x, y), w in demand:
            best = min(range(k), key=lambda i: (centres[i][0] - x) ** 2 + (centres[i][1] - y) ** 2)
            acc = sums[best]
            acc[0] += w * x
            acc[1] += w * y
            acc[2] += w
        centres = [
            (s[0] / s[2], s[1] / s[2]) if s[2] else c for s, c in zip(sums, centres, strict=True)
        ]
    return centres


def free_sites(reference: ReferenceData, projection: LocalProjection) -> list[XY]:
    """250 m cells of the zone whose centre keeps FENCE_CLEARANCE_M from every geofence."""
    fences = [[projection.to_xy(*p) for p in g.ring] for g in reference.geofences]
    boundary = reference.zone.boundary

    def clear(c: XY) -> bool:
        for ring in fences:
            if point_in_polygon(*c, ring):
                return False
            if min(_segment_distance(c, a, b) for a, b in itertools.pairwise(ring)) < (
                FENCE_CLEARANCE_M
            ):
                return False
        return point_in_polygon(*projection.to_lon_lat(*c), boundary)

    return [c for c in grid_inside(boundary, SITE_CELL_M, projection) if clear(c)]


def cover(
    cells: list[XY], docks: list[XY], radius: float, rank: list[tuple[int, float]]
) -> list[int]:
    """Greedy set cover: docks that together reach every cell within radius (the higher
    rank first among equal gains), without those the others make redundant."""
    reach = [{j for j, c in enumerate(cells) if math.dist(d, c) <= radius} for d in docks]
    todo = set(range(len(cells)))
    chosen: list[int] = []
    while todo:
        best = max(
            (i for i in range(len(docks)) if i not in chosen),
            key=lambda i: (len(reach[i] & todo), rank[i], -i),
        )
        if not reach[best] & todo:
            raise SystemExit(f"{len(todo)} cells are out of reach of every dock")
        chosen.append(best)
        todo -= reach[best]
    # Drop docks the others already make redundant, the least useful first.
    for i in sorted(chosen, key=lambda i: (len(reach[i]), i)):
        others = set().union(*(reach[j] for j in chosen if j != i))
        if reach[i] <= others:
            chosen.remove(i)
    return chosen


def plan(reference: ReferenceData, seed: int = SEED) -> dict[str, Any]:
    """The layout: {"method", "seed", "nests": [...], "drones": [{"id", "home_nest"}]}."""
    rng = random.Random(seed)
    projection = LocalProjection(*reference.zone.centre)
    demand = demand_grid(reference, projection)
    sites = free_sites(reference, projection)
    docks: list[XY] = []
    taken: set[XY] = set()
    for centre in weighted_kmeans(demand, DOCKS, rng):
        site = min((s for s in sites if s not in taken), key=lambda s: math.dist(s, centre))
        taken.add(site)
        docks.append(site)
    # Centre outwards, as the reference nests: dock-001 is the most central.
    docks.sort(key=lambda d: (math.hypot(*d), d))
    load = [0.0] * len(docks)
    for cell, w in demand:
        load[min(range(len(docks)), key=lambda i: math.dist(docks[i], cell))] += w

    fleet = sorted(reference.drones, key=lambda d: d.id)
    homes: dict[int, list[str]] = {i: [] for i in range(len(docks))}
    models = {d.id: d.model for d in fleet}
    cells = grid_inside(reference.zone.boundary, SITE_CELL_M, projection)
    for model in SPREAD_MODELS:
        ids = [d.id for d in fleet if d.model == model]
        rank = [(-len(homes[i]), load[i]) for i in range(len(docks))]  # emptier, then busier
        needed = cover(cells, docks, reach_m(reference, model) - PLAN_MARGIN_M, rank)
        if len(needed) > len(ids):
            raise SystemExit(
                f"{model}: {len(needed)} docks cover the zone, the fleet has {len(ids)}"
            )
        for i in needed:
            homes[i].append(ids.pop(0))
        for centre in weighted_kmeans(demand, len(ids), rng) if ids else []:
            empty = [i for i in homes if not homes[i]]
            pool = empty or [i for i in homes if all(models[d] != model for d in homes[i])]
            homes[min(pool, key=lambda i: math.dist(docks[i], centre))].append(ids.pop(0))
    fill = [d.id for d in fleet if d.model == FILL_MODEL]
    capabilities = {d.id: d.capabilities for d in fleet}
    while fill:
        unthermal = [i for i in homes if not any(THERMAL in capabilities[d] for d in homes[i])]
        empty = [i for i in unthermal if not homes[i]]
        pool = empty or unthermal or list(homes)
        busiest = max(pool, key=lambda i: (load[i] / (1 + len(homes[i])), -i))
        homes[busiest].append(fill.pop(0))
    nests, drones = [], []
    for i, (x, y) in enumerate(docks):
        lon, lat = projection.to_lon_lat(x, y)
        dock_id = f"dock-{i + 1:03d}"
        nests.append(
            {
                "id": dock_id,
                "name": f"Dock {i + 1}",
                "lon": round(lon, 6),
                "lat": round(lat, 6),
                "charging_slots": len(homes[i]) + 1,
                "status": "online",
                "wind_hold_mps": 12.0,
            }
        )
        drones += [{"id": d, "home_nest": dock_id, "model": models[d]} for d in homes[i]]
    drones.sort(key=lambda d: d["id"])
    return {
        "method": "weighted k-means on a demand grid; see scripts/plan_docks.py",
        "seed": seed,
        "nests": nests,
        "drones": drones,
    }


def figures(reference: ReferenceData, layout: dict[str, Any]) -> dict[str, Any]:
    """Spacing, coverage and fleet figures of a layout (the README and the tests read them)."""
    projection = LocalProjection(*reference.zone.centre)
    xy = {n["id"]: projection.to_xy(n["lon"], n["lat"]) for n in layout["nests"]}
    spacing = sorted(
        min(math.dist(p, q) for other, q in xy.items() if other != name) for name, p in xy.items()
    )
    cells = grid_inside(reference.zone.boundary, SITE_CELL_M, projection)
    reach = reach_m(reference, "M30T") - PLAN_MARGIN_M
    seen = [sum(1 for p in xy.values() if math.dist(p, c) <= reach) for c in cells]
    farthest = max(min(math.dist(p, c) for p in xy.values()) for c in cells)
    per_dock: dict[str, int] = {}
    for d in layout["drones"]:
        per_dock[d["home_nest"]] = per_dock.get(d["home_nest"], 0) + 1
    return {
        "docks": len(xy),
        "drones": len(layout["drones"]),
        "nearest_dock_spacing_m": {
            "min": round(spacing[0]),
            "median": round(spacing[len(spacing) // 2]),
            "max": round(spacing[-1]),
        },
        "farthest_point_from_a_dock_m": round(farthest),
        "cells_seen_by_two_docks_within_300_s": round(sum(1 for s in seen if s >= 2) / len(seen), 4),
        "drones_per_dock": dict(sorted(
            (str(n), sum(1 for v in per_dock.values() if v == n)) for n in set(per_dock.values())
        )),
    }  # fmt: skip


def render(layout: dict[str, Any]) -> str:
    return json.dumps(layout, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--check", action="store_true", help="compare with the committed file")
    args = parser.parse_args()
    reference = load_reference(None)
    layout = plan(reference, args.seed)
    print(json.dumps(figures(reference, layout), indent=2))
    text = render(layout)
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            raise SystemExit(f"{OUT.relative_to(ROOT)} differs from the plan of seed {args.seed}")
        print(f"{OUT.relative_to(ROOT)} matches the plan of seed {args.seed}")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
