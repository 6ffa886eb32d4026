"""The SLA report: one seeded run of a load profile, measured, written as JSON and a PNG.

`airgrid sim --profile P --duration D --report FILE.json` posts the profile's incidents for D
seconds, then lets the run drain (until every incident has a drone on scene, or the SLA has
passed for the last one), and writes time to scene per department and priority, the share
within the SLA, coverage over time (GET /v1/coverage every few seconds) and decision
latencies; FILE.png beside it plots the time-to-scene distribution and coverage over time.
Runs in real time: the stack's clocks (SLA, link-lost, ticks) are wall clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from airgrid.bus import now_ms
from airgrid.config import Settings
from airgrid.sim.outcomes import Outcomes, follow_outcomes
from airgrid.sim.runner import run_sim
from airgrid.sim.sim_stats import SimStats

log = logging.getLogger("airgrid.sim")

COVERAGE_POLL_S = 5.0


@dataclass
class CoverageSeries:
    """Coverage ratios over a run: (seconds since start, ratio, available drones)."""

    started: float = field(default_factory=time.monotonic)
    points: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def latest(self) -> float | None:
        return self.points[-1][1] if self.points else None

    def summary(self) -> dict[str, Any]:
        ratios = [p[1] for p in self.points]
        if not ratios:
            return {"samples": 0}
        return {
            "samples": len(ratios),
            "mean": round(sum(ratios) / len(ratios), 5),
            "min": round(min(ratios), 5),
            "max": round(max(ratios), 5),
            "share_of_time_at_or_above_99pct": round(
                sum(1 for r in ratios if r >= 0.99) / len(ratios), 4
            ),
        }


def operator_key(settings: Settings, credentials_path: Path | None = None) -> str | None:
    path = credentials_path or settings.state_dir / "credentials.json"
    with contextlib.suppress(FileNotFoundError, ValueError, orjson.JSONDecodeError):
        data = orjson.loads(path.read_bytes())
        key = data.get("operator") if isinstance(data, dict) else None
        return str(key) if key else None
    return None


async def poll_coverage(
    settings: Settings,
    series: CoverageSeries,
    *,
    key: str | None,
    every_s: float = COVERAGE_POLL_S,
    dispatch_url: str | None = None,
) -> None:
    """Sample GET /v1/coverage (without the GeoJSON) until cancelled."""
    url = f"{(dispatch_url or settings.url_of('dispatch')).rstrip('/')}/v1/coverage"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                response = await client.get(url, params={"uncovered": "false"}, headers=headers)
                if response.status_code == 200:
                    body = response.json()
                    if not series.points and not body["available_drones"]:
                        # Warm-up: the fleet has not reported yet; nothing to measure.
                        await asyncio.sleep(1.0)
                        continue
                    series.points.append(
                        (
                            round(time.monotonic() - series.started, 1),
                            float(body["ratio"]),
                            int(body["available_drones"]),
                        )
                    )
            await asyncio.sleep(every_s)


@dataclass(frozen=True)
class ReportRequest:
    profile: str
    duration_s: float
    report_path: Path
    seed: int = 7
    faults: str = "none"
    rate_per_min: float | None = None
    start_hour: float = 10.0
    telemetry_via: str = "kafka"
    max_drain_s: float | None = None  # default: the SLA plus a minute
    start_state: str = "docked"  # the conservative start of docs/performance.md


async def measure(
    settings: Settings,
    request: ReportRequest,
    *,
    credentials_path: Path | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the load against the stack that `settings` point at and build the report."""
    outcomes = Outcomes()
    series = CoverageSeries()
    stats = SimStats()
    stop = asyncio.Event()
    sla = settings.sla_seconds
    helpers = [
        asyncio.create_task(follow_outcomes(settings, outcomes), name="outcomes"),
        asyncio.create_task(
            poll_coverage(settings, series, key=operator_key(settings, credentials_path)),
            name="coverage",
        ),
    ]
    sim = asyncio.create_task(
        run_sim(
            settings,
            profile=request.profile,
            rate_per_min=request.rate_per_min,
            seed=request.seed,
            load_s=request.duration_s,
            credentials_path=credentials_path,
            stats=stats,
            stop=stop,
            faults=request.faults,
            telemetry_via=request.telemetry_via,
            start_hour=request.start_hour,
            outcomes=outcomes,
            start_state=request.start_state,
        ),
        name="sim",
    )
    began = time.monotonic()
    try:
        say(f"load: profile {request.profile}, {request.duration_s:.0f} s, seed {request.seed}")
        await asyncio.wait([sim], timeout=request.duration_s)
        # Drain: every incident on scene, or the SLA passed for the last one posted.
        drain = request.max_drain_s if request.max_drain_s is not None else sla + 60.0
        drain_from = time.monotonic()
        say(f"drain: waiting up to {drain:.0f} s for the last incidents")
        while not sim.done() and time.monotonic() - drain_from < drain:
            open_ = [
                o
                for o in outcomes.posted()
                if not outcomes.on_scene_at(o) and now_ms() - o.accepted_ms <= sla * 1000
            ]
            if stats.incidents_accepted and not open_ and time.monotonic() - drain_from > 5:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # the last stage events in flight
        if sim.done() and sim.exception() is not None:
            raise sim.exception()  # type: ignore[misc]
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(sim, timeout=20)
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    report = outcomes.summary(now_ms(), sla)
    report = {
        "profile": request.profile,
        "seed": request.seed,
        "load_seconds": request.duration_s,
        "run_seconds": round(time.monotonic() - began, 1),
        "time_compression": 1.0,
        "faults": request.faults,
        "start_state": request.start_state,
        "rebalancing": settings.rebalance_enabled,
        "telemetry_via": request.telemetry_via,
        "simulator": {
            "incidents_posted": stats.incidents_posted,
            "incidents_rejected": stats.incidents_failed,
            "telemetry_sent": stats.telemetry_sent,
            "telemetry_failed": stats.telemetry_failed,
            "commands_applied": stats.commands_applied,
            "faults_injected": stats.faults_injected,
            "faults_by_kind": dict(sorted(stats.faults_by_kind.items())),
        },
        **report,
        "coverage": {**series.summary(), "series": [list(p) for p in series.points]},
        "time_to_scene_samples_s": sorted(round(t, 2) for t in outcomes.times(outcomes.posted())),
    }
    return report


