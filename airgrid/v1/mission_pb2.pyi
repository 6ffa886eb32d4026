from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MissionStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISSION_STAGE_UNSPECIFIED: _ClassVar[MissionStage]
    MISSION_STAGE_ASSIGNED: _ClassVar[MissionStage]
    MISSION_STAGE_LAUNCHED: _ClassVar[MissionStage]
    MISSION_STAGE_ON_SCENE: _ClassVar[MissionStage]
    MISSION_STAGE_RETURNING: _ClassVar[MissionStage]
    MISSION_STAGE_DOCKED: _ClassVar[MissionStage]
    MISSION_STAGE_COMPLETED: _ClassVar[MissionStage]
    MISSION_STAGE_CANCELLED: _ClassVar[MissionStage]
    MISSION_STAGE_FAILED: _ClassVar[MissionStage]
MISSION_STAGE_UNSPECIFIED: MissionStage
MISSION_STAGE_ASSIGNED: MissionStage
MISSION_STAGE_LAUNCHED: MissionStage
MISSION_STAGE_ON_SCENE: MissionStage
MISSION_STAGE_RETURNING: MissionStage
MISSION_STAGE_DOCKED: MissionStage
MISSION_STAGE_COMPLETED: MissionStage
MISSION_STAGE_CANCELLED: MissionStage
MISSION_STAGE_FAILED: MissionStage

class MissionEvent(_message.Message):
    __slots__ = ("mission_id", "incident_id", "drone_id", "stage", "event_time_ms", "reason", "relieves")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    DRONE_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RELIEVES_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    incident_id: str
    drone_id: str
    stage: MissionStage
    event_time_ms: int
    reason: str
    relieves: str
    def __init__(self, mission_id: _Optional[str] = ..., incident_id: _Optional[str] = ..., drone_id: _Optional[str] = ..., stage: _Optional[_Union[MissionStage, str]] = ..., event_time_ms: _Optional[int] = ..., reason: _Optional[str] = ..., relieves: _Optional[str] = ...) -> None: ...
