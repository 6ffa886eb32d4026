"""Alerts decided but not yet acknowledged by the broker, sent again until they are.

An alert transition changes the detector's flags when it is decided (hysteresis needs that),
so a produce that fails must not lose it: every alert waits here, with its id fixed once,
until the broker acknowledged all of its records (acks=all). A failed send goes back to the
queue and is sent again, with the same id (`alert_id` and `ce_id`), so a consumer that saw
an earlier attempt drops the copy. Alerts of one subject (drone, kind, zone) leave in the
order they were decided: a later one waits while an earlier one is unacknowledged.
Pure bookkeeping: the caller sends and reports the outcome.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from airgrid.topics import Topic

# Beyond this many waiting alerts (a long broker outage with many drones) the oldest goes.
MAX_PENDING_ALERTS = 10_000
# An attempt neither acknowledged nor failed after this long is tried again (a send to a
# broker replaced meanwhile can stay unanswered; the producer's own timeout is 15 s).
ACK_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Outgoing:
    """One record of an alert: the alert itself or its copy on a department feed."""

    topic: Topic
    value: bytes
    ce_type: str


@dataclass
class PendingAlert:
    alert_id: str
    drone_id: str
    kind: str
    subject_id: str
    active: bool
    event_time_ms: int
    records: Sequence[Outgoing]
    attempts: int = 0
    in_flight: bool = False
    sent_at_ms: int = 0

    @property
    def subject(self) -> tuple[str, str, str]:
        """The order key: alerts of one subject leave in the order they were decided."""
        return (self.drone_id, self.kind, self.subject_id)


class PendingAlerts:
    def __init__(
        self, capacity: int = MAX_PENDING_ALERTS, ack_timeout_ms: int = ACK_TIMEOUT_MS
    ) -> None:
        self.capacity = capacity
        self.ack_timeout_ms = ack_timeout_ms
        self._waiting: OrderedDict[str, PendingAlert] = OrderedDict()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, alert: PendingAlert) -> list[PendingAlert]:
        """Queues `alert`; returns the alerts dropped to stay within the capacity."""
        self._waiting[alert.alert_id] = alert
        dropped = []
        while len(self._waiting) > self.capacity:
            _, oldest = self._waiting.popitem(last=False)
            dropped.append(oldest)
        self.dropped += len(dropped)
        return dropped

    def due(self, now_ms: int) -> list[PendingAlert]:
        """The alerts to send now, marked in flight: not in flight already (or unanswered for
        longer than the ack timeout), and no earlier alert of the same subject still
        unacknowledged."""
        blocked: set[tuple[str, str, str]] = set()
        out = []
        for alert in self._waiting.values():
            if alert.subject in blocked:
                continue
            blocked.add(alert.subject)
            if alert.in_flight and now_ms - alert.sent_at_ms < self.ack_timeout_ms:
                continue
            alert.in_flight = True
            alert.attempts += 1
            alert.sent_at_ms = now_ms
            out.append(alert)
        return out

    def acknowledged(self, alert_id: str) -> PendingAlert | None:
        """Every record of the alert was acknowledged: it is done."""
        return self._waiting.pop(alert_id, None)

    def failed(self, alert_id: str) -> None:
        """A send failed: the alert is due again."""
        alert = self._waiting.get(alert_id)
        if alert is not None:
            alert.in_flight = False

    def not_sent(self, alert_id: str) -> None:
        """The alert was handed out by `due` but not tried: due again, no attempt counted."""
        alert = self._waiting.get(alert_id)
        if alert is not None and alert.in_flight:
            alert.in_flight = False
            alert.attempts -= 1
