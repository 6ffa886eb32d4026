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

class RegistryChange(_message.Message):
    __slots__ = ("entity_id", "deleted", "version", "changed_time_ms", "department", "nest", "drone", "geofence", "credential_revoked", "deleted_kind")
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    NEST_FIELD_NUMBER: _ClassVar[int]
    DRONE_FIELD_NUMBER: _ClassVar[int]
    GEOFENCE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_REVOKED_FIELD_NUMBER: _ClassVar[int]
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
    deleted_kind: str
    def __init__(self, entity_id: _Optional[str] = ..., deleted: _Optional[bool] = ..., version: _Optional[int] = ..., changed_time_ms: _Optional[int] = ..., department: _Optional[_Union[Department, _Mapping]] = ..., nest: _Optional[_Union[Nest, _Mapping]] = ..., drone: _Optional[_Union[Drone, _Mapping]] = ..., geofence: _Optional[_Union[Geofence, _Mapping]] = ..., credential_revoked: _Optional[_Union[CredentialRevoked, _Mapping]] = ..., deleted_kind: _Optional[str] = ...) -> None: ...
