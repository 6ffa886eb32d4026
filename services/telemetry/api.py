"""Telemetry REST API: batch ingest onto the raw topic and live drone state from the view."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.auth import Authenticator, CurrentPrincipal, Principal, Role, require_role
from airgrid.bus import Producer, TopicView, now_ms
from airgrid.config import Settings
from airgrid.problems import Problem
from airgrid.query_params import DateTime, WholeNumber
from airgrid.topics import DEPARTMENT_CODES, PROTOBUF, TELEMETRY_RAW
from airgrid.v1 import drone_state_pb2, registry_pb2, telemetry_pb2
from services.telemetry.feed_cursor import MalformedEventId, decode_cursor
from services.telemetry.feed_stream import FeedResponse, StreamSlots, feed_events
from services.telemetry.feeds import FeedHub, Subscription
from services.telemetry.store import TrackPoint, downsample, read_track

log = logging.getLogger("airgrid.telemetry")

router = APIRouter(prefix="/v1", tags=["telemetry"])

MAX_BATCH_RECORDS = 10_000
# Four decimal numbers; what they mean is the parser's (_parse_bbox) to check.
BBOX_PATTERN = r"^-?[0-9]+(\.[0-9]+)?(,-?[0-9]+(\.[0-9]+)?){3}$"
RAW_EVENT = "airgrid.telemetry.recorded"
_MODE_PREFIX = "FLIGHT_MODE_"

FlightModeName = Literal[
    "unspecified", "docked", "taking_off", "cruising", "hovering", "returning", "landing"
]


def flight_mode_name(value: int) -> str:
    try:
        name = str(telemetry_pb2.FlightMode.Name(value))
    except ValueError:
        return "unspecified"
    return name.removeprefix(_MODE_PREFIX).lower()


class TelemetryIn(BaseModel):
    """One record as a gateway sends it in JSON; ranges are checked by the stream, not here.
    Strict: a number field takes a number, never `false` or "1"."""

    model_config = ConfigDict(strict=True)

    drone_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, lt=2**64)
    event_time_ms: int = Field(description="Milliseconds since the Unix epoch (UTC).")
    lon: float
    lat: float
    alt_m: float = 0.0
    ground_speed_mps: float = 0.0
    vertical_speed_mps: float = 0.0
    heading_deg: float = 0.0
    battery_pct: float
    flight_mode: FlightModeName = "unspecified"
    nest_id: str = ""
    mission_id: str = ""
    wind_mps: float = 0.0
    faults: list[str] = Field(default_factory=list)

    def to_proto(self) -> telemetry_pb2.Telemetry:
        fields = self.model_dump()
        fields["flight_mode"] = telemetry_pb2.FlightMode.Value(
            _MODE_PREFIX + self.flight_mode.upper()
        )
        return telemetry_pb2.Telemetry(**fields)


class TelemetryBatchIn(BaseModel):
    records: list[TelemetryIn]


# TelemetryIn has no nested models, so its schema inlines without dangling $refs.
_BATCH_JSON_SCHEMA = {
    "type": "object",
    "required": ["records"],
    "properties": {
        "records": {
            "type": "array",
            "maxItems": MAX_BATCH_RECORDS,
            "items": TelemetryIn.model_json_schema(),
        }
    },
}


class IngestAccepted(BaseModel):
    accepted: int


class DroneStateRead(BaseModel):
    drone_id: str
    lon: float
    lat: float
    alt_m: float
    battery_pct: float
    flight_mode: str
    mission_id: str
    nest_id: str
    ground_speed_mps: float
    heading_deg: float
    last_seq: int
    event_time: datetime
    link_ok: bool = Field(
        description="An accepted record arrived within the link-lost period (refused records "
        "never count)."
    )

    @classmethod
    def of(cls, state: drone_state_pb2.DroneState, heard_since_ms: int) -> DroneStateRead:
        """heard_since_ms: the link counts as alive when the state's record is this new."""
        return cls(
            drone_id=state.drone_id,
            lon=state.lon,
            lat=state.lat,
            alt_m=state.alt_m,
            battery_pct=state.battery_pct,
            flight_mode=flight_mode_name(state.flight_mode),
            mission_id=state.mission_id,
            nest_id=state.nest_id,
            ground_speed_mps=state.ground_speed_mps,
            heading_deg=state.heading_deg,
            last_seq=state.last_seq,
            event_time=datetime.fromtimestamp(state.event_time_ms / 1000, UTC),
            link_ok=state.link_ok and state.event_time_ms >= heard_since_ms,
        )


class FleetRead(BaseModel):
    count: int
    drones: list[DroneStateRead]


