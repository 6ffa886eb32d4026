"""Detection ingest: a gateway's batch, each detection validated at once against the registry
view (drones, scenario catalogue), the zone and the live drone states, then produced to
airgrid.detections, or to airgrid.detections.dlq with its reason.

Refused whole (nothing produced): a batch over MAX_BATCH_DETECTIONS, a gateway bound to no
nest, or one naming a drone it may not report (telemetry's scope rule)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from airgrid.auth import Principal
from airgrid.bus import REASON_HEADER, Producer, TopicView
from airgrid.geo import Ring
from airgrid.problems import Problem
from airgrid.topics import DETECTIONS, DETECTIONS_DLQ
from airgrid.v1 import drone_state_pb2, inspection_pb2
from services.telemetry.detection_schemas import MAX_BATCH_DETECTIONS
from services.telemetry.domain.detections import (
    DetectionRejection,
    DroneFlight,
    validate_detection,
)
from services.telemetry.domain.state import AIRBORNE_MODES
from services.telemetry.gateway_scope import check_gateway_scope
from services.telemetry.metrics import DETECTIONS_ACCEPTED, DETECTIONS_REJECTED
from services.telemetry.topic_views import is_drone

log = logging.getLogger("airgrid.telemetry")

DETECTION_EVENT = "airgrid.detection"
REJECTED_EVENT = "airgrid.detection.rejected"
SCENARIO_PREFIX = "scenario:"


@dataclass(frozen=True)
class Rejected:
    index: int
    detection: inspection_pb2.Detection
    rejection: DetectionRejection


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[Rejected]


def scenario_codes(registry: TopicView) -> set[str]:
    """The scenario catalogue as the registry view holds it (keys "scenario:<code>")."""
    codes = set()
    for key, change in list(registry.items.items()):
        if not key.startswith(SCENARIO_PREFIX) or change is None or change.deleted:
            continue
        if change.HasField("scenario"):
            codes.add(change.scenario.code)
    return codes


def flight_of(state: drone_state_pb2.DroneState | None) -> DroneFlight | None:
    """What the live state says of a drone's flight: airborne at its latest fix, or not. The
    state keeps only the latest fix, so a drone that has landed counts as airborne last at no
    known time (a sighting is judged by the fix it was made under)."""
    if state is None:
        return None
    airborne = state.flight_mode in AIRBORNE_MODES
    return DroneFlight(state.flight_mode, state.event_time_ms if airborne else None)


async def ingest_detections(
    principal: Principal,
    detections: Sequence[inspection_pb2.Detection],
    *,
    producer: Producer,
    registry: TopicView,
    states: TopicView,
    boundary: Ring,
    now_ms: int,
) -> IngestResult:
    if len(detections) > MAX_BATCH_DETECTIONS:
        raise Problem(
            413,
            "Batch too large",
            f"{len(detections)} detections exceed {MAX_BATCH_DETECTIONS}; split the batch.",
            kind="batch-too-large",
        )
    check_gateway_scope(principal, detections, registry, states)
    known = {key for key, change in list(registry.items.items()) if is_drone(change)}
    scenarios = scenario_codes(registry)
    flights = {}
    for detection in detections:
        flight = flight_of(states.items.get(detection.drone_id))
        if flight is not None:
            flights[detection.drone_id] = flight
    accepted: list[inspection_pb2.Detection] = []
    rejected: list[Rejected] = []
    for index, detection in enumerate(detections):
        rejection = validate_detection(
            detection,
            known_drones=known,
            scenarios=scenarios,
            boundary=boundary,
            flights=flights,
            now_ms=now_ms,
        )
        if rejection is None:
            accepted.append(detection)
        else:
            rejected.append(Rejected(index, detection, rejection))
    await _produce(producer, accepted, rejected)
    DETECTIONS_ACCEPTED.inc(len(accepted))
    for item in rejected:
        DETECTIONS_REJECTED.labels(item.rejection.reason.value).inc()
    log.info(
        "detections ingested",
        extra={"accepted": len(accepted), "rejected": len(rejected), "caller": principal.caller},
    )
    return IngestResult(len(accepted), rejected)


async def _produce(
    producer: Producer, accepted: list[inspection_pb2.Detection], rejected: list[Rejected]
) -> None:
    try:
        futures = [
            await producer.send(
                DETECTIONS,
                detection.SerializeToString(),
                key=detection.drone_id,
                ce_type=DETECTION_EVENT,
                ce_id=detection.id,
            )
            for detection in accepted
        ]
        for item in rejected:
            futures.append(
                await producer.send(
                    DETECTIONS_DLQ,
                    item.detection.SerializeToString(),
                    key=item.detection.drone_id or None,
                    ce_type=REJECTED_EVENT,
                    extra_headers=[(REASON_HEADER, item.rejection.reason.value.encode())],
                )
            )
        await asyncio.gather(*futures)
    except KafkaError as error:
        log.warning("detection ingest failed", extra={"error": repr(error)})
        raise Problem(
            503,
            "Broker unavailable",
            "The detections could not be written to Kafka; retry the whole batch (repeats "
            "of a detection id are dropped).",
            kind="broker-unavailable",
            headers={"Retry-After": "2"},
        ) from error
