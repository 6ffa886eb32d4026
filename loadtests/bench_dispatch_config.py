"""What one run of the dispatch benchmark measures: rates, fleet sizes, durations, the brokers
compared and the rounds; `airgrid bench dispatch` fills it from its options."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BenchConfig:
    rates: tuple[float, ...] = (10.0, 100.0, 1000.0)
    fleets: tuple[int, ...] = (186, 10_000)
    seconds: float = 3.0
    min_samples: int = 30
    queries: int = 300
    posts: int = 60
    post_rate: float = 10.0
    seed: int = 7
    redis_url: str = "redis://127.0.0.1:6379/0"
    brokers: str = "both"
    rounds: int = 3
    polling_posts: int = 20
