"""End to end: the twin against the real services — GET /v1/coverage with sane numbers while
the simulated fleet reports, and `airgrid sim --report` writing its JSON and PNG."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from airgrid.config import Settings
from airgrid.sim.runner import run_sim
from airgrid.sim.sim_stats import SimStats
from entrypoints.stack import Stack, bring_up, report_settings
from tests.conftest import _recreate_database

pytestmark = pytest.mark.e2e


async def _eventually_json(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], ok: str, timeout: float
) -> dict[str, object]:
    """GET url until the predicate named by `ok` holds on its JSON body, or fail."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get(url, headers=headers)
            last = response.text[:300]
            if response.status_code == 200:
                body = response.json()
                if ok == "drones" and body["available_drones"] >= 100:
                    return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.5)
    raise AssertionError(f"coverage never reported the fleet within {timeout}s: {last}")


@pytest.fixture
async def twin(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Settings, SimStats]]:
    """The three services on free ports with the simulated fleet reporting (no incidents), on
    a database of their own: the dispatch worker restores every open incident in its database,
    and other tests' incidents on the same reference drones must not make this fleet busy."""
    run = uuid.uuid4().hex[:8]
    database = f"{settings.sqlalchemy_url}_tw{run}"
    await _recreate_database(database)
    s = report_settings(
        settings.model_copy(update={"topic_prefix": f"c{run}.", "database_url": database}),
        run_dir=tmp_path / "twin",
    )
    stack = Stack(s)
    stop = asyncio.Event()
    stats = SimStats()
    sim: asyncio.Task[SimStats] | None = None
    try:
        s = await bring_up(stack, s, keep_data=True, say=lambda _: None)
        sim = asyncio.create_task(run_sim(s, rate_per_min=0, stats=stats, stop=stop))
        yield s, stats
    finally:
        stop.set()
        if sim is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sim, timeout=20)
        await asyncio.to_thread(stack.stop)
        await _recreate_database(database, create=False)


async def test_coverage_answers_with_sane_numbers_for_the_docked_fleet(
    twin: tuple[Settings, SimStats],
) -> None:
    s, stats = twin
    keys = orjson.loads((s.state_dir / "credentials.json").read_bytes())
    headers = {"Authorization": f"Bearer {keys['operator']}"}
    url = f"{s.url_of('dispatch')}/v1/coverage"
    async with httpx.AsyncClient(timeout=10.0) as client:
        body = await _eventually_json(client, url, headers, "drones", timeout=45)
        # The reference zone is ~518 km² in cells of 250 m; 54 nests double-cover it.
        assert 8000 <= int(body["cells"]) <= 8600  # type: ignore[call-overload]
        assert body["area_km2"] == pytest.approx(518, rel=0.03)
        assert body["cell_m"] == 250.0
        assert 0.95 <= float(body["ratio"]) <= 1.0  # type: ignore[arg-type]
        uncovered = body["uncovered"]
        assert isinstance(uncovered, dict) and uncovered["type"] == "FeatureCollection"
        assert len(uncovered["features"]) == body["uncovered_cells"]
        slim = (await client.get(url, params={"uncovered": "false"}, headers=headers)).json()
        assert slim["uncovered"]["features"] == []
        denied = await client.get(url)
        assert denied.status_code == 401
        assert denied.headers["content-type"].startswith("application/problem+json")
        bad = await client.get(url, params={"limit": "-1"}, headers=headers)
        assert bad.status_code == 422
        metrics = (await client.get(f"{s.url_of('dispatch')}/metrics")).text
        assert "airgrid_coverage_ratio" in metrics
    assert stats.telemetry_sent > 0


def test_sim_report_writes_the_json_and_the_png(settings: Settings, tmp_path: Path) -> None:
    database = f"{settings.sqlalchemy_url}_report"
    asyncio.run(_recreate_database(database))
    report = tmp_path / "report.json"
    env = dict(os.environ)
    env.update(
        {
            "AIRGRID_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
            "AIRGRID_DATABASE_URL": database,
            "AIRGRID_TOPIC_PREFIX": f"r{uuid.uuid4().hex[:8]}.",
            "AIRGRID_STATE_DIR": str(tmp_path / "state"),
        }
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "entrypoints", "sim", "--profile", "surge", "--duration", "12",
             "--drain", "10", "--seed", "3", "--report", str(report)],
            env=env, capture_output=True, timeout=240, check=False,
        )  # fmt: skip
    finally:
        asyncio.run(_recreate_database(database, create=False))
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output[-3000:]
    body = orjson.loads(report.read_bytes())
    assert body["profile"] == "surge" and body["seed"] == 3
    assert body["incidents_posted"] > 0
    assert body["incidents_accepted"] > 0
    for key in (
        "time_to_scene",
        "time_to_scene_by_department",
        "time_to_scene_by_priority",
        "decision_latency",
        "coverage",
        "within_sla_share",
        "time_to_launch",
        "eta_error",
        "fault_impact",
    ):
        assert key in body
    assert body["decision_latency"]["count"] > 0
    assert body["coverage"]["samples"] > 0
    assert all(0.0 <= p[1] <= 1.0 for p in body["coverage"]["series"])
    png = report.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
