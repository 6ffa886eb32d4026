"""The department feed as Server-Sent Events: who may read it, from where it resumes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from airgrid.auth import CurrentPrincipal, Role
from airgrid.config import Settings
from airgrid.problems import Problem
from airgrid.topics import DEPARTMENT_CODES
from services.telemetry.api_deps import AuthenticatorDep, BboxQuery, HubDep, SlotsDep, parse_bbox
from services.telemetry.feed_cursor import MalformedEventId, decode_cursor
from services.telemetry.feed_stream import FeedResponse, feed_events
from services.telemetry.feeds import Subscription

router = APIRouter(prefix="/v1", tags=["telemetry"])

STREAM_CAP_RETRY_AFTER_S = 5

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
    bbox: BboxQuery = None,
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
        bbox=parse_bbox(bbox) if bbox else None,
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