def write_report(report: dict[str, Any], path: Path) -> Path:
    """The JSON at path and the plot beside it (same name, .png); returns the PNG's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    png = path.with_suffix(".png")
    plot_report(report, png)
    return png


def plot_report(report: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sla = float(report.get("sla_seconds", 300.0))
    times = [float(t) for t in report.get("time_to_scene_samples_s", [])]
    series = report.get("coverage", {}).get("series", [])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    title = (
        f"airgrid twin — {report.get('profile')} (seed {report.get('seed')}, "
        f"rebalancing {'on' if report.get('rebalancing') else 'off'})"
    )
    fig.suptitle(title)
    if times:
        left.hist(times, bins=min(40, max(5, len(times) // 3)), color="#4477aa")
    left.axvline(sla, color="#cc3311", linestyle="--", label=f"SLA {sla:.0f} s")
    share = report.get("within_sla_share")
    label = f"within SLA: {100 * share:.1f} %" if isinstance(share, float) else "no data"
    left.set_title(f"time to scene ({len(times)} incidents; {label})")
    left.set_xlabel("seconds from accepted to on scene")
    left.set_ylabel("incidents")
    left.legend()
    if series:
        right.plot([p[0] for p in series], [100 * p[1] for p in series], color="#228833")
    right.axhline(99.0, color="#cc3311", linestyle="--", label="99 % target")
    right.set_ylim(0, 101)
    right.set_title("coverage: share of the zone reached within the SLA")
    right.set_xlabel("seconds into the run")
    right.set_ylabel("% of zone area")
    right.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def headline(report: dict[str, Any]) -> str:
    share = report.get("within_sla_share")
    tts = report.get("time_to_scene", {})
    coverage = report.get("coverage", {})
    parts = [
        f"profile {report.get('profile')}",
        f"rebalancing {'on' if report.get('rebalancing') else 'off'}",
        f"incidents {report.get('incidents_posted')}",
        f"within {report.get('sla_seconds', 300):.0f} s: "
        + (f"{100 * share:.1f} %" if isinstance(share, float) else "-"),
        f"time to scene p50 {tts.get('p50_s', '-')} s, p95 {tts.get('p95_s', '-')} s",
        f"coverage mean {coverage.get('mean', '-')}, min {coverage.get('min', '-')}",
    ]
    inspection = report.get("inspection")
    if inspection:
        fresh = inspection.get("freshness", {})
        parts += [
            f"recall (events > 30 min) {_percent(inspection.get('recall'))}",
            f"freshness mean {_percent(fresh.get('mean'))}",
        ]
    return " | ".join(parts)


def _percent(value: object) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, int | float) else "-"


def _seconds(figures: dict[str, Any], *quantiles: int) -> str:
    values = [figures.get(f"p{q}_s") for q in quantiles]
    return " / ".join("-" if v is None else f"{v:.0f}" for v in values)


def _share(figures: dict[str, Any]) -> str:
    share = figures.get("within_sla_share")
    return f"{100 * share:.1f} %" if isinstance(share, int | float) else "-"


def comparison_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures users compare between runs, as (row label, value) in a fixed order: the
    SLA share and time to scene p50 / p90 / p95 overall, per priority and per department,
    time to launch, ETA error, coverage, and what injected faults broke."""
    sla = float(report.get("sla_seconds", 300.0))
    tts = report.get("time_to_scene", {})
    rows = [
        ("incidents posted", str(report.get("incidents_posted", "-"))),
        (f"on scene within {sla:.0f} s", _share(report)),
        ("time to scene p50 / p90 / p95 s", _seconds(tts, 50, 90, 95)),
    ]
    for key, label in (
        ("time_to_scene_by_priority", "priority"),
        ("time_to_scene_by_department", "department"),
    ):
        for name, figures in report.get(key, {}).items():
            rows.append(
                (
                    f"{label} {name}: n, within {sla:.0f} s, p50 / p90 / p95 s",
                    f"{figures.get('count', 0)}, {_share(figures)}, "
                    f"{_seconds(figures, 50, 90, 95)}",
                )
            )
    launch = report.get("time_to_launch", {})
    eta = report.get("eta_error", {})
    coverage = report.get("coverage", {})
    rows += [
        ("time to launch p50 / p90 / p95 s", _seconds(launch, 50, 90, 95)),
        ("ETA error (late +) p5 / p50 / p95 s", _seconds(eta, 5, 50, 95)),
        ("coverage mean / min", f"{coverage.get('mean', '-')} / {coverage.get('min', '-')}"),
    ]
    simulator = report.get("simulator", {})
    kinds = simulator.get("faults_by_kind", {})
    injected = str(simulator.get("faults_injected", 0))
    if kinds:
        injected += " (" + ", ".join(f"{k} {n}" for k, n in kinds.items()) + ")"
    impact = report.get("fault_impact", {})
    redispatch = impact.get("time_to_redispatch", {})
    rows += [
        ("faults injected", injected),
        (
            "missions broken (not re-dispatched)",
            f"{impact.get('missions_broken', 0)} ({impact.get('not_redispatched', 0)})",
        ),
        ("re-dispatch p50 / p95 / max s", _seconds(redispatch, 50, 95) + (
            f" / {redispatch['max_s']:.0f}" if "max_s" in redispatch else " / -"
        )),
        (
            "affected incidents within SLA",
            _share(impact.get("time_to_scene_of_affected", {})),
        ),
    ]  # fmt: skip
    return rows + inspection_rows(report)


