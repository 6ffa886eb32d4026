"""What one run of the telemetry benchmark measures, its targets, and the figures of one round."""

from __future__ import annotations

from dataclasses import dataclass, field

NOMINAL_RECORDS_PER_S = 930.0
PIPELINE_RATIO_TARGET = 0.25
FEED_P99_TARGET_MS = 100.0


@dataclass
class BenchConfig:
    records: int = 60_000
    drones: int = 1_860
    rate: float = 10 * NOMINAL_RECORDS_PER_S
    seconds: float = 15.0
    on_mission_fraction: float = 0.2
    # The faust agent is slow enough that a part of the records gives its rate.
    faust_records: int = 20_000
    brokers: str = "both"
    rounds: int = 3
    hop_samples: int = 100


@dataclass
class Figures:
    hop_ms: list[float] = field(default_factory=list)
    bare_rate: float = 0.0
    faust_rate: float = 0.0
    pipeline_rate: float = 0.0
    raw_ms: list[float] = field(default_factory=list)
    state_ms: list[float] = field(default_factory=list)
    feed_ms: list[float] = field(default_factory=list)
    produced_rate: float = 0.0
    # CPU of the worker's process (worker, its views and the bench loop) per handled record.
    backlog_cpu_us: float = 0.0
    live_cpu_us: float = 0.0
    handled_rate: float = 0.0
    # Where a tail latency can come from in the worker's process, during the live load:
    # event-loop stalls (a 5 ms sleep that wakes late) and garbage collections.
    loop_stall_ms: list[float] = field(default_factory=list)
    gc_pause_ms: list[float] = field(default_factory=list)
