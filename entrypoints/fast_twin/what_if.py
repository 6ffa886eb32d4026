""" "Which nest's drones would I miss most?": the same seeded run with each nest offline in
turn, ranked by how much of the SLA share (on scene within 300 s) its loss costs against the
run with every nest up; ties by the rise in time-to-scene p95, then by nest id."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from airgrid.config import Settings
from airgrid.reference import ReferenceData
from entrypoints.fast_twin.clock_loop import FastRequest, FastRun, run_fast


@dataclass(frozen=True)
class NestLoss:
    nest_id: str
    drones: int  # drones based at the nest
    sla_share: float | None
    p95_s: float | None
    share_lost: float  # baseline share minus this run's (positive: worse)
    p95_added_s: float


def _figures(run: FastRun, sla: float) -> tuple[float | None, float | None]:
    summary = run.outcomes.summary(run.ended_ms, sla)
    share = summary["within_sla_share"]
    p95 = summary["time_to_scene"].get("p95_s")
    return share, p95


def nest_losses(
    reference: ReferenceData,
    settings: Settings,
    request: FastRequest,
    *,
    nests: Sequence[str] | None = None,
    say: Callable[[str], None] = print,
) -> tuple[tuple[float | None, float | None], list[NestLoss]]:
    """The baseline's (share, p95) and, for each nest (all by default), the run without it,
    worst loss first."""
    sla = settings.sla_seconds
    base_share, base_p95 = _figures(run_fast(reference, settings, request), sla)
    say(f"baseline: within {sla:.0f} s {_pct(base_share)}, p95 {base_p95} s")
    per_nest: dict[str, int] = {}
    for drone in reference.drones:
        per_nest[drone.home_nest] = per_nest.get(drone.home_nest, 0) + 1
    chosen = list(nests) if nests is not None else sorted(n.id for n in reference.nests)
    losses: list[NestLoss] = []
    for i, nest_id in enumerate(chosen, 1):
        run = run_fast(reference, settings, replace(request, nests_offline=(nest_id,)))
        share, p95 = _figures(run, sla)
        loss = NestLoss(
            nest_id,
            per_nest.get(nest_id, 0),
            share,
            p95,
            round((base_share or 0.0) - (share or 0.0), 4),
            round((p95 or 0.0) - (base_p95 or 0.0), 2),
        )
        losses.append(loss)
        say(f"[{i}/{len(chosen)}] {nest_id} offline: within SLA {_pct(share)}, p95 {p95} s")
    losses.sort(key=lambda n: (-n.share_lost, -n.p95_added_s, n.nest_id))
    return (base_share, base_p95), losses


def _pct(share: float | None) -> str:
    return f"{100 * share:.1f} %" if share is not None else "-"


def ranking_lines(losses: Sequence[NestLoss], top: int) -> list[str]:
    lines = ["nest      drones  within SLA  share lost  p95 s  p95 added s"]
    for n in losses[:top]:
        lines.append(
            f"{n.nest_id:<9} {n.drones:>6}  {_pct(n.sla_share):>10}  "
            f"{100 * n.share_lost:>8.1f} pt  {n.p95_s if n.p95_s is not None else '-':>5}  "
            f"{n.p95_added_s:>+10.1f}"
        )
    return lines
