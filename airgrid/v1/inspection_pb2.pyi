from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CASE_STATUS_UNSPECIFIED: _ClassVar[CaseStatus]
    CASE_STATUS_OPEN: _ClassVar[CaseStatus]
    CASE_STATUS_ACKNOWLEDGED: _ClassVar[CaseStatus]
    CASE_STATUS_RESOLVED: _ClassVar[CaseStatus]
    CASE_STATUS_DISMISSED: _ClassVar[CaseStatus]
    CASE_STATUS_ESCALATED: _ClassVar[CaseStatus]

class CaseChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CASE_CHANGE_KIND_UNSPECIFIED: _ClassVar[CaseChangeKind]
    CASE_CHANGE_KIND_OPENED: _ClassVar[CaseChangeKind]
    CASE_CHANGE_KIND_UPDATED: _ClassVar[CaseChangeKind]
CASE_STATUS_UNSPECIFIED: CaseStatus
CASE_STATUS_OPEN: CaseStatus
CASE_STATUS_ACKNOWLEDGED: CaseStatus
CASE_STATUS_RESOLVED: CaseStatus
CASE_STATUS_DISMISSED: CaseStatus
CASE_STATUS_ESCALATED: CaseStatus
CASE_CHANGE_KIND_UNSPECIFIED: CaseChangeKind
CASE_CHANGE_KIND_OPENED: CaseChangeKind
CASE_CHANGE_KIND_UPDATED: CaseChangeKind

class MediaRef(_message.Message):
    __slots__ = ("uri", "sha256")
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    uri: str
    sha256: str
    def __init__(self, uri: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("id", "drone_id", "mission_id", "scenario", "confidence", "lon", "lat", "observed_time_ms", "media", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DRONE_ID_FIELD_NUMBER: _ClassVar[int]
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    drone_id: str
    mission_id: str
    scenario: str
    confidence: float
    lon: float
    lat: float
    observed_time_ms: int
    media: MediaRef
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., drone_id: _Optional[str] = ..., mission_id: _Optional[str] = ..., scenario: _Optional[str] = ..., confidence: _Optional[float] = ..., lon: _Optional[float] = ..., lat: _Optional[float] = ..., observed_time_ms: _Optional[int] = ..., media: _Optional[_Union[MediaRef, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DetectionBatch(_message.Message):
    __slots__ = ("detections",)
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    def __init__(self, detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ...) -> None: ...

class Case(_message.Message):
    __slots__ = ("id", "scenario", "departments", "status", "lon", "lat", "first_seen_ms", "last_seen_ms", "detection_count", "best_media", "best_confidence", "best_detection_id", "incident_id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    DETECTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    BEST_MEDIA_FIELD_NUMBER: _ClassVar[int]
    BEST_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BEST_DETECTION_ID_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    scenario: str
    departments: _containers.RepeatedScalarFieldContainer[str]
    status: CaseStatus
    lon: float
    lat: float
    first_seen_ms: int
    last_seen_ms: int
    detection_count: int
    best_media: MediaRef
    best_confidence: float
    best_detection_id: str
    incident_id: str
    version: int
    def __init__(self, id: _Optional[str] = ..., scenario: _Optional[str] = ..., departments: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[CaseStatus, str]] = ..., lon: _Optional[float] = ..., lat: _Optional[float] = ..., first_seen_ms: _Optional[int] = ..., last_seen_ms: _Optional[int] = ..., detection_count: _Optional[int] = ..., best_media: _Optional[_Union[MediaRef, _Mapping]] = ..., best_confidence: _Optional[float] = ..., best_detection_id: _Optional[str] = ..., incident_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CaseEvent(_message.Message):
    __slots__ = ("event_id", "kind", "case", "detection_id", "actor", "event_time_ms")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CASE_FIELD_NUMBER: _ClassVar[int]
    DETECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    kind: CaseChangeKind
    case: Case
    detection_id: str
    actor: str
    event_time_ms: int
    def __init__(self, event_id: _Optional[str] = ..., kind: _Optional[_Union[CaseChangeKind, str]] = ..., case: _Optional[_Union[Case, _Mapping]] = ..., detection_id: _Optional[str] = ..., actor: _Optional[str] = ..., event_time_ms: _Optional[int] = ...) -> None: ...
