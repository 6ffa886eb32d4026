"""Unit tests of the benches' round arithmetic (loadtests/rounds.py): percentiles, ratios,
the median and spread over rounds, and the stage that holds the tail. No timings."""

from __future__ import annotations

import math

from airgrid.config import Settings
from loadtests.bench_brokers import broker_labels
from loadtests.rounds import largest, percentile, ratio, spread, table, tail_stage


def test_percentile_takes_the_nearest_rank_below() -> None:
    samples = [float(n) for n in range(1, 101)]  # 1..100, shuffled order must not matter
    assert percentile(list(reversed(samples)), 0.5) == 51.0
    assert percentile(samples, 0.99) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_ratio_is_nan_when_it_has_no_meaning() -> None:
    assert ratio(30.0, 12.0) == 2.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(float("nan"), 2.0))
    assert math.isnan(ratio(2.0, float("nan")))


def test_spread_is_the_median_and_range_of_the_rounds() -> None:
    # The telemetry ratio of two runs an hour apart, and a third between them.
    found = spread([0.66, 0.34, 0.41])
    assert found.median == 0.41
    assert (found.low, found.high, found.rounds) == (0.34, 0.66, 3)
    assert found.show(".2f") == "0.41 (0.34–0.66)"
    even = spread([1.0, 4.0, 2.0, 3.0])
    assert even.median == 2.5
    assert even.show(".1f", " ms") == "2.5 ms (1.0–4.0)"


def test_spread_leaves_out_rounds_without_a_figure() -> None:
    found = spread([float("nan"), 3.0, 5.0])
    assert (found.median, found.low, found.high, found.rounds) == (4.0, 3.0, 5.0, 2)
    assert spread([float("nan")]).show() == "n/a"
    assert spread([2.0]).show(".1f") == "2.0 (1 round)"


def test_tail_stage_names_the_stage_of_the_slowest_samples_not_of_the_median() -> None:
    # Nine posts where the broker takes most of a short path, one slow post whose decision
    # transaction took 80 ms: the tail belongs to the transaction.
    broker = [20.0] * 9 + [10.0]
    decision = [5.0] * 9 + [80.0]
    totals = [b + d for b, d in zip(broker, decision, strict=True)]
    assert tail_stage({"broker": broker, "decision": decision}, totals) == ("decision", 80.0)
    # With the slowest half, the means mix: broker (20*4+10)/5 = 18, decision (5*4+80)/5 = 20.
    assert tail_stage({"broker": broker, "decision": decision}, totals, tail=0.5) == (
        "decision",
        20.0,
    )
    name, mean = tail_stage({"broker": [], "decision": []}, [])
    assert name == "" and math.isnan(mean)


def test_largest_skips_parts_without_a_figure() -> None:
    parts = {"broker hop": 230.0, "worker": 76.0, "feed routing": float("nan")}
    assert largest(parts) == ("broker hop", 230.0)
    name, value = largest({"worker": float("nan")})
    assert name == "" and math.isnan(value)


def test_table_lines_up_its_columns() -> None:
    lines = table(["figure", "embedded", "kafka"], [["hop p99", "3.1 ms", "12.40 ms"]])
    assert lines == [
        "| figure  | embedded | kafka    |",
        "|---------|----------|----------|",
        "| hop p99 | 3.1 ms   | 12.40 ms |",
    ]


def test_an_external_bootstrap_is_the_only_broker_compared() -> None:
    assert broker_labels("both", Settings(kafka_bootstrap=None)) == ["embedded", "kafka"]
    assert broker_labels("kafka", Settings(kafka_bootstrap=None)) == ["kafka"]
    assert broker_labels("both", Settings(kafka_bootstrap="10.0.0.5:9092")) == ["external"]
