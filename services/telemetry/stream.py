"""Telemetry worker: raw records from Kafka, validated, to drone state or to the DLQ."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from prometheus_client import Counter, Histogram

from airgrid.bus import (
    REASON_HEADER,
    ConsumerSpec,
    Producer,
    SeenIds,
    TopicView,
    header,
    now_ms,
    run_batches,
    start_group_consumer,
)
from airgrid.config import Settings
from airgrid.observability import RECORDS_CONSUMED
from airgrid.topics import DRONE_STATE, REGISTRY_CHANGES, TELEMETRY_DLQ, TELEMETRY_RAW
from airgrid.v1 import drone_state_pb2, registry_pb2, telemetry_pb2
from services.telemetry.domain import state as drone_state
from services.telemetry.domain.validation import Reason, Rejection, validate

log = logging.getLogger("airgrid.telemetry")

CONSUMER = "airgrid-telemetry"
STATE_EVENT = "airgrid.drone.state"
REJECTED_EVENT = "airgrid.telemetry.rejected"

RECORDS = Counter("airgrid_telemetry_records_total", "Telemetry records accepted into state.")
REJECTED = Counter(
    "airgrid_telemetry_rejected_total", "Telemetry records sent to the DLQ, by reason.", ["reason"]
)
RECORD_TO_STATE_SECONDS = Histogram(
    "airgrid_telemetry_record_to_state_seconds",
    "From a record's event time to its drone state acknowledged by the broker.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RegisteredDrones:
    """The drone ids the registry currently knows, read through the registry-changes view."""

    def __init__(self, view: TopicView) -> None:
        self.view = view

    def __contains__(self, drone_id: object) -> bool:
        change = self.view.items.get(drone_id) if isinstance(drone_id, str) else None
        return change is not None and change.HasField("drone") and not change.deleted


def registry_view(
    settings: Settings, on_update: Callable[[str, Any], None] | None = None
) -> TopicView:
    decode = registry_pb2.RegistryChange.FromString
    return TopicView(settings, REGISTRY_CHANGES, decode, on_update=on_update)


def state_view(settings: Settings) -> TopicView:
    return TopicView(settings, DRONE_STATE, drone_state_pb2.DroneState.FromString)


@dataclass
class _Outcome:
    """What the batch decided for one raw record, before anything is produced."""

    record: ConsumerRecord[bytes, bytes]
    drone_id: str | None
    state: drone_state_pb2.DroneState | None = None
    rejection: Rejection | None = None


class TelemetryWorker:
    """Consumes TELEMETRY_RAW in the `airgrid-telemetry` group, at least once.

    The last applied seq per drone lives in memory, seeded from (and kept at least as high as)
    the DRONE_STATE view, so a restart or a rebalance picks up where the topic says.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        producer: Producer,
        registry: TopicView,
        states: TopicView,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.registry = registry
        self.states = states
        self.drones = RegisteredDrones(registry)
        self.clock = clock
        self.spec = ConsumerSpec(topics=[TELEMETRY_RAW], group_id=CONSUMER)
        self._latest: dict[str, drone_state_pb2.DroneState] = {}
        self._seen = SeenIds()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        await self.registry.caught_up.wait()
        await self.states.caught_up.wait()
        log.info("telemetry worker starting", extra={"drones_with_state": len(self.states.items)})
        consumer = await start_group_consumer(self.settings, self.spec)
        try:
            await run_batches(consumer, self.handle, spec=self.spec, name=CONSUMER, stop=stop)
        finally:
            await consumer.stop()

    def _previous(self, drone_id: str) -> drone_state_pb2.DroneState | None:
        mine = self._latest.get(drone_id)
        topic = self.states.items.get(drone_id)
        if mine is None or (topic is not None and topic.last_seq > mine.last_seq):
            return topic
        return mine

    async def handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        # A drone lives on one partition: its records are processed in offset order.
        ordered = sorted(records, key=lambda r: (r.partition, r.offset))
        now = self.clock()
        batch_ids: list[str] = []
        pending: dict[str, drone_state_pb2.DroneState] = {}
        outcomes: list[_Outcome] = []
        for record in ordered:
            ce_id = header(record, "ce_id")
            if ce_id:
                if self._seen.contains(ce_id):
                    RECORDS_CONSUMED.labels(CONSUMER, "redelivered").inc()
                    continue
                batch_ids.append(ce_id)
            outcome = self._decide(record, pending, now)
            if outcome.state is not None:
                pending[outcome.state.drone_id] = outcome.state
            outcomes.append(outcome)
        await self._publish(outcomes)
        for ce_id in batch_ids:
            self._seen.remember(ce_id)
        self._latest.update(pending)

    def _decide(
        self,
        record: ConsumerRecord[bytes, bytes],
        pending: dict[str, drone_state_pb2.DroneState],
        now: int,
    ) -> _Outcome:
        key = record.key.decode("utf-8", "replace") if record.key else None
        try:
            telemetry = telemetry_pb2.Telemetry.FromString(record.value or b"")
        except Exception as error:  # any undecodable payload is a poison record, never a crash
            return _Outcome(record, key, rejection=Rejection(Reason.MALFORMED, str(error)))
        if key is not None and telemetry.drone_id != key:
            detail = f"record for {telemetry.drone_id!r} was keyed {key!r}"
            return _Outcome(record, key, rejection=Rejection(Reason.MALFORMED, detail))
        drone_id = telemetry.drone_id or key
        previous = pending.get(telemetry.drone_id)
        if previous is None:
            previous = self._previous(telemetry.drone_id)
        rejection = validate(
            telemetry,
            known_drones=self.drones,
            last_seq=previous.last_seq if previous is not None else None,
            now_ms=now,
        )
        if rejection is not None:
            return _Outcome(record, drone_id, rejection=rejection)
        return _Outcome(record, drone_id, state=drone_state.apply(previous, telemetry, now))

    async def _publish(self, outcomes: list[_Outcome]) -> None:
        futures: list[asyncio.Future[Any]] = []
        for outcome in outcomes:
            if outcome.state is not None:
                future = await self.producer.send(
                    DRONE_STATE,
                    outcome.state.SerializeToString(),
                    key=outcome.state.drone_id,
                    ce_type=STATE_EVENT,
                )
            else:
                assert outcome.rejection is not None
                future = await self.producer.send(
                    TELEMETRY_DLQ,
                    outcome.record.value or b"",
                    key=outcome.drone_id,
                    ce_type=REJECTED_EVENT,
                    extra_headers=[(REASON_HEADER, outcome.rejection.reason.encode())],
                )
            futures.append(future)
        await asyncio.gather(*futures)
        acked = self.clock()
        for outcome in outcomes:
            if outcome.state is not None:
                RECORDS.inc()
                RECORDS_CONSUMED.labels(CONSUMER, "accepted").inc()
                lag_s = (acked - outcome.state.event_time_ms) / 1000
                RECORD_TO_STATE_SECONDS.observe(max(lag_s, 0.0))
            elif outcome.rejection is not None:
                reason = outcome.rejection.reason
                REJECTED.labels(reason.value).inc()
                RECORDS_CONSUMED.labels(CONSUMER, "rejected").inc()
                log.info(
                    "telemetry rejected",
                    extra={
                        "drone_id": outcome.drone_id,
                        "reason": reason.value,
                        "detail": outcome.rejection.detail,
                        "partition": outcome.record.partition,
                        "offset": outcome.record.offset,
                    },
                )
