from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_KIND_UNSPECIFIED: _ClassVar[AlertKind]
    ALERT_KIND_LOW_BATTERY: _ClassVar[AlertKind]
    ALERT_KIND_LINK_LOST: _ClassVar[AlertKind]
    ALERT_KIND_GEOFENCE_BREACH: _ClassVar[AlertKind]
    ALERT_KIND_OFF_ROUTE: _ClassVar[AlertKind]
    ALERT_KIND_SLA_AT_RISK: _ClassVar[AlertKind]
    ALERT_KIND_SLA_BREACHED: _ClassVar[AlertKind]
    ALERT_KIND_RELAY_AT_RISK: _ClassVar[AlertKind]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]
ALERT_KIND_UNSPECIFIED: AlertKind
ALERT_KIND_LOW_BATTERY: AlertKind
ALERT_KIND_LINK_LOST: AlertKind
ALERT_KIND_GEOFENCE_BREACH: AlertKind
ALERT_KIND_OFF_ROUTE: AlertKind
ALERT_KIND_SLA_AT_RISK: AlertKind
ALERT_KIND_SLA_BREACHED: AlertKind
ALERT_KIND_RELAY_AT_RISK: AlertKind
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity

class Alert(_message.Message):
    __slots__ = ("alert_id", "kind", "severity", "subject_id", "drone_id", "incident_id", "message", "event_time_ms", "active", "lon", "lat")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DRONE_ID_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    kind: AlertKind
    severity: Severity
    subject_id: str
    drone_id: str
    incident_id: str
    message: str
    event_time_ms: int
    active: bool
    lon: float
    lat: float
    def __init__(self, alert_id: _Optional[str] = ..., kind: _Optional[_Union[AlertKind, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., subject_id: _Optional[str] = ..., drone_id: _Optional[str] = ..., incident_id: _Optional[str] = ..., message: _Optional[str] = ..., event_time_ms: _Optional[int] = ..., active: _Optional[bool] = ..., lon: _Optional[float] = ..., lat: _Optional[float] = ...) -> None: ...
