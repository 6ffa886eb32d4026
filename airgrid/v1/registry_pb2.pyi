from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Department(_message.Message):
    __slots__ = ("code", "name_en", "name_zh", "contact")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_EN_FIELD_NUMBER: _ClassVar[int]
    NAME_ZH_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    code: str
    name_en: str
    name_zh: str
    contact: str
    def __init__(self, code: _Optional[str] = ..., name_en: _Optional[str] = ..., name_zh: _Optional[str] = ..., contact: _Optional[str] = ...) -> None: ...

class Nest(_message.Message):
    __slots__ = ("id", "name", "lon", "lat", "charging_slots", "status", "wind_mps", "wind_hold_mps")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    CHARGING_SLOTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WIND_MPS_FIELD_NUMBER: _ClassVar[int]
    WIND_HOLD_MPS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    lon: float
    lat: float
    charging_slots: int
    status: str
    wind_mps: float
    wind_hold_mps: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., lon: _Optional[float] = ..., lat: _Optional[float] = ..., charging_slots: _Optional[int] = ..., status: _Optional[str] = ..., wind_mps: _Optional[float] = ..., wind_hold_mps: _Optional[float] = ...) -> None: ...

class Drone(_message.Message):
    __slots__ = ("id", "model", "home_nest", "capabilities", "cruise_speed_mps", "max_speed_mps", "climb_rate_mps", "cruise_altitude_m", "endurance_s", "launch_delay_s", "payload_kg", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HOME_NEST_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CRUISE_SPEED_MPS_FIELD_NUMBER: _ClassVar[int]
    MAX_SPEED_MPS_FIELD_NUMBER: _ClassVar[int]
    CLIMB_RATE_MPS_FIELD_NUMBER: _ClassVar[int]
    CRUISE_ALTITUDE_M_FIELD_NUMBER: _ClassVar[int]
    ENDURANCE_S_FIELD_NUMBER: _ClassVar[int]
    LAUNCH_DELAY_S_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_KG_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    home_nest: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    cruise_speed_mps: float
    max_speed_mps: float
    climb_rate_mps: float
    cruise_altitude_m: float
    endurance_s: float
    launch_delay_s: float
    payload_kg: float
    status: str
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., home_nest: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., cruise_speed_mps: _Optional[float] = ..., max_speed_mps: _Optional[float] = ..., climb_rate_mps: _Optional[float] = ..., cruise_altitude_m: _Optional[float] = ..., endurance_s: _Optional[float] = ..., launch_delay_s: _Optional[float] = ..., payload_kg: _Optional[float] = ..., status: _Optional[str] = ...) -> None: ...

class Geofence(_message.Message):
    __slots__ = ("id", "name", "kind", "ring_lon", "ring_lat", "max_altitude_m", "active_from_ms", "active_until_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RING_LON_FIELD_NUMBER: _ClassVar[int]
    RING_LAT_FIELD_NUMBER: _ClassVar[int]
    MAX_ALTITUDE_M_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FROM_MS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kind: str
    ring_lon: _containers.RepeatedScalarFieldContainer[float]
    ring_lat: _containers.RepeatedScalarFieldContainer[float]
    max_altitude_m: float
    active_from_ms: int
    active_until_ms: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., ring_lon: _Optional[_Iterable[float]] = ..., ring_lat: _Optional[_Iterable[float]] = ..., max_altitude_m: _Optional[float] = ..., active_from_ms: _Optional[int] = ..., active_until_ms: _Optional[int] = ...) -> None: ...

class CredentialRevoked(_message.Message):
    __slots__ = ("credential_id",)
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    def __init__(self, credential_id: _Optional[str] = ...) -> None: ...