def _heard_since_ms(request: Request) -> int:
    """The oldest event time of an accepted record that still makes a link alive."""
    settings = request.app.state.infra.settings
    return now_ms() - int(settings.link_lost_seconds * 1000)


def _states(request: Request) -> TopicView:
    view: TopicView = request.app.state.states
    return view


def _registry(request: Request) -> TopicView:
    view: TopicView = request.app.state.registry
    return view


def _producer(request: Request) -> Producer:
    producer: Producer = request.app.state.infra.producer
    return producer


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.infra.engine
    return engine


def _hub(request: Request) -> FeedHub:
    hub: FeedHub = request.app.state.feeds
    return hub


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
HubDep = Annotated[FeedHub, Depends(_hub)]
StatesDep = Annotated[TopicView, Depends(_states)]
HeardSinceDep = Annotated[int, Depends(_heard_since_ms)]
RegistryDep = Annotated[TopicView, Depends(_registry)]
ProducerDep = Annotated[Producer, Depends(_producer)]


@router.get("/drones/states", summary="Latest state of every drone")
async def fleet_states(
    principal: CurrentPrincipal,
    states: StatesDep,
    heard_since_ms: HeardSinceDep,
    status: Annotated[FlightModeName | None, Query(description="Flight mode filter")] = None,
    bbox: Annotated[
        str | None,
        Query(
            description="min_lon,min_lat,max_lon,max_lat",
            examples=["0,0,1,1"],
            pattern=BBOX_PATTERN,
        ),
    ] = None,
) -> FleetRead:
    box = _parse_bbox(bbox) if bbox else None
    drones = []
    for state in list(states.items.values()):
        if status is not None and flight_mode_name(state.flight_mode) != status:
            continue
        if box is not None and not (
            box[0] <= state.lon <= box[2] and box[1] <= state.lat <= box[3]
        ):
            continue
        drones.append(DroneStateRead.of(state, heard_since_ms))
    drones.sort(key=lambda d: d.drone_id)
    return FleetRead(count=len(drones), drones=drones)


@router.get("/drones/{drone_id}/state", summary="Latest state of one drone")
async def drone_state(
    drone_id: str, principal: CurrentPrincipal, states: StatesDep, heard_since_ms: HeardSinceDep
) -> DroneStateRead:
    state = states.items.get(drone_id)
    if state is None:
        raise Problem(
            404,
            "Not found",
            f"No state for drone {drone_id!r}: it is unknown or has not reported yet.",
            kind="drone-state-not-found",
        )
    return DroneStateRead.of(state, heard_since_ms)


MAX_TRACK_ROWS = 100_000


class TrackPointRead(BaseModel):
    seq: int
    event_time: datetime
    lon: float
    lat: float
    alt_m: float
    ground_speed_mps: float
    heading_deg: float
    battery_pct: float
    flight_mode: str
    mission_id: str

    @classmethod
    def of(cls, point: TrackPoint) -> TrackPointRead:
        return cls(
            seq=point.seq,
            event_time=datetime.fromtimestamp(point.event_time_ms / 1000, UTC),
            lon=point.lon,
            lat=point.lat,
            alt_m=point.alt_m,
            ground_speed_mps=point.ground_speed_mps,
            heading_deg=point.heading_deg,
            battery_pct=point.battery_pct,
            flight_mode=flight_mode_name(point.flight_mode),
            mission_id=point.mission_id,
        )


class TrackRead(BaseModel):
    drone_id: str
    count: int
    downsampled_from: int
    points: list[TrackPointRead]


@router.get("/drones/{drone_id}/track", summary="Track history of one drone in a time range")
async def drone_track(
    drone_id: str,
    principal: CurrentPrincipal,
    engine: EngineDep,
    since: Annotated[DateTime, Query(description="Start, inclusive (RFC 3339)")],
    until: Annotated[DateTime | None, Query(description="End, exclusive; default now")] = None,
    max_points: Annotated[
        int, Query(ge=2, le=10_000, description="Downsample to this"), WholeNumber
    ] = 1000,
) -> TrackRead:
    require_role(principal, Role.OPERATOR, Role.ADMIN, Role.DEPARTMENT)
    end = until or datetime.now(UTC)
    since_ms, until_ms = _epoch_ms(since), _epoch_ms(end)
    if until_ms <= since_ms:
        raise Problem(
            400,
            "Invalid time range",
            "until must be later than since.",
            kind="invalid-time-range",
        )
    points = await read_track(
        engine, drone_id=drone_id, since_ms=since_ms, until_ms=until_ms, limit=MAX_TRACK_ROWS
    )
    kept = downsample(points, max_points)
    return TrackRead(
        drone_id=drone_id,
        count=len(kept),
        downsampled_from=len(points),
        points=[TrackPointRead.of(p) for p in kept],
    )


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


