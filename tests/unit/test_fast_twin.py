"""The accelerated twin's simulated clock loop: deterministic for a seed, and the what-if
options act on the dispatch core as a nest outage would."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from airgrid.config import Settings
from airgrid.reference import ReferenceData, load_reference
from entrypoints.fast_twin.clock_loop import FastRequest, FastRun, run_fast
from entrypoints.fast_twin.inspection import InspectionTrack
from entrypoints.fast_twin.report import comparable, fast_report
from entrypoints.fast_twin.world import LayoutError, with_layout

# Three simulated minutes of the busy profile, then the drain: a few seconds of CPU each.
SHORT = FastRequest(profile="busy", load_s=180.0, seed=11, max_drain_s=330.0)


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference()


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(log_format="console")


@pytest.fixture(scope="module")
def first(reference: ReferenceData, settings: Settings) -> FastRun:
    return run_fast(reference, settings, SHORT)


def _trail(run: FastRun) -> list[tuple[str, tuple[float, float], int, tuple[str, ...]]]:
    return [(a.incident_id, a.point, a.accepted_ms, a.drones) for a in run.assignments]


def test_the_same_seed_gives_the_same_decisions_and_report(
    reference: ReferenceData, settings: Settings, first: FastRun
) -> None:
    again = run_fast(reference, settings, SHORT)
    assert len(first.assignments) >= 10
    assert sum(1 for a in first.assignments if a.drones) >= 10
    assert _trail(again) == _trail(first)
    assert again.decisions == first.decisions
    assert comparable(fast_report(again, settings)) == comparable(fast_report(first, settings))


def test_another_seed_gives_other_incidents_and_decisions(
    reference: ReferenceData, settings: Settings, first: FastRun
) -> None:
    other = run_fast(reference, settings, replace(SHORT, seed=12))
    assert _trail(other) != _trail(first)


def test_leaving_out_repeated_idle_reports_changes_no_decision(
    reference: ReferenceData, settings: Settings, first: FastRun
) -> None:
    every = run_fast(reference, settings, SHORT, skip_repeats=False)
    assert first.telemetry_repeats > 0 and every.telemetry_repeats == 0
    assert _trail(every) == _trail(first)
    assert every.decisions == first.decisions
    assert comparable(fast_report(every, settings)) == comparable(fast_report(first, settings))


def test_the_report_has_the_live_reports_keys_and_sane_figures(
    settings: Settings, first: FastRun
) -> None:
    report = fast_report(first, settings)
    for key in ("within_sla_share", "time_to_scene", "time_to_scene_by_department",
                "time_to_scene_by_priority", "decision_latency", "coverage",
                "time_to_scene_samples_s", "incidents_posted", "run_seconds"):  # fmt: skip
        assert key in report
    assert report["incidents_posted"] == len(first.assignments)
    assert 0.0 <= report["within_sla_share"] <= 1.0
    assert report["time_to_scene"]["count"] > 0
    assert report["coverage"]["samples"] > 0
    assert report["run_seconds"] >= SHORT.load_s


def test_a_nest_offline_never_launches_a_drone_and_loses_its_share(
    reference: ReferenceData, settings: Settings, first: FastRun
) -> None:
    used = {d for a in first.assignments for d in a.drones}
    home = {d.id: d.home_nest for d in reference.drones}
    busiest = max(sorted({home[d] for d in used}), key=lambda n: sum(home[d] == n for d in used))
    without = run_fast(reference, settings, replace(SHORT, nests_offline=(busiest,)))
    flown = {d for a in without.assignments for d in a.drones}
    assert flown and not any(home[d] == busiest for d in flown)
    assert len(without.assignments) == len(first.assignments)  # the same incidents


def test_a_layout_moves_a_nest_and_refuses_one_outside_the_zone(
    reference: ReferenceData, tmp_path: Path
) -> None:
    nest = reference.nests[0]
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps([{"id": nest.id, "lon": nest.lon + 0.001, "lat": nest.lat}]))
    changed = {n.id: n for n in with_layout(reference, moved).nests}
    assert changed[nest.id].lon == pytest.approx(nest.lon + 0.001)
    assert len(changed) == len(reference.nests)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps([{"id": nest.id, "lon": 0.0, "lat": 0.0}]))
    with pytest.raises(LayoutError, match="outside the zone"):
        with_layout(reference, outside)


def test_the_cameras_only_watch_no_decision_changes_without_them(
    reference: ReferenceData, settings: Settings, first: FastRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ground truth, seeing and case merge read the fleet and nothing else: a run whose
    cameras see nothing decides the same, so the emergency figures are a run's without them."""
    assert first.inspection is not None and first.inspection.detections > 0
    summary = fast_report(first, settings)["inspection"]
    assert summary["events_total"] > 0 and summary["freshness"]["samples"] > 0
    monkeypatch.setattr(InspectionTrack, "step", lambda self, fleet, now_ms: None)
    blind = run_fast(reference, settings, SHORT)
    assert blind.inspection is not None and blind.inspection.detections == 0
    assert _trail(blind) == _trail(first)
    assert blind.decisions == first.decisions
    seen, unseen = (
        comparable(fast_report(first, settings)),
        comparable(fast_report(blind, settings)),
    )
    assert {k: v for k, v in seen.items() if k != "inspection"} == {
        k: v for k, v in unseen.items() if k != "inspection"
    }
