"""Telemetry HTTP shapes: the ingest batch it takes, the drone states and tracks it answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from airgrid.v1 import drone_state_pb2, telemetry_pb2
from services.telemetry.store import TrackPoint

MAX_BATCH_RECORDS = 10_000
_MODE_PREFIX = "FLIGHT_MODE_"

FlightModeName = Literal[
    "unspecified", "docked", "taking_off", "cruising", "hovering", "returning", "landing"
]


def flight_mode_name(value: int) -> str:
    try:
        name = str(telemetry_pb2.FlightMode.Name(value))
    except ValueError:
        return "unspecified"
    return name.removeprefix(_MODE_PREFIX).lower()


class TelemetryIn(BaseModel):
    """One record as a gateway sends it in JSON; ranges are checked by the stream, not here.
    Strict: a number field takes a number, never `false` or "1"."""

    model_config = ConfigDict(strict=True)

    drone_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, lt=2**64)
    event_time_ms: int = Field(
        ge=-(2**63), lt=2**63, description="Milliseconds since the Unix epoch (UTC)."
    )
    lon: float
    lat: float
    alt_m: float = 0.0
    ground_speed_mps: float = 0.0
    vertical_speed_mps: float = 0.0
    heading_deg: float = 0.0
    battery_pct: float
    flight_mode: FlightModeName = "unspecified"
    nest_id: str = ""
    mission_id: str = ""
    wind_mps: float = 0.0
    faults: list[str] = Field(default_factory=list)

    def to_proto(self) -> telemetry_pb2.Telemetry:
        fields = self.model_dump()
        fields["flight_mode"] = telemetry_pb2.FlightMode.Value(
            _MODE_PREFIX + self.flight_mode.upper()
        )
        return telemetry_pb2.Telemetry(**fields)


class TelemetryBatchIn(BaseModel):
    records: list[TelemetryIn]


# TelemetryIn has no nested models, so its schema inlines without dangling $refs.
BATCH_JSON_SCHEMA = {
    "type": "object",
    "required": ["records"],
    "properties": {
        "records": {
            "type": "array",
            "maxItems": MAX_BATCH_RECORDS,
            "items": TelemetryIn.model_json_schema(),
        }
    },
}


class IngestAccepted(BaseModel):
    accepted: int


class DroneStateRead(BaseModel):
    drone_id: str
    lon: float
    lat: float
    alt_m: float
    battery_pct: float
    flight_mode: str
    mission_id: str
    nest_id: str
    ground_speed_mps: float
    heading_deg: float
    last_seq: int
    event_time: datetime
    link_ok: bool = Field(
        description="An accepted record arrived within the link-lost period (refused records "
        "never count)."
    )

    @classmethod
    def of(cls, state: drone_state_pb2.DroneState, heard_since_ms: int) -> DroneStateRead:
        """heard_since_ms: the link counts as alive when the state's record is this new."""
        return cls(
            drone_id=state.drone_id,
            lon=state.lon,
            lat=state.lat,
            alt_m=state.alt_m,
            battery_pct=state.battery_pct,
            flight_mode=flight_mode_name(state.flight_mode),
            mission_id=state.mission_id,
            nest_id=state.nest_id,
            ground_speed_mps=state.ground_speed_mps,
            heading_deg=state.heading_deg,
            last_seq=state.last_seq,
            event_time=datetime.fromtimestamp(state.event_time_ms / 1000, UTC),
            link_ok=state.link_ok and state.event_time_ms >= heard_since_ms,
        )


class FleetRead(BaseModel):
    count: int
    drones: list[DroneStateRead]


class TrackPointRead(BaseModel):
    seq: int
    event_time: datetime
    lon: float
    lat: float
    alt_m: float
    ground_speed_mps: float
    heading_deg: float
    battery_pct: float
    flight_mode: str
    mission_id: str

    @classmethod
    def of(cls, point: TrackPoint) -> TrackPointRead:
        return cls(
            seq=point.seq,
            event_time=datetime.fromtimestamp(point.event_time_ms / 1000, UTC),
            lon=point.lon,
            lat=point.lat,
            alt_m=point.alt_m,
            ground_speed_mps=point.ground_speed_mps,
            heading_deg=point.heading_deg,
            battery_pct=point.battery_pct,
            flight_mode=flight_mode_name(point.flight_mode),
            mission_id=point.mission_id,
        )


class TrackRead(BaseModel):
    drone_id: str
    count: int
    downsampled_from: int
    points: list[TrackPointRead]