FEED_STREAM_DESCRIPTION = """\
A department's feed as Server-Sent Events (`text/event-stream`): incident and mission
updates, positions of drones on its missions, alerts. Each item is one event:

```
id: 0-41.1-17.2-8
event: drone.position
data: {"type":"drone.position","drone_id":"d-017","lon":114.41,"lat":30.48,...}
```

- `id` names Kafka positions on `airgrid.feed.<department>`: per partition, the last offset
  this stream has passed (`<partition>-<offset>`, joined by `.`). It is valid on every replica.
- `event` is the item's type (`drone.position`, `alert.<kind>`, `case.opened`, ...);
  `data` is the item as JSON.
- Reconnect with the `Last-Event-ID` header (or the `last_event_id` query parameter) set to
  the last id received: the stream first sends every item after it that the broker still
  retains (one day), once each, then goes on live. Without it the stream starts live.
- Comments (`: keep-alive`) arrive when nothing else was sent for
  `AIRGRID_FEED_KEEPALIVE_SECONDS`; `: closed: <reason>` ends a stream whose credential was
  revoked or has expired (within 5 s).
- A credential may hold `AIRGRID_FEED_MAX_STREAMS_PER_KEY` streams at once per replica; one
  more answers 429 with Retry-After.
- A client too slow to keep up is disconnected, never waited for; it resumes with its
  Last-Event-ID.
"""


def _slots(request: Request) -> StreamSlots:
    slots: StreamSlots = request.app.state.feed_slots
    return slots


def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


SlotsDep = Annotated[StreamSlots, Depends(_slots)]
AuthenticatorDep = Annotated[Authenticator, Depends(_authenticator)]
STREAM_CAP_RETRY_AFTER_S = 5


@router.get(
    "/feeds/{department}/stream",
    summary="A department's data feed as Server-Sent Events",
    description=FEED_STREAM_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The event stream; it ends only when the client leaves or its "
            "credential is revoked.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        400: {"description": "Malformed Last-Event-ID or bbox"},
    },
)
async def feed_stream(
    request: Request,
    department: str,
    principal: CurrentPrincipal,
    hub: HubDep,
    slots: SlotsDep,
    authenticator: AuthenticatorDep,
    types: Annotated[
        str | None, Query(description="Comma-separated item types, e.g. drone.position")
    ] = None,
    bbox: Annotated[
        str | None,
        Query(
            description="min_lon,min_lat,max_lon,max_lat",
            examples=["0,0,1,1"],
            pattern=BBOX_PATTERN,
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The id of the last event received: resume right after it.",
        ),
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            description="As the Last-Event-ID header, for clients that cannot set headers; "
            "the header wins when both are sent.",
        ),
    ] = None,
) -> StreamingResponse:
    if department not in DEPARTMENT_CODES:
        raise Problem(
            404,
            "Not found",
            f"No department {department!r}; codes are {', '.join(DEPARTMENT_CODES)}.",
            kind="department-not-found",
        )
    may_read = principal.role in (Role.OPERATOR, Role.ADMIN) or (
        principal.role is Role.DEPARTMENT and principal.department == department
    )
    if not may_read:
        raise Problem(
            403,
            "Forbidden",
            f"This credential may not read the {department} feed; use that department's key.",
            kind="forbidden",
        )
    resume_from = (last_event_id or last_event_id_query or "").strip()
    positions: dict[int, int] = {}
    if resume_from:
        try:
            positions = decode_cursor(resume_from, hub.partitions(department))
        except MalformedEventId as error:
            raise Problem(
                400,
                "Invalid Last-Event-ID",
                f"The Last-Event-ID is not one this feed hands out: {error}. Send the id of "
                "an event received, or none to start live.",
                kind="invalid-last-event-id",
            ) from error
    subscription = Subscription(
        department=department,
        event_types=frozenset(t.strip() for t in (types or "").split(",") if t.strip()),
        bbox=_parse_bbox(bbox) if bbox else None,
        credential_id=principal.credential_id,
        positions=positions,
    )
    if not slots.claim(principal.credential_id):
        raise Problem(
            429,
            "Too many streams",
            f"This credential already holds {slots.per_credential} feed streams; close one "
            "or use another credential.",
            kind="too-many-streams",
            headers={"Retry-After": str(STREAM_CAP_RETRY_AFTER_S)},
        )
    if not resume_from:
        hub.subscribe(subscription)  # live from this request on, before the body starts

    def close() -> None:
        hub.unsubscribe(subscription)
        slots.release(principal.credential_id)

    settings: Settings = request.app.state.infra.settings
    return FeedResponse(
        feed_events(
            hub=hub,
            subscription=subscription,
            replay=bool(resume_from),
            keepalive_seconds=settings.feed_keepalive_seconds,
            is_current=authenticator.is_current,
        ),
        on_close=close,
    )


