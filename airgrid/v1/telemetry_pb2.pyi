from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlightMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLIGHT_MODE_UNSPECIFIED: _ClassVar[FlightMode]
    FLIGHT_MODE_DOCKED: _ClassVar[FlightMode]
    FLIGHT_MODE_TAKING_OFF: _ClassVar[FlightMode]
    FLIGHT_MODE_CRUISING: _ClassVar[FlightMode]
    FLIGHT_MODE_HOVERING: _ClassVar[FlightMode]
    FLIGHT_MODE_RETURNING: _ClassVar[FlightMode]
    FLIGHT_MODE_LANDING: _ClassVar[FlightMode]
FLIGHT_MODE_UNSPECIFIED: FlightMode
FLIGHT_MODE_DOCKED: FlightMode
FLIGHT_MODE_TAKING_OFF: FlightMode
FLIGHT_MODE_CRUISING: FlightMode
FLIGHT_MODE_HOVERING: FlightMode
FLIGHT_MODE_RETURNING: FlightMode
FLIGHT_MODE_LANDING: FlightMode

class Telemetry(_message.Message):
    __slots__ = ("drone_id", "seq", "event_time_ms", "lon", "lat", "alt_m", "ground_speed_mps", "vertical_speed_mps", "heading_deg", "battery_pct", "flight_mode", "nest_id", "mission_id", "wind_mps", "faults")
    DRONE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    ALT_M_FIELD_NUMBER: _ClassVar[int]
    GROUND_SPEED_MPS_FIELD_NUMBER: _ClassVar[int]
    VERTICAL_SPEED_MPS_FIELD_NUMBER: _ClassVar[int]
    HEADING_DEG_FIELD_NUMBER: _ClassVar[int]
    BATTERY_PCT_FIELD_NUMBER: _ClassVar[int]
    FLIGHT_MODE_FIELD_NUMBER: _ClassVar[int]
    NEST_ID_FIELD_NUMBER: _ClassVar[int]
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    WIND_MPS_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    drone_id: str
    seq: int
    event_time_ms: int
    lon: float
    lat: float
    alt_m: float
    ground_speed_mps: float
    vertical_speed_mps: float
    heading_deg: float
    battery_pct: float
    flight_mode: FlightMode
    nest_id: str
    mission_id: str
    wind_mps: float
    faults: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, drone_id: _Optional[str] = ..., seq: _Optional[int] = ..., event_time_ms: _Optional[int] = ..., lon: _Optional[float] = ..., lat: _Optional[float] = ..., alt_m: _Optional[float] = ..., ground_speed_mps: _Optional[float] = ..., vertical_speed_mps: _Optional[float] = ..., heading_deg: _Optional[float] = ..., battery_pct: _Optional[float] = ..., flight_mode: _Optional[_Union[FlightMode, str]] = ..., nest_id: _Optional[str] = ..., mission_id: _Optional[str] = ..., wind_mps: _Optional[float] = ..., faults: _Optional[_Iterable[str]] = ...) -> None: ...

class TelemetryBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Telemetry]
    def __init__(self, records: _Optional[_Iterable[_Union[Telemetry, _Mapping]]] = ...) -> None: ...
