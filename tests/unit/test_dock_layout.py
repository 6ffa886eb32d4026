"""Unit tests of the 128-dock reference layout (scripts/plan_docks.py and its committed
file): docks in the zone and outside the no-fly zones, the fleet of 186 re-homed within the
charging slots, spacing and 300-s reach, and the file reproducible from its seed."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airgrid.geo import LocalProjection, grid_inside, point_in_polygon
from airgrid.reference import ReferenceData, load_reference
from entrypoints.fast_twin.world import LayoutError, with_layout

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "plan_docks.py"
LAYOUT = ROOT / "airgrid" / "data" / "east-lake" / "layouts" / "docks-128.json"


def _planner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plan_docks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference(None)


@pytest.fixture(scope="module")
def layout() -> dict[str, Any]:
    content: dict[str, Any] = json.loads(LAYOUT.read_text(encoding="utf-8"))
    return content


@pytest.fixture(scope="module")
def zone(reference: ReferenceData) -> ReferenceData:
    return with_layout(reference, LAYOUT)


def test_128_docks_inside_the_zone_and_outside_every_no_fly_zone(
    reference: ReferenceData, zone: ReferenceData
) -> None:
    assert len(zone.nests) == 128
    assert all(n.id.startswith("dock-") for n in zone.nests)
    no_fly = [g for g in reference.geofences if g.kind in ("no-fly", "temporary")]
    for nest in zone.nests:
        assert point_in_polygon(nest.lon, nest.lat, reference.zone.boundary), nest.id
        assert not any(point_in_polygon(nest.lon, nest.lat, g.ring) for g in no_fly), nest.id
    # The zone itself is unchanged: boundary, geofences, catalogue.
    assert zone.zone == reference.zone and zone.geofences == reference.geofences
    assert zone.incident_types == reference.incident_types


def test_the_fleet_of_186_is_rehomed_one_or_more_per_dock_within_slots(
    reference: ReferenceData, zone: ReferenceData
) -> None:
    assert len(zone.drones) == 186
    assert {(d.id, d.model) for d in zone.drones} == {(d.id, d.model) for d in reference.drones}
    slots = {n.id: n.charging_slots for n in zone.nests}
    based: dict[str, int] = {}
    for d in zone.drones:
        based[d.home_nest] = based.get(d.home_nest, 0) + 1
    assert set(based) == set(slots)  # every dock has a drone
    assert all(1 <= based[n] <= slots[n] for n in slots)


def test_spacing_and_every_capability_reaches_the_whole_zone_within_300_s(
    reference: ReferenceData, zone: ReferenceData
) -> None:
    projection = LocalProjection(*reference.zone.centre)
    docks = {n.id: projection.to_xy(n.lon, n.lat) for n in zone.nests}
    spacing = sorted(
        min(math.dist(p, q) for j, q in docks.items() if j != i) for i, p in docks.items()
    )
    assert spacing[0] >= 800.0  # no two docks crowd one block
    assert 1500.0 <= spacing[len(spacing) // 2] <= 2500.0  # about one dock every 2 km
    assert spacing[-1] <= 3000.0
    cells = grid_inside(reference.zone.boundary, 500.0, projection)
    capabilities = sorted({c for d in zone.drones for c in d.capabilities})
    for capability in capabilities:
        reach = [
            (
                docks[d.home_nest],
                (300.0 - d.launch_delay_s - d.cruise_altitude_m / d.climb_rate_mps)
                * d.cruise_speed_mps,
            )
            for d in zone.drones
            if capability in d.capabilities
        ]
        out = [c for c in cells if not any(math.dist(c, p) <= r for p, r in reach)]
        assert not out, f"{capability}: {len(out)} cells beyond 300 s"


def test_the_committed_file_is_the_plan_of_its_seed(layout: dict[str, Any]) -> None:
    planner = _planner()
    again = planner.plan(load_reference(None), layout["seed"])
    assert planner.render(again) == LAYOUT.read_text(encoding="utf-8")
    figures = planner.figures(load_reference(None), again)
    assert figures["docks"] == 128 and figures["drones"] == 186
    assert figures["cells_seen_by_two_docks_within_300_s"] == 1.0


def test_the_script_check_passes_on_the_committed_file() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matches the plan of seed" in done.stdout


def test_a_whole_layout_must_list_the_fleet_once_within_the_slots(
    reference: ReferenceData, layout: dict[str, Any], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    short = dict(layout, drones=layout["drones"][1:])
    broken.write_text(json.dumps(short))
    with pytest.raises(LayoutError, match="leaves out drones"):
        with_layout(reference, broken)
    crowded = dict(layout, drones=[dict(d, home_nest="dock-001") for d in layout["drones"]])
    broken.write_text(json.dumps(crowded))
    with pytest.raises(LayoutError, match="charging slots"):
        with_layout(reference, broken)
    fence = next(g for g in reference.geofences if g.kind == "no-fly")
    lon = sum(p[0] for p in fence.ring[:-1]) / (len(fence.ring) - 1)
    lat = sum(p[1] for p in fence.ring[:-1]) / (len(fence.ring) - 1)
    in_fence = dict(layout, nests=[dict(layout["nests"][0], lon=lon, lat=lat),
                                   *layout["nests"][1:]])  # fmt: skip
    broken.write_text(json.dumps(in_fence))
    with pytest.raises(LayoutError, match="no-fly zone"):
        with_layout(reference, broken)