class ActiveWindow(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: str
    end: str
    def __init__(self, start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class InspectionPlan(_message.Message):
    __slots__ = ("id", "name", "department", "kind", "ring_lon", "ring_lat", "path_lon", "path_lat", "width_m", "revisit_interval_s", "active_windows", "timezone")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RING_LON_FIELD_NUMBER: _ClassVar[int]
    RING_LAT_FIELD_NUMBER: _ClassVar[int]
    PATH_LON_FIELD_NUMBER: _ClassVar[int]
    PATH_LAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_M_FIELD_NUMBER: _ClassVar[int]
    REVISIT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    department: str
    kind: str
    ring_lon: _containers.RepeatedScalarFieldContainer[float]
    ring_lat: _containers.RepeatedScalarFieldContainer[float]
    path_lon: _containers.RepeatedScalarFieldContainer[float]
    path_lat: _containers.RepeatedScalarFieldContainer[float]
    width_m: float
    revisit_interval_s: int
    active_windows: _containers.RepeatedCompositeFieldContainer[ActiveWindow]
    timezone: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., department: _Optional[str] = ..., kind: _Optional[str] = ..., ring_lon: _Optional[_Iterable[float]] = ..., ring_lat: _Optional[_Iterable[float]] = ..., path_lon: _Optional[_Iterable[float]] = ..., path_lat: _Optional[_Iterable[float]] = ..., width_m: _Optional[float] = ..., revisit_interval_s: _Optional[int] = ..., active_windows: _Optional[_Iterable[_Union[ActiveWindow, _Mapping]]] = ..., timezone: _Optional[str] = ...) -> None: ...

class EscalationRule(_message.Message):
    __slots__ = ("min_confidence", "incident_type", "priority")
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    min_confidence: float
    incident_type: str
    priority: int
    def __init__(self, min_confidence: _Optional[float] = ..., incident_type: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class Scenario(_message.Message):
    __slots__ = ("code", "name", "departments", "severity", "merge_radius_m", "merge_window_s", "escalation", "description")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MERGE_RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    MERGE_WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    departments: _containers.RepeatedScalarFieldContainer[str]
    severity: str
    merge_radius_m: float
    merge_window_s: int
    escalation: EscalationRule
    description: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., departments: _Optional[_Iterable[str]] = ..., severity: _Optional[str] = ..., merge_radius_m: _Optional[float] = ..., merge_window_s: _Optional[int] = ..., escalation: _Optional[_Union[EscalationRule, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class RegistryChange(_message.Message):
    __slots__ = ("entity_id", "deleted", "version", "changed_time_ms", "department", "nest", "drone", "geofence", "credential_revoked", "inspection_plan", "scenario", "deleted_kind")
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    NEST_FIELD_NUMBER: _ClassVar[int]
    DRONE_FIELD_NUMBER: _ClassVar[int]
    GEOFENCE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_REVOKED_FIELD_NUMBER: _ClassVar[int]
    INSPECTION_PLAN_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    DELETED_KIND_FIELD_NUMBER: _ClassVar[int]
    entity_id: str
    deleted: bool
    version: int
    changed_time_ms: int
    department: Department
    nest: Nest
    drone: Drone
    geofence: Geofence
    credential_revoked: CredentialRevoked
    inspection_plan: InspectionPlan
    scenario: Scenario
    deleted_kind: str
    def __init__(self, entity_id: _Optional[str] = ..., deleted: _Optional[bool] = ..., version: _Optional[int] = ..., changed_time_ms: _Optional[int] = ..., department: _Optional[_Union[Department, _Mapping]] = ..., nest: _Optional[_Union[Nest, _Mapping]] = ..., drone: _Optional[_Union[Drone, _Mapping]] = ..., geofence: _Optional[_Union[Geofence, _Mapping]] = ..., credential_revoked: _Optional[_Union[CredentialRevoked, _Mapping]] = ..., inspection_plan: _Optional[_Union[InspectionPlan, _Mapping]] = ..., scenario: _Optional[_Union[Scenario, _Mapping]] = ..., deleted_kind: _Optional[str] = ...) -> None: ...
