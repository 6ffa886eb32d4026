"""A batch's live outputs: one state per drone on airgrid.drone.state and its position on the
feeds of the departments it serves, batched per partition and sent together."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from airgrid.bus import Producer, topic_name
from airgrid.config import Settings
from airgrid.topics import DEPARTMENT_CODES, DRONE_STATE, FEEDS, feed_topic
from airgrid.v1 import drone_state_pb2
from services.telemetry.batched_sends import PartitionedBatches
from services.telemetry.feed_routing import POSITION_ITEM, FeedRouting, position_item

STATE_EVENT = "airgrid.drone.state"


class StateOutputs:
    def __init__(self, settings: Settings, producer: Producer, routing: FeedRouting) -> None:
        self.routing = routing
        self._state_topic = topic_name(settings, DRONE_STATE)
        self._feed_topics = {
            code: topic_name(settings, feed_topic(code)) for code in DEPARTMENT_CODES
        }
        self._hot_topics = [self._state_topic, *self._feed_topics.values()]
        self._batches = PartitionedBatches(producer.raw)
        self._state_headers = [
            ("ce_specversion", b"1.0"),
            ("ce_source", producer.source.encode()),
            ("ce_type", STATE_EVENT.encode()),
            ("content-type", DRONE_STATE.content_type.encode()),
        ]
        self._position_headers = [
            ("ce_specversion", b"1.0"),
            ("ce_source", producer.source.encode()),
            ("ce_type", f"airgrid.feed.{POSITION_ITEM}".encode()),
            ("content-type", FEEDS[0].content_type.encode()),
        ]

    async def send(
        self, states: dict[str, drone_state_pb2.DroneState]
    ) -> list[asyncio.Future[Any]]:
        """Queues every state and position item; returns the futures of their acknowledgement."""
        await self._batches.know(self._hot_topics)
        ce_time = datetime.now(UTC).isoformat().encode()
        for state in states.values():
            self._add_state(state, ce_time)
            self._add_position_items(state, ce_time)
        return await self._batches.send()

    def _add_state(self, state: drone_state_pb2.DroneState, ce_time: bytes) -> None:
        """The state of one drone, keyed by drone id; the CloudEvents id is `<drone>:<seq>` (a
        replay repeats it, so readers that dedupe by ce_id drop it), the time the batch's."""
        headers = [
            *self._state_headers,
            ("ce_id", f"{state.drone_id}:{state.last_seq}".encode()),
            ("ce_time", ce_time),
        ]
        key = state.drone_id.encode()
        self._batches.add(self._state_topic, key, state.SerializeToString(), headers)

    def _add_position_items(self, state: drone_state_pb2.DroneState, ce_time: bytes) -> None:
        departments = self.routing.departments_of(state.mission_id)
        if not departments:
            return
        item = position_item(state)
        headers = [
            *self._position_headers,
            ("ce_id", f"{state.drone_id}:{state.last_seq}".encode()),
            ("ce_time", ce_time),
        ]
        key = state.drone_id.encode()
        for code in departments:
            self._batches.add(self._feed_topics[code], key, item, headers)
