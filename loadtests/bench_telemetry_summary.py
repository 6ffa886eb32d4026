"""The telemetry benchmark's report: each round's lines, the summary per broker, the verdicts
against the targets, and the brokers side by side."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from loadtests.bench_telemetry_config import (
    FEED_P99_TARGET_MS,
    PIPELINE_RATIO_TARGET,
    BenchConfig,
    Figures,
)
from loadtests.rounds import Spread, largest, percentile, ratio, spread, table


@dataclass(frozen=True)
class Round:
    label: str
    number: int
    figures: Figures


def round_lines(r: Round, cfg: BenchConfig) -> list[str]:
    f = r.figures
    lines = [
        f"  round {r.number} {r.label:<8}: broker hop p50 {percentile(f.hop_ms, 0.5):.2f} p99 "
        f"{percentile(f.hop_ms, 0.99):.2f} ms | (a) {f.bare_rate:,.0f}/s (b) "
        f"{f.pipeline_rate:,.0f}/s ratio {ratio(f.pipeline_rate, f.bare_rate):.3f} | CPU/record "
        f"{f.backlog_cpu_us:.1f} / {f.live_cpu_us:.1f} us",
        f"      live {f.produced_rate:,.0f}/s produced, {f.handled_rate:,.0f}/s handled | "
        + " | ".join(
            f"{name} p50 {percentile(samples, 0.5):.1f} p99 {percentile(samples, 0.99):.1f} ms"
            for name, samples in (
                ("raw (hop)", f.raw_ms),
                ("state", f.state_ms),
                ("feed", f.feed_ms),
            )
        )
        + f" | feed p99 / hop p99 {feed_ratio(f):.1f}x",
        f"      worker loop stall p99 {percentile(f.loop_stall_ms, 0.99):.1f} ms, max "
        f"{max(f.loop_stall_ms, default=0.0):.1f} ms; {len(f.gc_pause_ms)} GC runs, longest "
        f"{max(f.gc_pause_ms, default=0.0):.1f} ms CPU",
    ]
    if f.faust_rate:
        lines.append(
            f"      (c) faust agent, decode only: {f.faust_rate:,.0f} records/s (first "
            f"{min(cfg.faust_records, cfg.records):,}); (c)/(a) "
            f"{ratio(f.faust_rate, f.bare_rate):.3f}"
        )
    return lines


def feed_ratio(f: Figures) -> float:
    return ratio(percentile(f.feed_ms, 0.99), percentile(f.raw_ms, 0.99))


@dataclass(frozen=True)
class BrokerSummary:
    hop_p50: Spread
    hop_p99: Spread
    bare: Spread
    pipeline: Spread
    ratio: Spread
    produced: Spread
    raw_p50: Spread
    raw_p99: Spread
    state_p99: Spread
    feed_p50: Spread
    feed_p99: Spread
    feed_ratio: Spread
    live_cpu_us: Spread
    faust: float

    def feed_stages(self) -> dict[str, float]:
        """Where the feed's p99 goes, from the medians over the rounds: the broker hop under
        the same load (record -> raw topic seen by a bare consumer), and what the worker
        adds on top of it (its fetch, decode, state, feed routing and the produce)."""
        return {
            "broker hop": self.raw_p99.median,
            "worker": self.feed_p99.median - self.raw_p99.median,
        }


def summarize(rounds: list[Figures]) -> BrokerSummary:
    def over(figure: Callable[[Figures], float]) -> Spread:
        return spread([figure(f) for f in rounds])

    return BrokerSummary(
        hop_p50=over(lambda f: percentile(f.hop_ms, 0.5)),
        hop_p99=over(lambda f: percentile(f.hop_ms, 0.99)),
        bare=over(lambda f: f.bare_rate),
        pipeline=over(lambda f: f.pipeline_rate),
        ratio=over(lambda f: ratio(f.pipeline_rate, f.bare_rate)),
        produced=over(lambda f: f.produced_rate),
        raw_p50=over(lambda f: percentile(f.raw_ms, 0.5)),
        raw_p99=over(lambda f: percentile(f.raw_ms, 0.99)),
        state_p99=over(lambda f: percentile(f.state_ms, 0.99)),
        feed_p50=over(lambda f: percentile(f.feed_ms, 0.5)),
        feed_p99=over(lambda f: percentile(f.feed_ms, 0.99)),
        feed_ratio=over(feed_ratio),
        live_cpu_us=over(lambda f: f.live_cpu_us),
        faust=max((f.faust_rate for f in rounds), default=0.0),
    )


def ratio_verdict(s: BrokerSummary) -> str:
    if s.ratio.rounds == 0:
        return "no figure"
    return "met" if s.ratio.median >= PIPELINE_RATIO_TARGET else "not met"


def feed_verdict(s: BrokerSummary, cfg: BenchConfig) -> str:
    """Met or not at the rate produced, and where missed, the stage that holds the time."""
    p99 = s.feed_p99.median
    if math.isnan(p99):
        return "no figure"
    short = (
        f" (load reached {s.produced.median:,.0f} of {cfg.rate:,.0f}/s)"
        if s.produced.median < 0.95 * cfg.rate
        else ""
    )
    if p99 <= FEED_P99_TARGET_MS:
        return "met" + short
    name, ms = largest(s.feed_stages())
    return f"not met{short}: {name} holds {ms:.0f} of {p99:.0f} ms"


def side_by_side(
    labels: list[str], summaries: dict[str, BrokerSummary], cfg: BenchConfig
) -> list[str]:
    def row(figure: str, show: Callable[[BrokerSummary], str], target: str) -> list[str]:
        return [figure, *(show(summaries[label]) for label in labels), target]

    rows = [
        row("broker hop, one record, p50", lambda s: s.hop_p50.show(".2f", " ms"), "baseline"),
        row("broker hop, one record, p99", lambda s: s.hop_p99.show(".2f", " ms"), "baseline"),
        row("(a) bare aiokafka consume + decode", lambda s: s.bare.show(",.0f", "/s"), "baseline"),
        row("(b) full pipeline, 1 worker", lambda s: s.pipeline.show(",.0f", "/s"), ""),
        row(
            "ratio (b)/(a)",
            lambda s: s.ratio.show(".3f"),
            f">= {PIPELINE_RATIO_TARGET}",
        ),
        row("", ratio_verdict, ""),
        row(
            f"live load produced ({cfg.rate:,.0f}/s asked)",
            lambda s: s.produced.show(",.0f", "/s"),
            "",
        ),
        row("worker CPU per live record", lambda s: s.live_cpu_us.show(".1f", " us"), ""),
        row(
            "broker hop under load (record -> raw), p50 / p99",
            lambda s: f"{s.raw_p50.median:.1f} / {s.raw_p99.median:.1f} ms",
            "baseline",
        ),
        row("record -> state, p99", lambda s: s.state_p99.show(".1f", " ms"), ""),
        row("record -> feed, p50", lambda s: s.feed_p50.show(".1f", " ms"), ""),
        row(
            "record -> feed, p99",
            lambda s: s.feed_p99.show(".1f", " ms"),
            f"<= {FEED_P99_TARGET_MS:.0f} ms",
        ),
        row("feed p99 / hop p99 under load", lambda s: s.feed_ratio.show(".1f", "x"), ""),
        row("", lambda s: feed_verdict(s, cfg), ""),
        row(
            "(c) faust agent, decode only (round 1)",
            lambda s: f"{s.faust:,.0f}/s" if s.faust else "n/a",
            "context",
        ),
    ]
    return table(["figure", *labels, "target"], rows)
