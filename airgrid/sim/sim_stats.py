"""Live counters of one simulator run, which `airgrid up` shows."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class SimStats:
    """Live counters of one simulator run; `airgrid up` shows them."""

    incidents_posted: int = 0
    incidents_accepted: int = 0
    incidents_failed: int = 0
    telemetry_sent: int = 0
    telemetry_failed: int = 0
    detections_sent: int = 0  # taken by the API (to airgrid.detections)
    detections_rejected: int = 0  # taken, but to the DLQ with a reason
    detections_failed: int = 0  # not taken: no gateway key, refused or not reached
    commands_received: int = 0
    commands_applied: int = 0
    commands_ignored: int = 0
    airborne: int = 0
    drones: int = 0
    faults_injected: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    # Monotonic times of recent posts, for the incidents-per-minute throughput.
    recent_posts: deque[float] = field(default_factory=lambda: deque(maxlen=5000))
    loading: bool = True  # still posting incidents (False once the load duration is over)

    def posts_per_minute(self, window_s: float = 60.0) -> float:
        now = time.monotonic()
        return sum(1 for t in self.recent_posts if now - t <= window_s) * 60.0 / window_s
