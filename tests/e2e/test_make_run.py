"""`make run`'s own path: `airgrid up` on the embedded broker and embedded SQLite, with nothing
else set. An incident posted the way the README shows is assigned, flown to, timed on scene
and completed by the twin, and Ctrl-C stops the whole stack."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from airgrid.reference import NestSpec, load_reference
from tests.e2e.airgrid_up import airgrid_up
from tests.eventually import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

ON_SCENE_S = 20


def nest_with_thermal_drone() -> NestSpec:
    reference = load_reference()
    nests = {n.id: n for n in reference.nests}
    drone = next(d for d in reference.drones if "thermal" in d.capabilities)
    return nests[drone.home_nest]


def scene_near(nest: NestSpec) -> list[float]:
    """About 300 m from the nest toward the zone's centre (inside the zone)."""
    centre_lon, centre_lat = load_reference().zone.centre
    d_lon, d_lat = centre_lon - nest.lon, centre_lat - nest.lat
    norm = math.hypot(d_lon, d_lat) or 1.0
    return [nest.lon + 0.003 * d_lon / norm, nest.lat + 0.003 * d_lat / norm]


async def test_airgrid_up_on_sqlite_flies_an_incident_to_completion(tmp_path: Path) -> None:
    with airgrid_up(tmp_path, "--rate", "0", "--start", "docked") as up:
        await up.ready("dispatch")
        async with httpx.AsyncClient(base_url=up.url("dispatch"), timeout=5.0) as client:
            key = orjson.loads(up.credentials.read_bytes())["department"]["fire"]
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}

            async def fleet_known() -> bool | None:
                # As a user who waits for the dashboard: dispatch has heard from the fleet.
                up.alive()
                r = await client.get("/v1/coverage", headers=headers)
                return True if r.status_code == 200 and r.json()["available_drones"] > 90 else None

            await eventually(fleet_known, 120, "dispatch to know most of the docked fleet")
            body = {
                "type": "fire",
                "priority": 1,
                "location": {"type": "Point", "coordinates": scene_near(nest_with_thermal_drone())},
                "required_capabilities": ["thermal"],
                "drones_needed": 1,
                "on_scene_seconds": ON_SCENE_S,
                "description": "smoke from a warehouse roof",
            }
            r = await client.post("/v1/incidents", json=body, headers=headers)
            assert r.status_code == 201, r.text
            incident_id = r.json()["id"]

            last: dict[str, Any] = {}

            async def completed() -> dict[str, Any] | None:
                up.alive()
                r = await client.get(f"/v1/incidents/{incident_id}", headers=headers)
                assert r.status_code == 200, r.text
                last.update(r.json())
                return last if last["status"] == "completed" else None

            try:
                done = await eventually(completed, 300, "the incident completed by the twin")
            except AssertionError as error:
                raise AssertionError(f"{error}; the incident: {last}") from None
            stages = [s["stage"] for s in done["timeline"]]
            for stage in ("accepted", "assigned", "launched", "on_scene", "completed"):
                assert stage in stages, f"{stage} missing from the timeline {stages}"
            assert done["missions"] and done["missions"][0]["stage"] == "completed"

        assert (tmp_path / "state" / "airgrid.db").exists(), "the embedded SQLite file is missing"
        assert up.stop() == 0, up.log.read_text()[-3000:]
