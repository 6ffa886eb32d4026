"""`make run`'s inspection path end to end: `airgrid up` with no incident load, the fleet
docked at the start, so every drone in the air flies a patrol. The patrols' cameras see the
twin's ground truth, the twin posts the detections to POST /v1/detections with the nest
gateways' keys, telemetry merges them into cases, and a department's SSE feed shows a
`case.opened` item within a few minutes of the start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from airgrid.reference import load_reference
from airgrid.servers.ports import free_port
from tests.eventually import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# Generous: patrols launch within seconds of the start, and a case needs one pass of a
# footprint 128 m across over one of the ~150 events going on in the zone.
FIRST_CASE_DEADLINE_S = 360


async def test_make_run_shows_a_case_from_a_patrol_on_a_department_feed(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("registry", "telemetry", "dispatch", "broker")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGRID_")}
    env.update(
        {
            "AIRGRID_STATE_DIR": str(tmp_path / "state"),
            "AIRGRID_REGISTRY_PORT": str(ports["registry"]),
            "AIRGRID_TELEMETRY_PORT": str(ports["telemetry"]),
            "AIRGRID_DISPATCH_PORT": str(ports["dispatch"]),
            "AIRGRID_EMBEDDED_KAFKA_PORT": str(ports["broker"]),
        }
    )
    log = tmp_path / "up.log"
    up = subprocess.Popen(
        [sys.executable, "-m", "entrypoints", "up", "--rate", "0", "--start", "docked"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    telemetry = f"http://127.0.0.1:{ports['telemetry']}"
    credentials = tmp_path / "state" / "credentials.json"
    received: list[tuple[str, dict[str, Any]]] = []
    listeners: list[asyncio.Task[None]] = []
    try:

        def alive() -> None:
            assert up.poll() is None, f"airgrid up exited:\n{log.read_text()[-3000:]}"

        async with httpx.AsyncClient(base_url=telemetry, timeout=5.0) as client:

            async def ready() -> bool | None:
                alive()
                if not credentials.exists():
                    return None
                try:
                    return True if (await client.get("/readyz")).status_code == 200 else None
                except httpx.HTTPError:
                    return None

            await eventually(ready, 120, "airgrid up ready with its demo credentials")
            keys = orjson.loads(credentials.read_bytes())["department"]

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

            listeners = [asyncio.create_task(listen(code)) for code in sorted(keys)]

            async def first_case() -> tuple[str, dict[str, Any]] | None:
                alive()
                return received[0] if received else None

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
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if up.poll() is None:  # a failed test still lets `up` stop what it started
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait(timeout=10)
