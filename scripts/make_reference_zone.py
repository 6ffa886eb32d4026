"""Generates the synthetic East Lake reference zone data (deterministic; the JSON is the product).

Run from the repository root:  python3 scripts/make_reference_zone.py [--check]
It rewrites airgrid/data/east-lake/*.json and *.geojson, or with --check only prints the
figures (area, nests, fleet mix, 300 s coverage). Standard library only.

How it builds the zone:
- the boundary is a hand-drawn irregular outline (kilometres around the centre) scaled so its
  spherical area is 518 km²;
- nests are a centroidal layout (Lloyd's k-means over 250 m cells of the zone), then extra
  nests are added greedily wherever a cell is not reachable from two nests within 300 s;
- every nest gets a thermal pair (M30T + M3TD); the specialist models (heavy-lift for AED,
  multi-sensor with gas sensor, loudspeaker and spotlight) go to nest subsets chosen by greedy
  set cover, so each capability reaches every cell within 300 s; spare M3TDs fill up the
  smallest nests, central ones first, to the fleet size of 186.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airgrid.geo import (  # noqa: E402
    LocalProjection,
    grid_inside,
    point_in_polygon,
    polygon_area_km2,
    polygon_centroid,
    ring_self_intersects,
)

OUT = ROOT / "airgrid" / "data" / "east-lake"
CENTRE = (114.43, 30.48)
TARGET_KM2 = 518.0
DRONE_COUNT = 186
SLA_S = 300.0
CELL_M = 250.0
# Plan against a slightly smaller radius than the model allows, so the coverage holds on any
# grid a test or the dispatch service may use.
PLAN_MARGIN_M = 150.0
KMEANS_NESTS = 40
KMEANS_ROUNDS = 60

# Irregular outline, (east, north) kilometres (re-centred on CENTRE below), counter-clockwise (RFC 7946).
# Lake shores bite into the north edge; the south edge follows the Tangxun / Niushan lakes.
OUTLINE_KM = [
    (22.0, 1.0), (21.2, 3.8), (18.4, 5.2), (16.3, 7.9), (12.6, 8.6), (10.2, 7.4),
    (8.1, 5.6), (5.6, 7.2), (2.4, 8.9), (-0.8, 8.3), (-3.1, 9.4), (-5.6, 7.1),
    (-8.4, 7.6), (-11.2, 5.9), (-13.6, 3.8), (-15.3, 1.2), (-13.4, -0.9), (-14.6, -3.6),
    (-12.1, -5.2), (-9.3, -4.4), (-7.2, -7.1), (-4.3, -9.6), (-1.2, -9.9), (1.6, -7.6),
    (4.7, -8.7), (8.2, -6.8), (11.1, -7.9), (14.2, -5.7), (17.3, -6.6), (20.1, -4.2),
    (21.6, -1.6),
]  # fmt: skip

# Rough anchors for readable nest names (synthetic: the names only say which part of the zone).
AREAS = [
    ("Guanshan", 114.400, 30.502), ("Guandong", 114.425, 30.488), ("Luoyu", 114.345, 30.515),
    ("Tangxun", 114.352, 30.455), ("Fozuling", 114.415, 30.440), ("Miaoshan", 114.380, 30.418),
    ("Liufang", 114.445, 30.425), ("Jiufeng", 114.470, 30.515), ("Biolake", 114.490, 30.478),
    ("Longquan", 114.495, 30.420), ("Baoxie", 114.545, 30.455), ("Future City", 114.535, 30.500),
    ("Huashan", 114.545, 30.540), ("Zuoling", 114.600, 30.505), ("Niushan Lake", 114.605, 30.440),
    ("Canglong", 114.300, 30.470), ("Yangchun Lake", 114.455, 30.545),
]  # fmt: skip

MODELS: dict[str, dict[str, object]] = {
    # Dock-based enterprise quadcopter: wide, zoom and thermal cameras.
    "M30T": {
        "capabilities": ["visual", "thermal", "zoom"],
        "cruise_speed_mps": 15.0, "max_speed_mps": 23.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 120.0, "endurance_s": 2400.0, "launch_delay_s": 20.0,
        "payload_kg": 0.0,
    },
    # Compact dock drone: wide and thermal cameras.
    "M3TD": {
        "capabilities": ["visual", "thermal"],
        "cruise_speed_mps": 15.0, "max_speed_mps": 21.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 120.0, "endurance_s": 2400.0, "launch_delay_s": 20.0,
        "payload_kg": 0.0,
    },
    # Six-rotor airframe carrying a multi-gas sensor, a loudspeaker and a spotlight.
    "M350-MS": {
        "capabilities": ["visual", "zoom", "gas_sensor", "loudspeaker", "spotlight"],
        "cruise_speed_mps": 15.0, "max_speed_mps": 23.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 120.0, "endurance_s": 2200.0, "launch_delay_s": 20.0,
        "payload_kg": 2.7,
    },
    # Heavy-lift with winch: AED and medical supplies.
    "HL8-AED": {
        "capabilities": ["visual", "payload"],
        "cruise_speed_mps": 14.0, "max_speed_mps": 20.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 100.0, "endurance_s": 1800.0, "launch_delay_s": 20.0,
        "payload_kg": 8.0,
    },
}  # fmt: skip
THERMAL_PAIR = ["M30T", "M3TD"]
MODEL_ORDER = [*THERMAL_PAIR, "M350-MS", "HL8-AED"]
SPECIALISTS = ["HL8-AED", "M350-MS"]

DEPARTMENTS = [
    ("fire", "Fire and rescue", "消防救援"),
    ("traffic", "Traffic police", "交通管理"),
    ("environment", "Ecology and environment", "生态环境"),
    ("emergency", "Emergency management", "应急管理"),
    ("police", "Public security", "公安"),
    ("urban", "Urban management", "城市管理"),
    ("water", "Water affairs", "水务"),
    ("resources", "Natural resources and planning", "自然资源和规划"),
    ("construction", "Housing and construction", "住房和城乡建设"),
    ("parks", "Parks and forestry", "园林和林业"),
    ("health", "Health: AED and medical supplies", "卫生健康"),
]
ALL_DEPARTMENTS = [code for code, _, _ in DEPARTMENTS]

# code, name, default priority (1 life-safety … 4 routine), capabilities, reporters, description
INCIDENT_TYPES: list[tuple[str, str, int, list[str], list[str], str]] = [
    ("fire", "Fire", 1, ["thermal"], ["fire", "emergency", "police"],
     "Open flame or building fire: locate the seat of the fire and people through smoke."),
    ("smoke", "Smoke sighting", 2, ["thermal"], ["fire", "environment", "parks"],
     "Smoke reported without a confirmed fire: find the source, check for hot spots."),
    ("traffic_accident", "Traffic accident", 1, ["visual", "zoom"],
     ["traffic", "police", "health"],
     "Collision with possible injuries: scene overview for responders and traffic control."),
    ("traffic_congestion", "Traffic congestion", 3, ["visual"], ["traffic"],
     "Queue or gridlock: find its head and cause, watch it clear."),
    ("pollution_spill", "Pollution spill", 2, ["gas_sensor"], ["environment", "water", "fire"],
     "Chemical or oil release to air, ground or water: plume and extent, gas readings."),
    ("air_quality", "Air quality check", 3, ["gas_sensor"], ["environment"],
     "Odour or emission complaint: measure gases downwind of the suspected source."),
    ("flood", "Flooding or waterlogging", 2, ["visual"], ["water", "emergency", "urban"],
     "Standing water on roads, underpasses or sites: extent, depth cues, trapped vehicles."),
    ("missing_person", "Missing person search", 1, ["thermal"], ["police", "emergency"],
     "Person missing near water, hills or parks: thermal search pattern."),
    ("crowd", "Crowd safety", 2, ["loudspeaker"], ["police", "urban"],
     "Dense or unruly crowd: overwatch and spoken guidance over the loudspeaker."),
    ("illegal_construction", "Illegal construction", 4, ["zoom"],
     ["construction", "urban", "resources"],
     "Unpermitted building or land use: photographic evidence for the case file."),
    ("landslide", "Landslide or ground collapse", 1, ["visual", "zoom"],
     ["resources", "emergency", "construction"],
     "Slope failure, sinkhole or excavation collapse: extent and people at risk."),
    ("tree_fall", "Fallen tree", 3, ["visual"], ["parks", "urban", "traffic"],
     "Tree down over a road, path or power line: obstruction and hazard check."),
    ("medical_aed", "AED or medical supply delivery", 1, ["payload"], ["health", "fire"],
     "Cardiac arrest or urgent medical need: fly a defibrillator or supplies to the caller."),
    ("routine_inspection", "Routine inspection", 4, ["visual"], ALL_DEPARTMENTS,
     "Scheduled patrol of a site, road, river or park for any department."),
]  # fmt: skip

# id, name, kind, centre (lon, lat), radius m, max altitude m, active window
GEOFENCES: list[tuple[str, str, str, tuple[float, float], float, float | None,
                      tuple[str, str] | None]] = [
    ("nfz-hospital-helipad", "Hospital helipad (Optics Valley campus)", "no-fly",
     (114.438, 30.507), 450.0, None, None),
    ("nfz-substation-guandong", "220 kV substation", "no-fly",
     (114.463, 30.472), 320.0, None, None),
    ("nfz-government-compound", "Government compound", "no-fly",
     (114.392, 30.462), 380.0, None, None),
    ("alt-lakeside-residential", "Lakeside residential: 60 m ceiling", "altitude-limit",
     (114.505, 30.532), 650.0, 60.0, None),
    ("tmp-sports-centre-event", "Sports centre event (temporary)", "temporary",
     (114.418, 30.428), 520.0, None,
     ("2026-01-01T00:00:00+08:00", "2027-12-31T23:59:59+08:00")),
]  # fmt: skip
# Points the docs and tests use as example scenes; no geofence may cover them.
EXAMPLE_SCENES = [(114.41, 30.48), (114.45, 30.50), (114.41, 30.49), (114.405, 30.485)]
# Offsets from nest-01 that tests use as scenes.
NEAR_FIRST_NEST = [(0.01, 0.005), (0.005, 0.003)]

XY = tuple[float, float]


def reach_m(model: str) -> float:
    """Ground distance a model covers within the SLA after launch and climb."""
    spec = MODELS[model]
    launch = float(spec["launch_delay_s"])  # type: ignore[arg-type]
    climb = float(spec["cruise_altitude_m"]) / float(spec["climb_rate_mps"])  # type: ignore[arg-type]
    return (SLA_S - launch - climb) * float(spec["cruise_speed_mps"])  # type: ignore[arg-type]


def make_boundary(projection: LocalProjection) -> list[list[float]]:
    # Shift the outline so that its area centroid is CENTRE.
    first = [projection.to_lon_lat(x * 1000.0, y * 1000.0) for x, y in OUTLINE_KM]
    cx, cy = projection.to_xy(*polygon_centroid(first))
    raw = [(x * 1000.0 - cx, y * 1000.0 - cy) for x, y in OUTLINE_KM]
    scale = 1.0
    for _ in range(3):
        ring = [projection.to_lon_lat(x * scale, y * scale) for x, y in raw]
        coords = [[round(lon, 6), round(lat, 6)] for lon, lat in ring]
        scale *= math.sqrt(TARGET_KM2 / polygon_area_km2(coords))
    closed = [*coords, coords[0]]
    assert not ring_self_intersects(closed), "the outline crosses itself"
    return closed


def zone_cells(ring: list[list[float]], projection: LocalProjection) -> list[XY]:
    return grid_inside(ring, CELL_M, projection)


def lloyd(cells: list[XY], k: int) -> list[XY]:
    """Centroidal layout: k-means over the zone's cells, seeded on a regular lattice."""
    step = max(1, len(cells) // k)
    centres = [cells[i * step + step // 2] for i in range(k)]
    for _ in range(KMEANS_ROUNDS):
        sums = [[0.0, 0.0, 0] for _ in centres]
        for cx, cy in cells:
            best = min(
                range(k), key=lambda i: (centres[i][0] - cx) ** 2 + (centres[i][1] - cy) ** 2
            )
            acc = sums[best]
            acc[0] += cx
            acc[1] += cy
            acc[2] += 1
        centres = [
            (s[0] / s[2], s[1] / s[2]) if s[2] else c for s, c in zip(sums, centres, strict=True)
        ]
    return centres


def covers(site: XY, cell: XY, radius: float) -> bool:
    return (site[0] - cell[0]) ** 2 + (site[1] - cell[1]) ** 2 <= radius * radius


def add_for_double_cover(cells: list[XY], sites: list[XY], radius: float) -> list[XY]:
    """Greedy: add the cell that fixes most under-covered cells until each sees two sites."""
    sites = list(sites)
    while True:
        need = [c for c in cells if sum(covers(s, c, radius) for s in sites) < 2]
        if not need:
            return sites
        best = max(cells[::4], key=lambda cand: sum(covers(cand, c, radius) for c in need))
        sites.append(best)


def set_cover(cells: list[XY], sites: list[XY], radius: float) -> list[int]:
    """Greedy set cover: indexes of the sites that together reach every cell."""
    reach = [{j for j, c in enumerate(cells) if covers(s, c, radius)} for s in sites]
    todo = set(range(len(cells)))
    chosen: list[int] = []
    while todo:
        best = max(range(len(sites)), key=lambda i: (len(reach[i] & todo), -i))
        if not reach[best] & todo:
            raise SystemExit(f"{len(todo)} cells are out of reach of every nest")
        chosen.append(best)
        todo -= reach[best]
    # Drop sites the others already make redundant, the least useful first.
    for i in sorted(chosen, key=lambda i: len(reach[i])):
        others = set().union(*(reach[j] for j in chosen if j != i))
        if reach[i] <= others:
            chosen.remove(i)
    return sorted(chosen)


def nest_name(lon: float, lat: float, used: dict[str, int]) -> str:
    area = min(AREAS, key=lambda a: (a[1] - lon) ** 2 + ((a[2] - lat) * 1.15) ** 2)[0]
    used[area] = used.get(area, 0) + 1
    return f"{area} {used[area]}"


def polygon_around(projection: LocalProjection, centre: XY, radius: float) -> list[list[float]]:
    """An irregular 12-gon around the centre (lon, lat), closed."""
    cx, cy = projection.to_xy(*centre)
    wobble = [1.0, 0.92, 1.05, 0.97, 0.88, 1.03, 1.08, 0.95, 0.9, 1.02, 0.96, 1.06]
    out = []
    for i, w in enumerate(wobble):
        t = 2 * math.pi * i / len(wobble)
        lon, lat = projection.to_lon_lat(
            cx + radius * w * math.cos(t), cy + radius * w * math.sin(t)
        )
        out.append([round(lon, 6), round(lat, 6)])
    return [*out, out[0]]


def place_geofence(
    projection: LocalProjection,
    ring: list[list[float]],
    wanted: tuple[float, float],
    radius: float,
    nests: list[tuple[float, float]],
) -> list[list[float]]:
    """The geofence polygon nearest the wanted centre that is inside the zone, keeps 200 m
    from every nest and covers none of the example scenes."""
    wx, wy = projection.to_xy(*wanted)
    nest_xy = [projection.to_xy(*n) for n in nests]
    scene_xy = [projection.to_xy(*p) for p in EXAMPLE_SCENES]
    clearance = radius * 1.1 + 200.0
    for step in range(40):
        for k in range(max(1, 8 * step)):
            t = 2 * math.pi * k / max(1, 8 * step)
            cx, cy = wx + 250.0 * step * math.cos(t), wy + 250.0 * step * math.sin(t)
            if any(math.dist((cx, cy), n) < clearance for n in nest_xy):
                continue
            if any(math.dist((cx, cy), p) < radius * 1.1 + 50.0 for p in scene_xy):
                continue
            poly = polygon_around(projection, projection.to_lon_lat(cx, cy), radius)
            if all(point_in_polygon(p[0], p[1], ring) for p in poly):
                return poly
    raise SystemExit(f"no room for a geofence near {wanted}")


def main() -> None:
    args = sys.argv[1:]
    if args not in ([], ["--check"]):
        raise SystemExit("usage: python3 scripts/make_reference_zone.py [--check]")
    check_only = args == ["--check"]
    projection = LocalProjection(*CENTRE)
    ring = make_boundary(projection)
    area = polygon_area_km2(ring)
    cells = zone_cells(ring, projection)
    radius = min(reach_m(m) for m in THERMAL_PAIR) - PLAN_MARGIN_M
    sites = add_for_double_cover(cells, lloyd(cells, KMEANS_NESTS), radius)
    # Centre outwards: nest-01 is the most central nest, the highest ids ring the edge.
    sites.sort(key=lambda s: (math.hypot(*s), s))

    fleet: list[list[str]] = [list(THERMAL_PAIR) for _ in sites]
    for model in SPECIALISTS:
        for i in set_cover(cells, sites, reach_m(model) - PLAN_MARGIN_M):
            fleet[i].append(model)
    spare = DRONE_COUNT - sum(len(f) for f in fleet)
    if spare < 0:
        raise SystemExit(f"the layout needs {-spare} drones more than {DRONE_COUNT}")
    # Spares (thermal) go to the smallest nests, central ones first.
    for _ in range(spare):
        i = min(range(len(sites)), key=lambda j: (len(fleet[j]), j))
        fleet[i].append(THERMAL_PAIR[-1])
    for models in fleet:
        models.sort(key=MODEL_ORDER.index)

    used: dict[str, int] = {}
    nests, drones = [], []
    number = 1
    for i, (x, y) in enumerate(sites):
        lon, lat = projection.to_lon_lat(x, y)
        nest_id = f"nest-{i + 1:02d}"
        nests.append({
            "id": nest_id, "name": nest_name(lon, lat, used),
            "lon": round(lon, 6), "lat": round(lat, 6),
            "charging_slots": len(fleet[i]) + 1, "status": "online", "wind_hold_mps": 12.0,
        })  # fmt: skip
        for model in fleet[i]:
            drones.append({"id": f"drone-{number:03d}", "model": model, "home_nest": nest_id,
                           **MODELS[model]})  # fmt: skip
            number += 1

    fences = []
    nest_points = [(float(n["lon"]), float(n["lat"])) for n in nests]  # type: ignore[arg-type]
    for fid, name, kind, wanted, r, ceiling, window in GEOFENCES:
        poly = place_geofence(projection, ring, wanted, r, nest_points)
        fences.append({
            "type": "Feature",
            "properties": {
                "id": fid, "name": name, "kind": kind, "max_altitude_m": ceiling,
                "active_from": window[0] if window else None,
                "active_until": window[1] if window else None,
                "area_km2": round(polygon_area_km2(poly), 3),
            },
            "geometry": {"type": "Polygon", "coordinates": [poly]},
        })  # fmt: skip

    first = nest_points[0]
    for dlon, dlat in NEAR_FIRST_NEST:
        scene = (first[0] + dlon, first[1] + dlat)
        if not point_in_polygon(*scene, ring) or any(
            point_in_polygon(*scene, f["geometry"]["coordinates"][0])  # type: ignore[index]
            for f in fences
        ):
            raise SystemExit(f"the scene {scene} near nest-01 must be in the zone, outside fences")

    mix: dict[str, int] = {}
    for d in drones:
        mix[str(d["model"])] = mix.get(str(d["model"]), 0) + 1
    print(f"zone {area:.3f} km², {len(ring) - 1} vertices, {len(cells)} cells of {CELL_M:.0f} m")
    print(f"{len(nests)} nests, {len(drones)} drones: {mix}")
    if check_only:
        return

    files = {
        "zone.geojson": {
            "type": "Feature",
            "properties": {
                "name": "East Lake High-tech Zone (Optics Valley), Wuhan",
                "synthetic": True,
                "note": "Synthetic boundary and nest positions: no real nest positions are public.",
                "area_km2": round(area, 2),
            },
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        },
        "nests.json": nests,
        "drones.json": drones,
        "departments.json": [
            {"code": c, "name_en": en, "name_zh": zh,
             "contact": f"airgrid-duty@{c}.east-lake.example.gov.cn"}
            for c, en, zh in DEPARTMENTS
        ],
        "geofences.json": {"type": "FeatureCollection", "features": fences},
        "incident_types.json": [
            {"code": c, "name": n, "default_priority": p, "required_capabilities": caps,
             "departments": deps, "description": text}
            for c, n, p, caps, deps, text in INCIDENT_TYPES
        ],
    }  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {OUT}")


if __name__ == "__main__":
    main()