def inspection_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The accelerated twin's ground truth against what became cases, and freshness; none for
    a report without them (the live report)."""
    inspection = report.get("inspection")
    if not inspection:
        return []
    fresh = inspection.get("freshness", {})
    to_case = inspection.get("time_to_case_s", {})
    return [
        ("events (over 30 min)", f"{inspection.get('events_total', '-')} "
         f"({inspection.get('events_over_30_min', '-')})"),
        ("recall: events over 30 min with a case before their end",
         f"{_percent(inspection.get('recall'))} ({inspection.get('events_over_30_min_caught', '-')}"
         f" of {inspection.get('events_over_30_min_counted', '-')})"),
        ("event start to first case p50 / p95 s", _seconds(to_case, 50, 95)),
        ("detections, cases opened",
         f"{inspection.get('detections', '-')}, {inspection.get('cases_opened', '-')}"),
        ("freshness share mean / min / second-half mean",
         f"{_percent(fresh.get('mean'))} / {_percent(fresh.get('min'))} / "
         f"{_percent(fresh.get('second_half_mean'))}"),
    ]  # fmt: skip


def comparison_table(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """A Markdown table: one row per compared figure, one column per run."""
    labels: list[str] = []
    values: dict[str, list[str]] = {}
    for i, (_, report) in enumerate(runs):
        for label, value in comparison_rows(report):
            if label not in values:
                labels.append(label)
                values[label] = ["-"] * len(runs)
            values[label][i] = value
    lines = [
        "| figure | " + " | ".join(name for name, _ in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    lines += ["| " + label + " | " + " | ".join(values[label]) + " |" for label in labels]
    return lines
