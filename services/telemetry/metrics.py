"""Telemetry metrics beyond the stream's own counters: SSE clients, and every bounded label
set initialised at start-up so dashboards and alerts see zeros rather than missing series."""

from __future__ import annotations

from prometheus_client import Gauge

from airgrid.topics import DEPARTMENT_CODES
from services.telemetry.domain.anomalies import AlertKind
from services.telemetry.domain.validation import Reason

SSE_CLIENTS = Gauge(
    "airgrid_feed_sse_clients",
    "Server-Sent Events clients connected to a department feed, by department.",
    ["department"],
)


def initialise_labels() -> None:
    """Create every bounded label combination with a zero value."""
    # Imported here: the stream and the feed hub import this module for their gauges.
    from services.telemetry.feeds import SSE_DROPPED
    from services.telemetry.stream import ALERTS_RAISED, REJECTED

    for reason in Reason:
        REJECTED.labels(reason.value)
    for kind in AlertKind:
        for active in ("true", "false"):
            ALERTS_RAISED.labels(kind.value, active)
    for department in DEPARTMENT_CODES:
        SSE_CLIENTS.labels(department)
    SSE_DROPPED.inc(0)
