"""An accelerated run measured into the live twin's SLA report: the same JSON keys and
headline (`airgrid.sim.report`), from the same `Outcomes` summary, plus what only a simulated
clock knows (simulated hours, the nests offline, where the run's time went)."""

from __future__ import annotations

from typing import Any

from airgrid.config import Settings
from airgrid.sim.report import CoverageSeries
from entrypoints.fast_twin.clock_loop import FastRun

# Keys that depend on the machine, not on the run: left out when two runs are compared.
WALL_CLOCK_KEYS = ("time_compression", "wall_seconds", "cpu_seconds")


def fast_report(run: FastRun, settings: Settings) -> dict[str, Any]:
    request = run.request
    coverage = CoverageSeries(points=list(run.coverage))
    simulated = run.simulated_s
    return {
        "profile": request.profile,
        "seed": request.seed,
        "load_seconds": request.load_s,
        "run_seconds": round(simulated, 1),
        "time_compression": round(simulated / run.wall_seconds, 1) if run.wall_seconds else None,
        "faults": request.faults,
        "start_state": request.start_state,
        "rebalancing": settings.rebalance_enabled,
        "telemetry_via": "in-process",
        "clock": "simulated",
        "step_seconds": request.step_s,
        "hours": round(request.load_s / 3600.0, 4),
        "start_hour": request.start_hour,
        "nests_offline": list(request.nests_offline),
        "wall_seconds": round(run.wall_seconds, 1),
        "cpu_seconds": round(run.cpu_seconds, 1),
        "simulator": {
            "incidents_posted": len(run.assignments),
            "incidents_rejected": 0,
            "telemetry_sent": run.telemetry_records,
            "telemetry_failed": 0,
            "commands_applied": run.commands_applied,
            "commands_ignored": run.commands_ignored,
            "faults_injected": run.faults_injected,
            "faults_by_kind": dict(sorted(run.faults_by_kind.items())),
            "clock_steps": run.steps,
            "decisions": dict(sorted(run.decisions.items())),
            "sla_alerts": run.sla_alerts,
        },
        **run.outcomes.summary(run.ended_ms, settings.sla_seconds),
        "coverage": {**coverage.summary(), "series": [list(p) for p in coverage.points]},
        "inspection": run.inspection.summary() if run.inspection is not None else None,
        "time_to_scene_samples_s": sorted(
            round(t, 2) for t in run.outcomes.times(run.outcomes.posted())
        ),
    }


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the keys that measure the machine (for same-seed comparisons)."""
    return {k: v for k, v in report.items() if k not in WALL_CLOCK_KEYS}
