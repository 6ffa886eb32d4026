"""End to end: the accelerated twin (`airgrid sim --fast`) and the live twin agree on a short
seeded run.

The live side is the SLA report's own run (`measure`) against the three services on the
test broker and PostgreSQL; the accelerated side is the same seed, rate, start hour and
docked start on the simulated clock. Case escalation is off on the live side (the fast twin
does not escalate). Patrols and rebalancing are off on both sides: when they
start depends on the phase of the live worker's clock against the fleet's first reports, so
with them the two runs would see different fleets and be compared on the clock's phase, not
on dispatch.

Agreement, as stated in docs/twin.md:
- the same decisions for the same inputs: every incident is served by the same drones;
- the same outcomes: the same incidents linked as duplicates and the same count on scene;
- the sorted times to scene pairwise within TOLERANCE_S, and so p50 and p95. The
  live path adds the outbox poll, Kafka hops and the 5 Hz telemetry to each arrival, the
  simulated clock up to one step (1 s) of state reporting; both are a few seconds at most.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from airgrid.config import Settings
from airgrid.reference import load_reference
from airgrid.sim.report import ReportRequest, measure
from entrypoints.fast_twin.clock_loop import FastRequest, run_fast
from entrypoints.fast_twin.report import fast_report
from entrypoints.stack import Stack, bring_up, report_settings
from tests.conftest import _recreate_database

pytestmark = pytest.mark.e2e

SEED = 5
RATE_PER_MIN = 8.0  # low: each incident meets a docked fleet, decided one at a time
LOAD_S = 40.0
DRAIN_S = 150.0
TOLERANCE_S = 5.0


async def _live_incidents(settings: Settings) -> list[dict[str, object]]:
    keys = orjson.loads((settings.state_dir / "credentials.json").read_bytes())
    url = f"{settings.url_of('dispatch')}/v1/incidents"
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.get(
            url, params={"limit": 500}, headers={"Authorization": f"Bearer {keys['operator']}"}
        )
    assert response.status_code == 200, response.text[:300]
    items: list[dict[str, object]] = response.json()["items"]
    return items


def _point(incident: dict[str, object]) -> tuple[float, float]:
    location = incident["location"]
    assert isinstance(location, dict)
    lon, lat = location["coordinates"]
    return round(float(lon), 6), round(float(lat), 6)


async def test_the_fast_twin_decides_as_the_live_twin_on_a_short_seeded_run(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRGRID_PATROL_ENABLED", "false")  # the service children read it
    run = uuid.uuid4().hex[:8]
    database = f"{settings.sqlalchemy_url}_ft{run}"
    await _recreate_database(database)
    s = report_settings(
        settings.model_copy(
            update={
                "topic_prefix": f"ft{run}.",
                "database_url": database,
                "patrol_enabled": False,
                "rebalance_enabled": False,
                # The fast twin's cameras only watch; live, an escalated case would post an
                # incident the fast side never sees. Escalations here go nowhere (refused
                # connections, retried in the background), so both sides get the same load.
                "dispatch_url": "http://127.0.0.1:9",
                "dispatch_key": "escalation-off",
            }
        ),
        run_dir=tmp_path / "live",
    )
    request = ReportRequest(
        profile="nominal",
        rate_per_min=RATE_PER_MIN,
        duration_s=LOAD_S,
        seed=SEED,
        report_path=tmp_path / "live.json",
        max_drain_s=DRAIN_S,
        start_state="docked",
    )
    stack = Stack(s)
    try:
        s = await bring_up(stack, s, keep_data=True, say=lambda _: None)
        live = await measure(s, request, say=lambda _: None)
        stack.check()
        incidents = await _live_incidents(s)
    finally:
        stack.stop()
        await _recreate_database(database, create=False)

    fast_run = run_fast(
        load_reference(s.reference_data),
        s,
        FastRequest(
            profile="nominal",
            rate_per_min=RATE_PER_MIN,
            load_s=LOAD_S,
            seed=SEED,
            start_hour=request.start_hour,
            start_state="docked",
            max_drain_s=DRAIN_S,
        ),
    )
    fast = fast_report(fast_run, s)

    # The same inputs: the same incidents, at the same places.
    live_by_point = {_point(i): i for i in incidents}
    fast_by_point = {a.point: a for a in fast_run.assignments}
    assert len(fast_by_point) >= 4
    assert set(live_by_point) == set(fast_by_point)
    # The same decisions: each incident served by the same drones, or linked on both sides.
    for point, assignment in sorted(fast_by_point.items()):
        missions = live_by_point[point]["missions"]
        assert isinstance(missions, list)
        live_drones = sorted({str(m["drone_id"]) for m in missions})
        if assignment.drones:
            assert live_drones == sorted(set(assignment.drones)), point
    assert live["linked_duplicates"] == fast["linked_duplicates"]
    assert live["incidents_posted"] == fast["incidents_posted"]
    assert live["on_scene"] == fast["on_scene"] > 0
    assert live["within_sla_share"] == fast["within_sla_share"]
    # Report figures within the tolerance.
    live_times = live["time_to_scene_samples_s"]
    fast_times = fast["time_to_scene_samples_s"]
    assert len(live_times) == len(fast_times)
    for a, b in zip(live_times, fast_times, strict=True):
        assert abs(a - b) <= TOLERANCE_S, (live_times, fast_times)
    for figure in ("p50_s", "p95_s"):
        assert live["time_to_scene"][figure] == pytest.approx(
            fast["time_to_scene"][figure], abs=TOLERANCE_S
        )
