"""Telemetry use cases: accept a batch of raw records (decide each: state, track or DLQ), take a
batch from a gateway onto the raw topic, and read live state and track history."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.auth import Principal
from airgrid.bus import Producer, TopicView
from airgrid.problems import Problem
from airgrid.topics import TELEMETRY_RAW
from airgrid.v1 import drone_state_pb2, telemetry_pb2
from services.telemetry.domain.validation import LastFix, Reason, Rejection, validate
from services.telemetry.gateway_scope import check_gateway_scope
from services.telemetry.schemas import (
    MAX_BATCH_RECORDS,
    DroneStateRead,
    FleetRead,
    TrackPointRead,
    TrackRead,
    flight_mode_name,
)
from services.telemetry.store import downsample, read_track

log = logging.getLogger("airgrid.telemetry")

RAW_EVENT = "airgrid.telemetry.recorded"
MAX_TRACK_ROWS = 100_000


# -- the stream: one batch of raw records ------------------------------------------------

# Rejected for live state but kept in the track: an out-of-order record is a real, late
# position; a duplicate may be the replay of a batch whose state was published but whose track
# write failed (the (drone_id, seq) key keeps a point that is already stored once).
TRACKED_REJECTIONS = frozenset({Reason.OUT_OF_ORDER, Reason.DUPLICATE})


@dataclass
class Rejected:
    """A raw record bound for the DLQ."""

    record: ConsumerRecord[bytes, bytes]
    drone_id: str | None
    rejection: Rejection


@dataclass
class BatchDecision:
    """What one batch decided, before anything is produced."""

    accepted: list[telemetry_pb2.Telemetry] = field(default_factory=list)
    track: list[telemetry_pb2.Telemetry] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # Per drone: the newest accepted record and its partition; the last accepted seq; the
    # newest non-empty nest_id of the accepted records the newest one supersedes.
    newest: dict[str, tuple[telemetry_pb2.Telemetry, int]] = field(default_factory=dict)
    last: dict[str, LastFix] = field(default_factory=dict)
    nests: dict[str, str] = field(default_factory=dict)
    redelivered: int = 0


def decide_record(
    record: ConsumerRecord[bytes, bytes],
    decided: BatchDecision,
    now: int,
    *,
    known_drones: Collection[str],
    previous: Callable[[str], drone_state_pb2.DroneState | None],
    max_speed_mps: Callable[[str], float],
) -> None:
    """Decodes and validates one raw record into `decided`: accepted (and tracked), or
    rejected with a reason. `previous` gives a drone's last applied state, when `decided`
    holds no record of it yet; `max_speed_mps` its registered top speed."""
    key = record.key.decode("utf-8", "replace") if record.key else None
    try:
        telemetry = telemetry_pb2.Telemetry.FromString(record.value or b"")
    except Exception as error:  # any undecodable payload is a poison record, never a crash
        decided.rejected.append(Rejected(record, key, Rejection(Reason.MALFORMED, str(error))))
        return
    drone_id = telemetry.drone_id
    if key is not None and drone_id != key:
        detail = f"record for {drone_id!r} was keyed {key!r}"
        decided.rejected.append(Rejected(record, key, Rejection(Reason.MALFORMED, detail)))
        return
    last = decided.last.get(drone_id)
    if last is None:
        before = previous(drone_id)
        if before is not None:
            last = LastFix(before.last_seq, before.event_time_ms, before.lon, before.lat)
    rejection = validate(
        telemetry,
        known_drones=known_drones,
        last=last,
        now_ms=now,
        max_speed_mps=max_speed_mps(drone_id),
    )
    if rejection is not None:
        decided.rejected.append(Rejected(record, drone_id or key, rejection))
        if rejection.reason in TRACKED_REJECTIONS:
            decided.track.append(telemetry)
        return
    decided.last[drone_id] = LastFix.of(telemetry)
    decided.accepted.append(telemetry)
    decided.track.append(telemetry)
    newest = decided.newest.get(drone_id)
    if newest is not None and newest[0].nest_id:
        decided.nests[drone_id] = newest[0].nest_id
    decided.newest[drone_id] = (telemetry, record.partition)


# -- the REST API: reads ------------------------------------------------------------------


def fleet_states(
    states: TopicView,
    *,
    heard_since_ms: int,
    status: str | None,
    box: tuple[float, float, float, float] | None,
) -> FleetRead:
    """The latest state of every drone in the view, filtered by flight mode and bounding box."""
    drones = []
    for state in list(states.items.values()):
        if status is not None and flight_mode_name(state.flight_mode) != status:
            continue
        if box is not None and not (
            box[0] <= state.lon <= box[2] and box[1] <= state.lat <= box[3]
        ):
            continue
        drones.append(DroneStateRead.of(state, heard_since_ms))
    drones.sort(key=lambda d: d.drone_id)
    return FleetRead(count=len(drones), drones=drones)


def drone_state(states: TopicView, drone_id: str, *, heard_since_ms: int) -> DroneStateRead:
    state = states.items.get(drone_id)
    if state is None:
        raise Problem(
            404,
            "Not found",
            f"No state for drone {drone_id!r}: it is unknown or has not reported yet.",
            kind="drone-state-not-found",
        )
    return DroneStateRead.of(state, heard_since_ms)


async def drone_track(
    engine: AsyncEngine, drone_id: str, *, since: datetime, until: datetime, max_points: int
) -> TrackRead:
    since_ms, until_ms = _epoch_ms(since), _epoch_ms(until)
    if until_ms <= since_ms:
        raise Problem(
            400,
            "Invalid time range",
            "until must be later than since.",
            kind="invalid-time-range",
        )
    points = await read_track(
        engine, drone_id=drone_id, since_ms=since_ms, until_ms=until_ms, limit=MAX_TRACK_ROWS
    )
    kept = downsample(points, max_points)
    return TrackRead(
        drone_id=drone_id,
        count=len(kept),
        downsampled_from=len(points),
        points=[TrackPointRead.of(p) for p in kept],
    )


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# -- the REST API: a gateway's batch onto the raw topic ------------------------------------


async def ingest_batch(
    principal: Principal,
    records: list[telemetry_pb2.Telemetry],
    *,
    producer: Producer,
    registry: TopicView,
    states: TopicView,
) -> int:
    """Writes a gateway's records to the raw topic, where the stream validates them; returns
    how many. Refused whole: a batch too large, or one naming a drone the gateway may not
    report."""
    if len(records) > MAX_BATCH_RECORDS:
        raise Problem(
            413,
            "Batch too large",
            f"{len(records)} records exceed {MAX_BATCH_RECORDS}; split the batch.",
            kind="batch-too-large",
        )
    check_gateway_scope(principal, records, registry, states)
    try:
        futures = [
            await producer.send(
                TELEMETRY_RAW,
                record.SerializeToString(),
                key=record.drone_id or None,
                ce_type=RAW_EVENT,
            )
            for record in records
        ]
        await asyncio.gather(*futures)
    except KafkaError as error:
        log.warning("telemetry ingest failed", extra={"error": repr(error)})
        raise Problem(
            503,
            "Broker unavailable",
            "The records could not be written to Kafka; retry the whole batch.",
            kind="broker-unavailable",
            headers={"Retry-After": "2"},
        ) from error
    log.info("telemetry ingested", extra={"records": len(records), "caller": principal.caller})
    return len(records)
