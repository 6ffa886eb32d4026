"""What an acknowledged telemetry batch counts: records accepted, rejections by reason (each
logged), and the time from a record's event to its state acknowledged."""

from __future__ import annotations

import logging

from airgrid.observability import RECORDS_CONSUMED
from airgrid.v1 import drone_state_pb2
from services.telemetry.metrics import RECORD_TO_STATE_SECONDS, RECORDS, REJECTED
from services.telemetry.offset_committer import CONSUMER
from services.telemetry.service import Rejected

log = logging.getLogger("airgrid.telemetry")


def account_batch(
    accepted: int,
    states: dict[str, drone_state_pb2.DroneState],
    rejected: list[Rejected],
    *,
    acked_ms: int,
) -> None:
    """Counts and logs a batch the broker acknowledged (`acked_ms`: when)."""
    acked = acked_ms
    for state in states.values():
        RECORD_TO_STATE_SECONDS.observe(max((acked - state.event_time_ms) / 1000, 0.0))
    for rejection in rejected:
        reason = rejection.rejection.reason
        REJECTED.labels(reason.value).inc()
        RECORDS_CONSUMED.labels(CONSUMER, "rejected").inc()
        log.info(
            "telemetry rejected",
            extra={
                "drone_id": rejection.drone_id,
                "reason": reason.value,
                "detail": rejection.rejection.detail,
                "partition": rejection.record.partition,
                "offset": rejection.record.offset,
            },
        )
    if accepted:
        RECORDS.inc(accepted)
        RECORDS_CONSUMED.labels(CONSUMER, "accepted").inc(accepted)
