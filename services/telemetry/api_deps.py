"""What the telemetry routers take from a request: the app's views, producer, engine and feed
hub as dependencies, and the bounding-box query parameter."""

from __future__ import annotations

import enum
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.auth import Authenticator
from airgrid.bus import Producer, TopicView, now_ms
from airgrid.problems import Problem
from airgrid.topics import DEPARTMENT_CODES
from services.telemetry.feed_stream import StreamSlots
from services.telemetry.feeds import FeedHub

# The departments as an enum of the document, so a filter names one of them or is refused.
DepartmentCode = enum.StrEnum("DepartmentCode", {code: code for code in DEPARTMENT_CODES})  # type: ignore[misc]

# Four decimal numbers; what they mean is the parser's (parse_bbox) to check.
BBOX_PATTERN = r"^-?[0-9]+(\.[0-9]+)?(,-?[0-9]+(\.[0-9]+)?){3}$"


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


def _slots(request: Request) -> StreamSlots:
    slots: StreamSlots = request.app.state.feed_slots
    return slots


def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
HubDep = Annotated[FeedHub, Depends(_hub)]
StatesDep = Annotated[TopicView, Depends(_states)]
HeardSinceDep = Annotated[int, Depends(_heard_since_ms)]
RegistryDep = Annotated[TopicView, Depends(_registry)]
ProducerDep = Annotated[Producer, Depends(_producer)]
SlotsDep = Annotated[StreamSlots, Depends(_slots)]
AuthenticatorDep = Annotated[Authenticator, Depends(_authenticator)]
BboxQuery = Annotated[
    str | None,
    Query(
        description="min_lon,min_lat,max_lon,max_lat",
        examples=["0,0,1,1"],
        pattern=BBOX_PATTERN,
    ),
]


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
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
