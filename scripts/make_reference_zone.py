"""Writes the synthetic East Lake reference zone (deterministic; the JSON files are the product).

Run: python scripts/make_reference_zone.py  (rewrites airgrid/data/east-lake/*.json)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from airgrid.geo import LocalProjection, point_in_polygon, polygon_area_km2

OUT = Path(__file__).resolve().parents[1] / "airgrid" / "data" / "east-lake"
CENTRE = (114.43, 30.48)
TARGET_KM2 = 518.0
HEX_SPACING_M = 4_600.0

# Radius factors around the centre: an irregular, star-shaped (so simple) outline, wider E-W.
WOBBLE = [1.00, 0.96, 0.90, 0.93, 1.02, 1.05, 0.98, 0.91, 0.88, 0.95, 1.04, 1.08,
          1.01, 0.94, 0.90, 0.97, 1.03, 1.06, 0.99, 0.92, 0.89, 0.94, 1.02, 1.07,
          1.03, 0.97, 0.93, 0.98]  # fmt: skip

MODELS = {
    "M30T": {
        "capabilities": ["visual", "thermal", "zoom"],
        "cruise_speed_mps": 15.0, "max_speed_mps": 23.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 120.0, "endurance_s": 2400.0, "launch_delay_s": 20.0,
        "payload_kg": 0.0,
    },
    "M3TD": {
        "capabilities": ["visual", "thermal"],
        "cruise_speed_mps": 15.0, "max_speed_mps": 21.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 120.0, "endurance_s": 2400.0, "launch_delay_s": 15.0,
        "payload_kg": 0.0,
    },
    "M30T-LS": {
        "capabilities": ["visual", "thermal", "zoom", "loudspeaker", "spotlight"],
        "cruise_speed_mps": 15.0, "max_speed_mps": 23.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 120.0, "endurance_s": 2100.0, "launch_delay_s": 20.0,
        "payload_kg": 0.0,
    },
    "M350-GAS": {
        "capabilities": ["visual", "gas_sensor"],
        "cruise_speed_mps": 14.0, "max_speed_mps": 23.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 120.0, "endurance_s": 2200.0, "launch_delay_s": 25.0,
        "payload_kg": 2.7,
    },
    "FC30-LIFT": {
        "capabilities": ["visual", "payload"],
        "cruise_speed_mps": 14.0, "max_speed_mps": 20.0, "climb_rate_mps": 5.0,
        "cruise_altitude_m": 100.0, "endurance_s": 1800.0, "launch_delay_s": 25.0,
        "payload_kg": 8.0,
    },
}  # fmt: skip
# Every nest first gets two thermal drones; the rest rotate over the specialists fleet-wide.
FIRST_MODELS = ["M30T", "M3TD"]
ROTATION = ["M30T-LS", "FC30-LIFT", "M350-GAS"]

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

INCIDENT_TYPES = [
    ("fire", "Fire", 1, ["thermal"], ["fire", "emergency"]),
    ("smoke", "Smoke sighting", 2, ["thermal"], ["fire", "environment", "parks"]),
    ("traffic_accident", "Traffic accident", 1, ["visual"], ["traffic", "police", "health"]),
    ("traffic_congestion", "Traffic congestion", 3, ["visual"], ["traffic"]),
    ("pollution_spill", "Pollution spill", 2, ["gas_sensor"], ["environment", "water"]),
    ("air_quality", "Air quality check", 3, ["gas_sensor"], ["environment"]),
    ("flood", "Flooding or waterlogging", 2, ["visual"], ["water", "emergency", "urban"]),
    ("missing_person", "Missing person search", 1, ["thermal"], ["police", "emergency"]),
    ("crowd", "Crowd safety", 2, ["loudspeaker"], ["police", "urban"]),
    ("illegal_construction", "Illegal construction", 4, ["visual"], ["construction", "urban", "resources"]),
    ("landslide", "Landslide or ground collapse", 1, ["visual"], ["resources", "emergency", "construction"]),
    ("tree_fall", "Fallen tree", 3, ["visual"], ["parks", "urban", "traffic"]),
    ("medical_aed", "AED or medical supply delivery", 1, ["payload"], ["health", "fire"]),
    ("routine_inspection", "Routine inspection", 4, ["visual"], [code for code, _, _ in DEPARTMENTS]),
]  # fmt: skip

GEOFENCES = [
    ("nfz-hospital-tongji-optics", "Hospital helipad", "no-fly", (114.405, 30.497), 450, None),
    ("nfz-substation-guanshan", "220 kV substation", "no-fly", (114.452, 30.468), 350, None),
    ("nfz-gov-compound", "Government compound", "no-fly", (114.392, 30.473), 400, None),
    ("alt-lake-shore", "Lake shore altitude limit", "altitude-limit", (114.47, 30.50), 700, 60.0),
    ("tmp-stadium-event", "Stadium event (temporary)", "temporary", (114.43, 30.455), 500, None),
]


def boundary(projection: LocalProjection) -> list[list[float]]:
    a, b = 19_000.0, 9_000.0
    n = len(WOBBLE)
    raw = []
    for i, w in enumerate(WOBBLE):
        t = 2 * math.pi * i / n
        raw.append((a * w * math.cos(t), b * w * math.sin(t)))
    ring = [projection.to_lon_lat(x, y) for x, y in raw]
    scale = math.sqrt(TARGET_KM2 / polygon_area_km2(ring))
    ring = [projection.to_lon_lat(x * scale, y * scale) for x, y in raw]
    coords = [[round(lon, 6), round(lat, 6)] for lon, lat in ring]
    return [*coords, coords[0]]


def nest_sites(ring: list[list[float]], projection: LocalProjection) -> list[tuple[float, float]]:
    sites = []
    dy = HEX_SPACING_M * math.sqrt(3) / 2
    for row in range(-8, 9):
        offset = HEX_SPACING_M / 2 if row % 2 else 0.0
        for col in range(-8, 9):
            x, y = col * HEX_SPACING_M + offset, row * dy
            lon, lat = projection.to_lon_lat(x, y)
            if point_in_polygon(lon, lat, ring):
                sites.append((lon, lat))
                continue
            # A hex site just outside the boundary moves inward, so the edge stays covered.
            for shrink in (0.85, 0.7):
                lon2, lat2 = projection.to_lon_lat(x * shrink, y * shrink)
                near = math.hypot(x, y) * (1 - shrink) < HEX_SPACING_M * 0.6
                if near and point_in_polygon(lon2, lat2, ring):
                    sites.append((lon2, lat2))
                    break
    return sites


def square(projection: LocalProjection, centre: tuple[float, float], half: float) -> list[list[float]]:
    cx, cy = projection.to_xy(*centre)
    corners = [(-half, -half), (half, -half), (half, half), (-half, half), (-half, -half)]
    out = []
    for dx, dy in corners:
        lon, lat = projection.to_lon_lat(cx + dx, cy + dy)
        out.append([round(lon, 6), round(lat, 6)])
    return out


def main() -> None:
    projection = LocalProjection(*CENTRE)
    ring = boundary(projection)
    area = polygon_area_km2(ring)
    sites = nest_sites(ring, projection)
    total = 186
    per_nest = [total // len(sites)] * len(sites)
    for i in range(total - sum(per_nest)):
        per_nest[i] += 1
    nests, drones = [], []
    number = 1
    rotation = 0
    for i, (lon, lat) in enumerate(sites):
        nest_id = f"nest-{i + 1:02d}"
        nests.append(
            {
                "id": nest_id,
                "name": f"Optics Valley nest {i + 1:02d}",
                "lon": round(lon, 6),
                "lat": round(lat, 6),
                "charging_slots": per_nest[i] + 1,
                "status": "online",
                "wind_hold_mps": 12.0,
            }
        )
        for slot in range(per_nest[i]):
            if slot < len(FIRST_MODELS):
                model = FIRST_MODELS[slot]
            else:
                model = ROTATION[rotation % len(ROTATION)]
                rotation += 1
            drones.append({"id": f"drone-{number:03d}", "model": model, "home_nest": nest_id,
                           **MODELS[model]})  # fmt: skip
            number += 1
    OUT.mkdir(parents=True, exist_ok=True)
    zone = {
        "type": "Feature",
        "properties": {
            "name": "East Lake High-tech Zone (Optics Valley), Wuhan",
            "synthetic": True,
            "note": "Synthetic boundary and nest positions: no real nest positions are public.",
            "area_km2": round(area, 1),
        },
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    fences = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "id": fid,
                    "name": name,
                    "kind": kind,
                    "max_altitude_m": alt,
                    "active_from": "2026-01-01T08:00:00+08:00" if kind == "temporary" else None,
                    "active_until": "2027-12-31T22:00:00+08:00" if kind == "temporary" else None,
                },
                "geometry": {"type": "Polygon", "coordinates": [square(projection, c, half)]},
            }
            for fid, name, kind, c, half, alt in GEOFENCES
        ],
    }
    files = {
        "zone.geojson": zone,
        "nests.json": nests,
        "drones.json": drones,
        "departments.json": [
            {"code": c, "name_en": en, "name_zh": zh, "contact": f"duty-desk@{c}.example.gov.cn"}
            for c, en, zh in DEPARTMENTS
        ],
        "geofences.json": fences,
        "incident_types.json": [
            {"code": c, "name": n, "default_priority": p, "required_capabilities": caps,
             "departments": deps}
            for c, n, p, caps, deps in INCIDENT_TYPES
        ],  # fmt: skip
    }
    for name, content in files.items():
        text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"zone {area:.1f} km², {len(nests)} nests, {len(drones)} drones → {OUT}")


if __name__ == "__main__":
    main()