@router.post(
    "/telemetry",
    status_code=202,
    summary="Batch ingest from a gateway (protobuf TelemetryBatch or JSON)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _BATCH_JSON_SCHEMA},
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def ingest(
    request: Request,
    principal: CurrentPrincipal,
    producer: ProducerDep,
    registry: RegistryDep,
    states: StatesDep,
) -> IngestAccepted:
    require_role(principal, Role.GATEWAY, Role.ADMIN)
    records = _decode_batch(request.headers.get("content-type", ""), await request.body())
    if len(records) > MAX_BATCH_RECORDS:
        raise Problem(
            413,
            "Batch too large",
            f"{len(records)} records exceed {MAX_BATCH_RECORDS}; split the batch.",
            kind="batch-too-large",
        )
    if principal.role is Role.GATEWAY and not principal.nest_id:
        raise Problem(
            403,
            "Forbidden",
            "This gateway credential is bound to no nest, so it may report no drone; ask an "
            "admin for one with a nest_id.",
            kind="forbidden",
        )
    foreign = _foreign_drones(principal, records, registry, states)
    if foreign:
        raise Problem(
            403,
            "Forbidden",
            f"Gateway of nest {principal.nest_id} may report only drones the registry places "
            f"at its nest (home or current nest), not: {', '.join(foreign)}.",
            kind="forbidden",
        )
    try:
        futures = [
            await producer.send(
                TELEMETRY_RAW,
                record.SerializeToString(),
                key=record.drone_id or None,
                ce_type=RAW_EVENT,
            )
            for record in records
        ]
        await asyncio.gather(*futures)
    except KafkaError as error:
        log.warning("telemetry ingest failed", extra={"error": repr(error)})
        raise Problem(
            503,
            "Broker unavailable",
            "The records could not be written to Kafka; retry the whole batch.",
            kind="broker-unavailable",
            headers={"Retry-After": "2"},
        ) from error
    log.info("telemetry ingested", extra={"records": len(records), "caller": principal.caller})
    return IngestAccepted(accepted=len(records))


def _decode_batch(content_type: str, body: bytes) -> list[telemetry_pb2.Telemetry]:
    media = content_type.split(";")[0].strip().lower()
    if media in (PROTOBUF, "application/protobuf"):
        try:
            return list(telemetry_pb2.TelemetryBatch.FromString(body).records)
        except Exception as error:
            raise Problem(
                400,
                "Malformed protobuf",
                f"The body is not a TelemetryBatch ({error}).",
                kind="malformed-protobuf",
            ) from error
    if media in ("application/json", ""):
        try:
            batch = TelemetryBatchIn.model_validate_json(body)
        except ValidationError as error:
            raise RequestValidationError(_at_body(error.errors())) from error
        return [record.to_proto() for record in batch.records]
    raise Problem(
        415,
        "Unsupported media type",
        f"Send application/json or {PROTOBUF}, not {media}.",
        kind="unsupported-media-type",
    )


def _at_body(errors: list[Any]) -> list[Any]:
    return [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors]


def _foreign_drones(
    principal: Principal,
    records: list[telemetry_pb2.Telemetry],
    registry: TopicView,
    states: TopicView,
) -> list[str]:
    """Drones a gateway may not report: neither registered to its nest nor last seen docked
    there (the accepted state's nest). What a record claims about its own nest is never
    trusted. Unknown drones are the stream's to reject."""
    if principal.role is not Role.GATEWAY:
        return []
    foreign: set[str] = set()
    for record in records:
        change: registry_pb2.RegistryChange | None = registry.items.get(record.drone_id)
        if change is None or not change.HasField("drone"):
            continue
        if change.drone.home_nest == principal.nest_id:
            continue
        state: drone_state_pb2.DroneState | None = states.items.get(record.drone_id)
        if state is None or state.nest_id != principal.nest_id:
            foreign.add(record.drone_id)
    return sorted(foreign)


def _parse_bbox(raw: str) -> tuple[float, float, float, float]:
    try:
        min_lon, min_lat, max_lon, max_lat = (float(part) for part in raw.split(","))
    except ValueError as error:
        raise Problem(
            400,
            "Invalid bbox",
            "bbox must be four numbers: min_lon,min_lat,max_lon,max_lat.",
            kind="invalid-bbox",
        ) from error
    return min_lon, min_lat, max_lon, max_lat
