from airgrid.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DroneState(_message.Message):
    __slots__ = ("drone_id", "last_seq", "event_time_ms", "applied_time_ms", "lon", "lat", "alt_m", "ground_speed_mps", "heading_deg", "battery_pct", "flight_mode", "nest_id", "mission_id", "wind_mps", "faults", "link_ok")
    DRONE_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    ALT_M_FIELD_NUMBER: _ClassVar[int]
    GROUND_SPEED_MPS_FIELD_NUMBER: _ClassVar[int]
    HEADING_DEG_FIELD_NUMBER: _ClassVar[int]
    BATTERY_PCT_FIELD_NUMBER: _ClassVar[int]
    FLIGHT_MODE_FIELD_NUMBER: _ClassVar[int]
    NEST_ID_FIELD_NUMBER: _ClassVar[int]
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    WIND_MPS_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    LINK_OK_FIELD_NUMBER: _ClassVar[int]
    drone_id: str
    last_seq: int
    event_time_ms: int
    applied_time_ms: int
    lon: float
    lat: float
    alt_m: float
    ground_speed_mps: float
    heading_deg: float
    battery_pct: float
    flight_mode: _telemetry_pb2.FlightMode
    nest_id: str
    mission_id: str
    wind_mps: float
    faults: _containers.RepeatedScalarFieldContainer[str]
    link_ok: bool
    def __init__(self, drone_id: _Optional[str] = ..., last_seq: _Optional[int] = ..., event_time_ms: _Optional[int] = ..., applied_time_ms: _Optional[int] = ..., lon: _Optional[float] = ..., lat: _Optional[float] = ..., alt_m: _Optional[float] = ..., ground_speed_mps: _Optional[float] = ..., heading_deg: _Optional[float] = ..., battery_pct: _Optional[float] = ..., flight_mode: _Optional[_Union[_telemetry_pb2.FlightMode, str]] = ..., nest_id: _Optional[str] = ..., mission_id: _Optional[str] = ..., wind_mps: _Optional[float] = ..., faults: _Optional[_Iterable[str]] = ..., link_ok: _Optional[bool] = ...) -> None: ...
