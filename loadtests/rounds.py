"""Rounds of a bench: percentiles, ratios, the median and spread over rounds, the stage that
holds the time, and the side-by-side table. Pure arithmetic and formatting, no I/O.

A bench on a shared machine runs its baseline and its measurement back to back in each
round, several rounds; one round is not a figure, the median of the rounds' ratios is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The sample at rank q (nearest rank, lower side); NaN when there are none."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; NaN when either is NaN or the denominator is 0."""
    if math.isnan(numerator) or math.isnan(denominator) or not denominator:
        return float("nan")
    return numerator / denominator


@dataclass(frozen=True)
class Spread:
    """The median of the rounds' values and their range."""

    median: float
    low: float
    high: float
    rounds: int

    def show(self, spec: str = ".3f", unit: str = "") -> str:
        if self.rounds == 0:
            return "n/a"
        if self.rounds == 1:
            return f"{self.median:{spec}}{unit} (1 round)"
        return f"{self.median:{spec}}{unit} ({self.low:{spec}}–{self.high:{spec}})"


def spread(values: Sequence[float]) -> Spread:
    """Median and min–max over the rounds; rounds without a value (NaN) are left out."""
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return Spread(float("nan"), float("nan"), float("nan"), 0)
    return Spread(statistics.median(known), min(known), max(known), len(known))


def tail_stage(
    stages: Mapping[str, Sequence[float]], totals: Sequence[float], tail: float = 0.1
) -> tuple[str, float]:
    """The stage with the largest mean over the slowest `tail` share of the samples, and
    that mean. `stages[name][i]` is stage `name` of sample i, whose total is `totals[i]`:
    the stage that holds the time where the tail is, not where the median is."""
    if not totals or not stages:
        return "", float("nan")
    count = max(1, math.ceil(len(totals) * tail))
    slowest = sorted(range(len(totals)), key=lambda i: totals[i], reverse=True)[:count]
    means = {
        name: statistics.fmean(samples[i] for i in slowest) for name, samples in stages.items()
    }
    name = max(means, key=lambda n: means[n])
    return name, means[name]


def largest(parts: Mapping[str, float]) -> tuple[str, float]:
    """The part with the largest value (NaN parts left out), and that value."""
    known = {name: value for name, value in parts.items() if not math.isnan(value)}
    if not known:
        return "", float("nan")
    name = max(known, key=lambda n: known[n])
    return name, known[name]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table whose columns are padded to line up in a terminal too."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
