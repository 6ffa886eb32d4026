"""The drone-state fold: the previous state plus one accepted record gives the next state."""

from __future__ import annotations

from airgrid.v1 import drone_state_pb2, telemetry_pb2

# The flight modes in which a drone is off its dock.
AIRBORNE_MODES = frozenset(
    {
        telemetry_pb2.FLIGHT_MODE_TAKING_OFF,
        telemetry_pb2.FLIGHT_MODE_CRUISING,
        telemetry_pb2.FLIGHT_MODE_HOVERING,
        telemetry_pb2.FLIGHT_MODE_RETURNING,
        telemetry_pb2.FLIGHT_MODE_LANDING,
    }
)


def apply(
    previous: drone_state_pb2.DroneState | None,
    record: telemetry_pb2.Telemetry,
    applied_ms: int,
    *,
    skipped_nest_id: str = "",
) -> drone_state_pb2.DroneState:
    """The state after `record`, which validation already accepted, applied at `applied_ms`.

    Live state is conflated: when several accepted records of a drone arrive in one batch only
    the newest is folded, and `skipped_nest_id` is the newest non-empty nest_id among the
    accepted records it skips (so a nest reported in between is not lost)."""
    # An empty nest_id means "unknown", so the last known nest is kept; mission_id is
    # authoritative (empty means no mission) and is taken as reported.
    nest_id = (
        record.nest_id or skipped_nest_id or (previous.nest_id if previous is not None else "")
    )
    return drone_state_pb2.DroneState(
        drone_id=record.drone_id,
        last_seq=record.seq,
        event_time_ms=record.event_time_ms,
        applied_time_ms=applied_ms,
        lon=record.lon,
        lat=record.lat,
        alt_m=record.alt_m,
        ground_speed_mps=record.ground_speed_mps,
        heading_deg=record.heading_deg,
        battery_pct=record.battery_pct,
        flight_mode=record.flight_mode,
        nest_id=nest_id,
        mission_id=record.mission_id,
        wind_mps=record.wind_mps,
        faults=list(record.faults),
        link_ok=True,
    )
