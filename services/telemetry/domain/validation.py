"""Telemetry validation: decides whether a raw record may update a drone's state, and why not."""

from __future__ import annotations

import enum
import math
from collections.abc import Container
from dataclasses import dataclass

from airgrid.geo import haversine_m
from airgrid.v1 import telemetry_pb2

MAX_FUTURE_SKEW_MS = 5_000
# Gateways replay buffered records after a link outage; older than this is no longer "live".
MAX_AGE_MS = 3_600_000
MIN_ALT_M = -100.0
MAX_ALT_M = 10_000.0
MAX_SPEED_MPS = 100.0
# A move between two fixes is plausible up to the drone model's top speed times this margin
# (tailwind, fix timing) plus POSITION_SLACK_M of satellite-fix noise.
SPEED_MARGIN = 2.0
POSITION_SLACK_M = 200.0
# The jump check compares with a fix at most this old; past it a new position is taken, so a
# wrong fix that got in cannot refuse every true one after it for longer.
JUMP_CHECK_WINDOW_MS = 60_000

_FLIGHT_MODES = frozenset(telemetry_pb2.FlightMode.values())
_FLOAT_FIELDS = (
    "lon",
    "lat",
    "alt_m",
    "ground_speed_mps",
    "vertical_speed_mps",
    "heading_deg",
    "battery_pct",
    "wind_mps",
)


class Reason(enum.StrEnum):
    """The reason code carried in the DLQ's airgrid_reason header and the metrics label."""

    MALFORMED = "malformed"
    UNKNOWN_DRONE = "unknown_drone"
    OUT_OF_RANGE = "out_of_range"
    FUTURE = "future"
    TOO_OLD = "too_old"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    IMPLAUSIBLE_MOVE = "implausible_move"


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    detail: str


@dataclass(frozen=True)
class LastFix:
    """A drone's latest accepted record: what the next one is ordered and checked against."""

    seq: int
    event_time_ms: int
    lon: float
    lat: float

    @classmethod
    def of(cls, record: telemetry_pb2.Telemetry) -> LastFix:
        return cls(record.seq, record.event_time_ms, record.lon, record.lat)


def validate(
    record: telemetry_pb2.Telemetry,
    *,
    known_drones: Container[str],
    last: LastFix | None,
    now_ms: int,
    max_speed_mps: float = MAX_SPEED_MPS,
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS,
    max_age_ms: int = MAX_AGE_MS,
) -> Rejection | None:
    """None when the record is acceptable; otherwise the first rule it breaks.

    Event time orders a drone's records: a newer one is taken whatever its seq (a gateway that
    restarted counts from 0 again, and one absurd seq must not block every true record after
    it); seq orders records of the same event time and tells a duplicate. A newer record whose
    position the drone could not have reached from the last fix (max_speed_mps, with margin)
    is refused.

    `malformed` is never returned here: a record that does not decode is the caller's call.
    """
    if not record.drone_id or record.drone_id not in known_drones:
        return Rejection(Reason.UNKNOWN_DRONE, f"drone {record.drone_id!r} is not registered")
    out_of_range = _out_of_range(record)
    if out_of_range is not None:
        return Rejection(Reason.OUT_OF_RANGE, out_of_range)
    if record.event_time_ms > now_ms + max_future_skew_ms:
        ahead = record.event_time_ms - now_ms
        return Rejection(Reason.FUTURE, f"event time is {ahead} ms in the future")
    if record.event_time_ms < now_ms - max_age_ms:
        age = now_ms - record.event_time_ms
        return Rejection(Reason.TOO_OLD, f"event time is {age} ms old")
    if last is None:
        return None
    if record.event_time_ms <= last.event_time_ms:
        if record.seq == last.seq:
            return Rejection(Reason.DUPLICATE, f"seq {record.seq} was already applied")
        if record.event_time_ms < last.event_time_ms:
            behind = last.event_time_ms - record.event_time_ms
            return Rejection(Reason.OUT_OF_ORDER, f"event time is {behind} ms behind the state")
        if record.seq < last.seq:
            return Rejection(Reason.OUT_OF_ORDER, f"seq {record.seq} is behind {last.seq}")
    return _implausible_move(record, last, max_speed_mps)


def _implausible_move(
    record: telemetry_pb2.Telemetry, last: LastFix, max_speed_mps: float
) -> Rejection | None:
    elapsed_ms = record.event_time_ms - last.event_time_ms
    if elapsed_ms > JUMP_CHECK_WINDOW_MS:
        return None
    moved_m = haversine_m(last.lon, last.lat, record.lon, record.lat)
    reach_m = max_speed_mps * SPEED_MARGIN * max(elapsed_ms, 0) / 1000 + POSITION_SLACK_M
    if moved_m <= reach_m:
        return None
    return Rejection(
        Reason.IMPLAUSIBLE_MOVE,
        f"moved {moved_m:.0f} m in {elapsed_ms} ms since the last fix; the drone flies at most "
        f"{max_speed_mps:.0f} m/s (allowed with margin: {reach_m:.0f} m)",
    )


def _out_of_range(record: telemetry_pb2.Telemetry) -> str | None:
    # The common, valid record passes one chain of comparisons (NaN and infinities fail every
    # range comparison); only a record that fails it is walked field by field for the reason.
    if (
        -180.0 <= record.lon <= 180.0
        and -90.0 <= record.lat <= 90.0
        and MIN_ALT_M <= record.alt_m <= MAX_ALT_M
        and 0.0 <= record.battery_pct <= 100.0
        and 0.0 <= record.ground_speed_mps <= MAX_SPEED_MPS
        and 0.0 <= record.heading_deg < 360.0
        and math.isfinite(record.vertical_speed_mps)
        and math.isfinite(record.wind_mps)
        and record.flight_mode in _FLIGHT_MODES
    ):
        return None
    for name in _FLOAT_FIELDS:
        if not math.isfinite(getattr(record, name)):
            return f"{name} is not a finite number"
    if not (-180.0 <= record.lon <= 180.0 and -90.0 <= record.lat <= 90.0):
        return f"position ({record.lon}, {record.lat}) is not a valid lon/lat"
    if not MIN_ALT_M <= record.alt_m <= MAX_ALT_M:
        return f"alt_m {record.alt_m} is outside {MIN_ALT_M}..{MAX_ALT_M}"
    if not 0.0 <= record.battery_pct <= 100.0:
        return f"battery_pct {record.battery_pct} is outside 0..100"
    if not 0.0 <= record.ground_speed_mps <= MAX_SPEED_MPS:
        return f"ground_speed_mps {record.ground_speed_mps} is outside 0..{MAX_SPEED_MPS}"
    if not 0.0 <= record.heading_deg < 360.0:
        return f"heading_deg {record.heading_deg} is outside [0, 360)"
    if record.flight_mode not in _FLIGHT_MODES:
        return f"flight_mode {record.flight_mode} is not a known mode"
    return None
