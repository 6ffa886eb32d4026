from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CommandKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_KIND_UNSPECIFIED: _ClassVar[CommandKind]
    COMMAND_KIND_LAUNCH: _ClassVar[CommandKind]
    COMMAND_KIND_GOTO: _ClassVar[CommandKind]
    COMMAND_KIND_HOLD: _ClassVar[CommandKind]
    COMMAND_KIND_RETURN: _ClassVar[CommandKind]
COMMAND_KIND_UNSPECIFIED: CommandKind
COMMAND_KIND_LAUNCH: CommandKind
COMMAND_KIND_GOTO: CommandKind
COMMAND_KIND_HOLD: CommandKind
COMMAND_KIND_RETURN: CommandKind

class DroneCommand(_message.Message):
    __slots__ = ("command_id", "drone_id", "mission_id", "kind", "target_lon", "target_lat", "target_alt_m", "hold_seconds", "nest_id", "issued_time_ms", "path_lon", "path_lat")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    DRONE_ID_FIELD_NUMBER: _ClassVar[int]
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_LON_FIELD_NUMBER: _ClassVar[int]
    TARGET_LAT_FIELD_NUMBER: _ClassVar[int]
    TARGET_ALT_M_FIELD_NUMBER: _ClassVar[int]
    HOLD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NEST_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PATH_LON_FIELD_NUMBER: _ClassVar[int]
    PATH_LAT_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    drone_id: str
    mission_id: str
    kind: CommandKind
    target_lon: float
    target_lat: float
    target_alt_m: float
    hold_seconds: int
    nest_id: str
    issued_time_ms: int
    path_lon: _containers.RepeatedScalarFieldContainer[float]
    path_lat: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, command_id: _Optional[str] = ..., drone_id: _Optional[str] = ..., mission_id: _Optional[str] = ..., kind: _Optional[_Union[CommandKind, str]] = ..., target_lon: _Optional[float] = ..., target_lat: _Optional[float] = ..., target_alt_m: _Optional[float] = ..., hold_seconds: _Optional[int] = ..., nest_id: _Optional[str] = ..., issued_time_ms: _Optional[int] = ..., path_lon: _Optional[_Iterable[float]] = ..., path_lat: _Optional[_Iterable[float]] = ...) -> None: ...
