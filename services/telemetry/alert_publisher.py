"""Alerts out: each anomaly transition as an alert on airgrid.alerts and copies on the feeds
of the departments its drone serves, sent until the broker acknowledges them, then counted and
saved for the worker that takes the drone over."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.bus import Producer
from airgrid.topics import ALERTS, feed_topic
from airgrid.v1 import alert_pb2, drone_state_pb2
from services.telemetry.alert_state import AlertStateRow, AlertStateWriter
from services.telemetry.domain.anomalies import AlertKind, Transition
from services.telemetry.feed_routing import FeedRouting, encode_item
from services.telemetry.metrics import ALERTS_DROPPED, ALERTS_RAISED, ALERTS_RESENT
from services.telemetry.pending_alerts import Outgoing, PendingAlert, PendingAlerts

log = logging.getLogger("airgrid.telemetry")

ALERT_EVENT = "airgrid.alert"
FEED_ALERT_EVENT = "airgrid.feed.alert"
_ALERT_KINDS = {
    AlertKind.LOW_BATTERY: alert_pb2.ALERT_KIND_LOW_BATTERY,
    AlertKind.LINK_LOST: alert_pb2.ALERT_KIND_LINK_LOST,
    AlertKind.GEOFENCE_BREACH: alert_pb2.ALERT_KIND_GEOFENCE_BREACH,
    AlertKind.OFF_ROUTE: alert_pb2.ALERT_KIND_OFF_ROUTE,
}
_SEVERITY = {
    AlertKind.LOW_BATTERY: alert_pb2.SEVERITY_WARNING,
    AlertKind.LINK_LOST: alert_pb2.SEVERITY_CRITICAL,
    AlertKind.GEOFENCE_BREACH: alert_pb2.SEVERITY_CRITICAL,
    AlertKind.OFF_ROUTE: alert_pb2.SEVERITY_WARNING,
}


class AlertPublisher:
    """Alerts wait here until the broker acknowledged them (sent again after a failure);
    acknowledged ones are saved for the worker that takes their drone over."""

    def __init__(
        self,
        *,
        producer: Producer,
        engine: AsyncEngine,
        routing: FeedRouting,
        clock: Callable[[], int],
    ) -> None:
        self.producer = producer
        self.routing = routing
        self.clock = clock
        self._pending = PendingAlerts()
        self._saved = AlertStateWriter(engine)

    @property
    def pending(self) -> int:
        """Alerts decided but not yet acknowledged by the broker."""
        return len(self._pending)

    async def drain_saved(self) -> None:
        """Waits until every acknowledged alert's state is in the database."""
        await self._saved.drain()

    def queue(self, transition: Transition, state: drone_state_pb2.DroneState | None) -> None:
        """Builds the alert and its feed copies once (one id for every attempt) and queues
        them; `send_due` sends them until the broker acknowledges. `state`: the drone's latest
        state, whose mission names the feeds that get a copy."""
        alert_id = uuid.uuid4().hex
        alert = alert_pb2.Alert(
            alert_id=alert_id,
            kind=_ALERT_KINDS[transition.kind],
            severity=_SEVERITY[transition.kind] if transition.active else alert_pb2.SEVERITY_INFO,
            subject_id=transition.subject_id or transition.drone_id,
            drone_id=transition.drone_id,
            message=transition.message,
            event_time_ms=transition.event_time_ms,
            active=transition.active,
            lon=transition.lon,
            lat=transition.lat,
        )
        log.info(
            "alert",
            extra={
                "kind": transition.kind.value,
                "drone_id": transition.drone_id,
                "active": transition.active,
                "detail": transition.message,
            },
        )
        records = [Outgoing(ALERTS, alert.SerializeToString(), ALERT_EVENT)]
        departments = self.routing.departments_of(state.mission_id) if state is not None else ()
        if departments:
            item = encode_item(
                f"alert.{transition.kind.value}",
                {
                    "alert_id": alert_id,
                    "drone_id": transition.drone_id,
                    "subject_id": alert.subject_id,
                    "active": transition.active,
                    "message": transition.message,
                    "lon": transition.lon,
                    "lat": transition.lat,
                    "event_time_ms": transition.event_time_ms,
                },
            )
            records += [Outgoing(feed_topic(code), item, FEED_ALERT_EVENT) for code in departments]
        pending = PendingAlert(
            alert_id,
            transition.drone_id,
            transition.kind.value,
            transition.subject_id if transition.kind is AlertKind.GEOFENCE_BREACH else "",
            transition.active,
            transition.event_time_ms,
            records,
        )
        for dropped in self._pending.add(pending):
            ALERTS_DROPPED.inc()
            log.error(
                "unacknowledged alert dropped: too many waiting",
                extra={"alert_id": dropped.alert_id, "drone_id": dropped.drone_id},
            )

    async def send_due(self) -> None:
        """Sends every due alert (new, or whose send failed), each record with the alert's id
        as ce_id. An alert is done only once the broker acknowledged all its records; then it
        is counted and its state saved. Never raises: a failure leaves the alert due."""
        due = self._pending.due(self.clock())
        for position, alert in enumerate(due):
            if alert.attempts > 1:
                ALERTS_RESENT.inc()
                log.info(
                    "alert sent again",
                    extra={"alert_id": alert.alert_id, "attempt": alert.attempts},
                )
            futures: list[asyncio.Future[Any]] = []
            try:
                for record in alert.records:
                    futures.append(
                        await self.producer.send(
                            record.topic,
                            record.value,
                            key=alert.drone_id,
                            ce_type=record.ce_type,
                            ce_id=alert.alert_id,
                        )
                    )
            except Exception as error:  # not even queued (no metadata, producer closed)
                for future in futures:
                    future.add_done_callback(_retrieve)
                self._pending.failed(alert.alert_id)
                log.warning(
                    "alert not sent; will retry",
                    extra={"alert_id": alert.alert_id, "error": repr(error)},
                )
                # The producer could not even queue it (each such try can wait for the
                # request timeout): the rest waits for the next round.
                for later in due[position + 1 :]:
                    self._pending.not_sent(later.alert_id)
                return
            sent = asyncio.gather(*futures)
            sent.add_done_callback(functools.partial(self._sent, alert))

    def _sent(self, alert: PendingAlert, sent: asyncio.Future[Any]) -> None:
        error = None if sent.cancelled() else sent.exception()
        if sent.cancelled() or error is not None:
            self._pending.failed(alert.alert_id)
            log.warning(
                "alert not acknowledged; will retry",
                extra={"alert_id": alert.alert_id, "error": repr(error)},
            )
            return
        if self._pending.acknowledged(alert.alert_id) is None:
            return
        ALERTS_RAISED.labels(alert.kind, str(alert.active).lower()).inc()
        self._saved.add(
            AlertStateRow(
                alert.drone_id,
                alert.kind,
                alert.subject_id,
                alert.active,
                alert.alert_id,
                alert.event_time_ms,
            )
        )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
