"""Unit tests of the figures users compare in the SLA report: time to launch, ETA error,
the missions injected faults broke and how fast each incident got a drone again, and the
side-by-side table."""

from __future__ import annotations

import pytest

from airgrid.sim.outcomes import Outcomes
from airgrid.sim.report import comparison_rows, comparison_table
from airgrid.v1 import dispatch_pb2, mission_pb2

ASSIGNED = dispatch_pb2.DECISION_KIND_ASSIGNED
REDISPATCHED = dispatch_pb2.DECISION_KIND_REDISPATCHED


def _decide(o: Outcomes, incident_id: str, kind: int, at: int, *, eta_s: float = 0.0,
            reason: str = "") -> None:  # fmt: skip
    message = dispatch_pb2.DispatchDecision(
        incident_id=incident_id,
        kind=kind,  # type: ignore[arg-type]
        incident_accepted_time_ms=1_000,
        decided_time_ms=at,
        reason=reason,
    )
    if kind == ASSIGNED:
        message.assignments.add(drone_id="d", eta_seconds=eta_s)
    o.on_decision(message)


def _stage(o: Outcomes, incident_id: str, stage: int, at: int) -> None:
    o.on_mission(mission_pb2.MissionEvent(incident_id=incident_id, stage=stage, event_time_ms=at))  # type: ignore[arg-type]


def _outcomes() -> Outcomes:
    """i0 flies cleanly; i1's first drone loses its link and a second is assigned 4 s later;
    i2's drone fails on a battery fault and nothing replaces it."""
    o = Outcomes()
    for i in range(3):
        o.on_posted(f"i{i}", department="fire", priority=1, type="fire", at_ms=1_000)
    launched = mission_pb2.MISSION_STAGE_LAUNCHED
    on_scene = mission_pb2.MISSION_STAGE_ON_SCENE
    _decide(o, "i0", ASSIGNED, 1_500, eta_s=100.0)  # expected at 101.5 s
    _stage(o, "i0", launched, 21_000)
    _stage(o, "i0", on_scene, 111_500)  # 10 s late
    _decide(o, "i1", ASSIGNED, 1_200, eta_s=90.0)
    _stage(o, "i1", launched, 31_000)
    _decide(o, "i1", REDISPATCHED, 50_000, reason="drone drone-007: link lost")
    _decide(o, "i1", ASSIGNED, 54_000, eta_s=120.0)  # expected at 174 s
    _stage(o, "i1", launched, 75_000)  # a second launch: the first counts
    _stage(o, "i1", on_scene, 169_000)  # 5 s early
    _decide(o, "i2", ASSIGNED, 1_100, eta_s=80.0)
    _decide(o, "i2", REDISPATCHED, 20_000, reason="drone drone-009: fault: battery_fault")
    return o


def test_time_to_launch_is_accepted_to_the_first_launch() -> None:
    assert sorted(_outcomes().launch_times_s()) == pytest.approx([20.0, 30.0])


def test_eta_error_compares_arrival_with_the_eta_standing_at_arrival() -> None:
    assert sorted(_outcomes().eta_errors_s()) == pytest.approx([-5.0, 10.0])


def test_broken_missions_count_each_break_and_time_its_redispatch() -> None:
    impact = _outcomes().broken_missions(300.0)
    assert impact["missions_broken"] == 2
    assert impact["incidents_affected"] == 2
    assert impact["by_reason"] == {"fault: battery_fault": 1, "link lost": 1}
    assert impact["not_redispatched"] == 1
    assert impact["time_to_redispatch"]["count"] == 1
    assert impact["time_to_redispatch"]["p50_s"] == pytest.approx(4.0)
    assert impact["time_to_scene_of_affected"]["count"] == 1  # i1; i2 never got there


def test_the_summary_carries_the_new_figures_beside_the_old() -> None:
    summary = _outcomes().summary(now_ms=1_000_000, sla=300.0)
    for key in ("time_to_scene", "time_to_scene_by_department", "decision_latency"):
        assert key in summary
    assert summary["time_to_launch"]["p50_s"] == pytest.approx(25.0)
    assert summary["eta_error"]["count"] == 2
    assert summary["fault_impact"]["missions_broken"] == 2
    assert summary["time_to_scene_by_priority"]["1"]["p90_s"] is not None


def test_the_side_by_side_table_has_a_column_per_run_and_a_row_per_figure() -> None:
    report = _outcomes().summary(now_ms=1_000_000, sla=300.0)
    report["simulator"] = {"faults_injected": 2, "faults_by_kind": {"battery_fault": 1,
                                                                   "link_loss": 1}}  # fmt: skip
    rows = dict(comparison_rows(report))
    assert rows["missions broken (not re-dispatched)"] == "2 (1)"
    assert rows["faults injected"] == "2 (battery_fault 1, link_loss 1)"
    assert rows["time to launch p50 / p90 / p95 s"] == "25 / 29 / 30"
    assert "department fire: n, within 300 s, p50 / p90 / p95 s" in rows
    table = comparison_table([("a", report), ("b", {"incidents_posted": 0})])
    assert table[0] == "| figure | a | b |"
    assert len(table) == 2 + len(rows)
    assert all(line.count("|") == 4 for line in table)
