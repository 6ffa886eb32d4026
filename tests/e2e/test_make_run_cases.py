"""`make run`'s inspection path end to end: `airgrid up` with no incident load, the fleet
docked at the start, so every drone in the air flies a patrol. The patrols' cameras see the
twin's ground truth, the twin posts the detections to POST /v1/detections with the nest
gateways' keys, telemetry merges them into cases, and a department's SSE feed shows a
`case.opened` item within a few minutes of the start."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from airgrid.reference import load_reference
from tests.e2e.airgrid_up import airgrid_up
from tests.eventually import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# Generous: patrols launch within seconds of the start, and a case needs one pass of a
# footprint 128 m across over one of the ~150 events going on in the zone.
FIRST_CASE_DEADLINE_S = 360


async def test_make_run_shows_a_case_from_a_patrol_on_a_department_feed(tmp_path: Path) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    with airgrid_up(tmp_path, "--rate", "0", "--start", "docked") as up:
        await up.ready("telemetry")
        keys = orjson.loads(up.credentials.read_bytes())["department"]
        async with httpx.AsyncClient(base_url=up.url("telemetry"), timeout=5.0) as client:

            async def listen(department: str) -> None:
                headers = {"Authorization": f"Bearer {keys[department]}"}
                params = {"types": "case.opened"}
                url = f"/v1/feeds/{department}/stream"
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        async with client.stream(
                            "GET", url, headers=headers, params=params, timeout=None
                        ) as response:
                            async for line in response.aiter_lines():
                                if line.startswith("data: "):
                                    received.append((department, orjson.loads(line[6:])))
                    await asyncio.sleep(1.0)

            async def first_case() -> tuple[str, dict[str, Any]] | None:
                up.alive()
                return received[0] if received else None

            listeners = [asyncio.create_task(listen(code)) for code in sorted(keys)]
            try:
                department, item = await eventually(
                    first_case, FIRST_CASE_DEADLINE_S, "a case.opened item on a department feed"
                )
            finally:
                for task in listeners:
                    task.cancel()
                await asyncio.gather(*listeners, return_exceptions=True)
        scenarios = {s.code: s for s in load_reference().scenarios}
        assert item["type"] == "case.opened", item
        case = item["case"]
        assert case["scenario"] in scenarios, item
        assert department in scenarios[case["scenario"]].departments, item
        # The twin's detection: sim-<event>-<drone>-<ms>, its media named after the drone's
        # mission; with no incident load that mission is a patrol.
        assert item["detection_id"].startswith("sim-ev-"), item
        drone, mission = case["best_media"]["uri"].removeprefix("sim://").split("/")[:2]
        assert drone in item["detection_id"], item
        assert mission != "no-mission", item
        assert up.stop() == 0, up.log.read_text()[-3000:]
