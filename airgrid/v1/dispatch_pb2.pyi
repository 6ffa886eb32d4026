from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_KIND_UNSPECIFIED: _ClassVar[DecisionKind]
    DECISION_KIND_ASSIGNED: _ClassVar[DecisionKind]
    DECISION_KIND_QUEUED: _ClassVar[DecisionKind]
    DECISION_KIND_PREEMPTED: _ClassVar[DecisionKind]
    DECISION_KIND_REDISPATCHED: _ClassVar[DecisionKind]
    DECISION_KIND_CANCELLED: _ClassVar[DecisionKind]
    DECISION_KIND_LINKED: _ClassVar[DecisionKind]
DECISION_KIND_UNSPECIFIED: DecisionKind
DECISION_KIND_ASSIGNED: DecisionKind
DECISION_KIND_QUEUED: DecisionKind
DECISION_KIND_PREEMPTED: DecisionKind
DECISION_KIND_REDISPATCHED: DecisionKind
DECISION_KIND_CANCELLED: DecisionKind
DECISION_KIND_LINKED: DecisionKind

class Assignment(_message.Message):
    __slots__ = ("mission_id", "drone_id", "slot", "eta_seconds", "from_nest_id", "relieves")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    DRONE_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FROM_NEST_ID_FIELD_NUMBER: _ClassVar[int]
    RELIEVES_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    drone_id: str
    slot: int
    eta_seconds: float
    from_nest_id: str
    relieves: str
    def __init__(self, mission_id: _Optional[str] = ..., drone_id: _Optional[str] = ..., slot: _Optional[int] = ..., eta_seconds: _Optional[float] = ..., from_nest_id: _Optional[str] = ..., relieves: _Optional[str] = ...) -> None: ...

class DispatchDecision(_message.Message):
    __slots__ = ("decision_id", "incident_id", "kind", "assignments", "reason", "priority", "incident_accepted_time_ms", "decided_time_ms")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ACCEPTED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    incident_id: str
    kind: DecisionKind
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    reason: str
    priority: int
    incident_accepted_time_ms: int
    decided_time_ms: int
    def __init__(self, decision_id: _Optional[str] = ..., incident_id: _Optional[str] = ..., kind: _Optional[_Union[DecisionKind, str]] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., reason: _Optional[str] = ..., priority: _Optional[int] = ..., incident_accepted_time_ms: _Optional[int] = ..., decided_time_ms: _Optional[int] = ...) -> None: ...
