"""What `airgrid up` shows while it runs: the live dashboard and the start-up milestones."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
from rich.columns import Columns
from rich.console import Group
from rich.table import Table

from airgrid.config import Settings
from airgrid.sim.outcomes import Outcomes
from airgrid.sim.report import CoverageSeries
from airgrid.sim.sim_stats import SimStats

FRESHNESS_POLL_S = 5.0


class Milestones:
    """When `airgrid up` reached each step toward its first SLA figure, in wall-clock ms: the
    stack ready, the first incident posted, its first decision, the first drone on scene (as
    dispatch timed the arrival) and the SLA share first shown on the dashboard (when the
    arrival reached it). Each is printed once, with the seconds since start."""

    SLA_SHOWN = "SLA share shown"
    STEPS = ("stack ready", "first incident posted", "first decision", "first on scene", SLA_SHOWN)

    def __init__(self, started_ms: int) -> None:
        self.started_ms = started_ms
        self.at_ms: dict[str, int] = {}

    def reach(self, step: str, at_ms: int) -> str | None:
        """Record step at at_ms; the line to print the first time, None after."""
        if step in self.at_ms or not at_ms:
            return None
        self.at_ms[step] = at_ms
        return (
            f"milestone {step}: +{(at_ms - self.started_ms) / 1000:.1f} s after start "
            f"(epoch_ms {at_ms})"
        )

    def from_outcomes(self, outcomes: Outcomes) -> list[str]:
        """Lines for the steps the outcomes show for the first time."""
        posted = outcomes.posted()
        found = {
            "first incident posted": min((o.posted_ms for o in posted), default=0),
            "first decision": min(
                (o.first_decision_ms for o in posted if o.first_decision_ms), default=0
            ),
            "first on scene": min((t for o in posted if (t := outcomes.on_scene_at(o))), default=0),
        }
        return [line for step, at in found.items() if (line := self.reach(step, at))]

    def from_dashboard(self, dashboard: Dashboard, at_ms: int) -> list[str]:
        """The line for the moment the dashboard first has an SLA share to show, with it."""
        share = dashboard.outcomes.sla_share(at_ms, dashboard.sla)
        line = self.reach(self.SLA_SHOWN, at_ms) if share is not None else None
        return [f"{line}: {pct(share)} on scene within {dashboard.sla:.0f} s"] if line else []


class Dashboard:
    """What `airgrid up` shows: fleet by status, incidents by department and stage, time to
    scene, the SLA share, coverage and throughput; one screen, readable at a glance."""

    def __init__(self, sla: float, *, started: float | None = None) -> None:
        self.sla = sla
        self.started = time.monotonic() if started is None else started
        self.outcomes = Outcomes()
        self.coverage = CoverageSeries()
        self.freshness: float | None = None
        """The overall inspection freshness share, from GET /v1/inspection/freshness."""

    def _summary(self) -> dict[str, Any]:
        return self.outcomes.summary(now_ms(), self.sla)

    def rows(self, sim: SimStats | None) -> list[tuple[str, str]]:
        summary = self._summary()
        tts = summary["time_to_scene"]
        share = summary["within_sla_share"]
        latency = summary["decision_latency"]
        coverage = self.coverage.latest
        rows = [
            ("uptime", f"{time.monotonic() - self.started:.0f} s"),
            ("incidents posted / on scene", f"{summary['incidents_posted']} / {tts['count']}"),
            ("time to scene p50 / p95", f"{_s(tts.get('p50_s'))} / {_s(tts.get('p95_s'))}"),
            (f"on scene within {self.sla:.0f} s (arrived)", self._share_text(share)),
            (f"open on track (ETA ≤ {self.sla:.0f} s)", _on_track(*self.outcomes.on_track(
                now_ms(), self.sla))),
            ("coverage (zone within SLA)", pct(coverage)),
            ("inspection freshness (due cells in interval)", pct(self.freshness)),
            ("decision latency p50 / p95", f"{_ms(latency.get('p50_s'))} / "
             f"{_ms(latency.get('p95_s'))}"),
        ]  # fmt: skip
        if sim is not None:
            rows += [
                ("incidents / min (last min)", f"{sim.posts_per_minute():.1f}"),
                ("telemetry records sent", str(sim.telemetry_sent)),
                (
                    "detections posted (rejected)",
                    f"{sim.detections_sent} ({sim.detections_rejected})",
                ),
                ("drones airborne", f"{sim.airborne} of {sim.drones}"),
            ]
        return rows

    def _share_text(self, share: float | None) -> str:
        """The SLA share, or until the first arrival what it waits for (a forecast)."""
        if share is not None:
            return pct(share)
        due_ms = self.outcomes.next_arrival_ms(now_ms(), self.sla)
        if not due_ms:
            return "waiting for the first drone on scene"
        due_s = max(0, due_ms - now_ms()) / 1000
        return f"waiting for the first drone on scene (due in ~{due_s:.0f} s)"

    def render(self, sim: SimStats | None) -> Group:
        head = Table(title="airgrid — live", show_header=False, min_width=46)
        head.add_column("what", style="cyan")
        head.add_column("value", justify="right", style="bold")
        for what, value in self.rows(sim):
            head.add_row(what, value)
        fleet = Table(title="fleet by status", min_width=24)
        fleet.add_column("status", style="cyan")
        fleet.add_column("drones", justify="right", style="bold")
        for status, count in (sim.by_status if sim is not None else {}).items():
            fleet.add_row(status, str(count))
        stages = ("queued", "assigned", "on scene", "completed", "linked")
        by_department = Table(title="incidents by department and stage")
        by_department.add_column("department", style="cyan")
        for stage in stages:
            by_department.add_column(stage, justify="right")
        summary = self._summary()["time_to_scene_by_department"]
        by_department.add_column(f"≤{self.sla:.0f} s", justify="right", style="bold")
        for code, counts in sorted(self.outcomes.stages_by_department().items()):
            share = summary.get(code, {}).get("within_sla_share")
            by_department.add_row(code, *(str(counts.get(s, 0)) for s in stages), pct(share))
        return Group(Columns([head, fleet]), by_department)

    def line(self, sim: SimStats | None) -> str:
        return " | ".join(f"{what}: {value}" for what, value in self.rows(sim))


async def poll_freshness(
    settings: Settings, dashboard: Dashboard, *, key: str | None, every_s: float = FRESHNESS_POLL_S
) -> None:
    """Keep the dashboard's freshness share from GET /v1/inspection/freshness until cancelled."""
    url = f"{settings.url_of('telemetry').rstrip('/')}/v1/inspection/freshness"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                response = await client.get(url, params={"limit": 0}, headers=headers)
                if response.status_code == 200:
                    dashboard.freshness = float(response.json()["share"])
            await asyncio.sleep(every_s)


def _on_track(good: int, open_: int) -> str:
    return "no open incident" if not open_ else f"{good} of {open_}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.0f} ms"


def now_ms() -> int:
    return int(time.time() * 1000)
