"""Watches `airgrid.alerts` through the whole fault run and keeps every alert it saw.

The embedded broker loses its data when it is replaced, so the alerts of the first broker
can only be seen while it lives: the watcher reads continuously from the beginning, and after
the broker is replaced (`reconnect`) it reads the new broker's topic from the beginning too.
Alerts are unique by alert_id, so reading a record twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from airgrid.bus import client_options, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.topics import ALERTS
from airgrid.v1 import alert_pb2
from loadtests.chaos.alert_rule import ObservedAlert

log = logging.getLogger("airgrid.chaos")

KIND_NAMES = {
    alert_pb2.ALERT_KIND_LOW_BATTERY: "low_battery",
    alert_pb2.ALERT_KIND_LINK_LOST: "link_lost",
    alert_pb2.ALERT_KIND_GEOFENCE_BREACH: "geofence_breach",
    alert_pb2.ALERT_KIND_OFF_ROUTE: "off_route",
    alert_pb2.ALERT_KIND_SLA_AT_RISK: "sla_at_risk",
    alert_pb2.ALERT_KIND_SLA_BREACHED: "sla_breached",
    alert_pb2.ALERT_KIND_RELAY_AT_RISK: "relay_at_risk",
}


class AlertWatch:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.alerts: dict[str, ObservedAlert] = {}
        # New alerts seen per broker: index 0 the first one, 1 its replacement.
        self.per_broker: list[int] = [0]
        self._topic = topic_name(settings, ALERTS)
        self._restart = asyncio.Event()

    def reconnect(self) -> None:
        """The broker was replaced: read its topic from the beginning."""
        self.per_broker.append(0)
        self._restart.set()

    async def run(self) -> None:
        while True:
            self._restart.clear()
            consumer = AIOKafkaConsumer(
                **client_options(self.settings),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await asyncio.wait_for(consumer.start(), timeout=10)
                tps = await topic_partitions(consumer, self._topic)
                if not tps:
                    await asyncio.sleep(1.0)
                    continue
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                while not self._restart.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                    for records in batches.values():
                        for record in records:
                            self._keep(record.value)
            except (KafkaError, OSError, TimeoutError) as error:
                log.debug("alert watch reconnecting", extra={"error": repr(error)})
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), timeout=10)

    def _keep(self, value: bytes | None) -> None:
        if not value:
            return
        try:
            alert = alert_pb2.Alert.FromString(value)
        except Exception:
            return
        if alert.alert_id in self.alerts:
            return
        self.per_broker[-1] += 1
        self.alerts[alert.alert_id] = ObservedAlert(
            alert.alert_id,
            alert.drone_id,
            KIND_NAMES.get(alert.kind, "other"),
            alert.active,
            alert.event_time_ms,
        )
