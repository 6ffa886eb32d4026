from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Incident(_message.Message):
    __slots__ = ("id", "department", "type", "priority", "lon", "lat", "geometry_json", "required_capabilities", "drones_needed", "on_scene_seconds", "description", "accepted_time_ms", "shared_with")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    GEOMETRY_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    DRONES_NEEDED_FIELD_NUMBER: _ClassVar[int]
    ON_SCENE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SHARED_WITH_FIELD_NUMBER: _ClassVar[int]
    id: str
    department: str
    type: str
    priority: int
    lon: float
    lat: float
    geometry_json: str
    required_capabilities: _containers.RepeatedScalarFieldContainer[str]
    drones_needed: int
    on_scene_seconds: int
    description: str
    accepted_time_ms: int
    shared_with: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., department: _Optional[str] = ..., type: _Optional[str] = ..., priority: _Optional[int] = ..., lon: _Optional[float] = ..., lat: _Optional[float] = ..., geometry_json: _Optional[str] = ..., required_capabilities: _Optional[_Iterable[str]] = ..., drones_needed: _Optional[int] = ..., on_scene_seconds: _Optional[int] = ..., description: _Optional[str] = ..., accepted_time_ms: _Optional[int] = ..., shared_with: _Optional[_Iterable[str]] = ...) -> None: ...

class IncidentCancelled(_message.Message):
    __slots__ = ("incident_id", "department", "cancelled_time_ms", "reason")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    department: str
    cancelled_time_ms: int
    reason: str
    def __init__(self, incident_id: _Optional[str] = ..., department: _Optional[str] = ..., cancelled_time_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class IncidentEvent(_message.Message):
    __slots__ = ("accepted", "cancelled")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    accepted: Incident
    cancelled: IncidentCancelled
    def __init__(self, accepted: _Optional[_Union[Incident, _Mapping]] = ..., cancelled: _Optional[_Union[IncidentCancelled, _Mapping]] = ...) -> None: ...
