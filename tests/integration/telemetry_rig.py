"""What the telemetry worker tests share: registered drones, cruising records, and a worker
with its own views, as one process would run it."""

from __future__ import annotations

import asyncio
import contextlib

from airgrid.bus import Producer, TopicView, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.topics import REGISTRY_CHANGES, TELEMETRY_RAW
from airgrid.v1 import registry_pb2, telemetry_pb2
from services.telemetry.feed_routing import FeedRouting, incident_view, mission_view
from services.telemetry.stream import TelemetryWorker
from services.telemetry.topic_views import registry_view, state_view

DEADLINE_S = 60.0


async def register_drones(producer: Producer, drones: list[str]) -> None:
    """Active drones of nest-a on the registry topic."""
    for drone_id in drones:
        change = registry_pb2.RegistryChange(
            entity_id=drone_id,
            version=1,
            drone=registry_pb2.Drone(id=drone_id, home_nest="nest-a", status="active"),
        )
        await producer.send(
            REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="test"
        )
    await producer.flush()


async def send_cruising(
    producer: Producer, drone_id: str, seq: int, at_ms: int, battery: float = 90.0
) -> None:
    value = telemetry_pb2.Telemetry(
        drone_id=drone_id,
        seq=seq,
        event_time_ms=at_ms,
        lon=121.4,
        lat=31.1,
        alt_m=80.0,
        battery_pct=battery,
        flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
    )
    await producer.send(TELEMETRY_RAW, value.SerializeToString(), key=drone_id, ce_type="test")


async def send_seqs(producer: Producer, drones: list[str], first_seq: int, last_seq: int) -> None:
    """Every drone's records `first_seq`..`last_seq`, in seq order, then flushed."""
    base = now_ms()
    for seq in range(first_seq, last_seq + 1):
        for drone_id in drones:
            await send_cruising(producer, drone_id, seq, base + seq)
    await producer.flush()


class RunningWorker:
    """One worker with its own views, as one process would have them."""

    def __init__(self, settings: Settings, producer: Producer) -> None:
        self.views: list[TopicView] = [
            registry_view(settings),
            state_view(settings),
            incident_view(settings),
            mission_view(settings),
        ]
        self.engine = create_engine(settings)
        self.worker = TelemetryWorker(
            settings=settings,
            producer=producer,
            registry=self.views[0],
            states=self.views[1],
            engine=self.engine,
            routing=FeedRouting(self.views[2], self.views[3]),
        )
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for view in self.views:
            await view.start()
        self.task = asyncio.create_task(self.worker.run(self.stop_event))

    def last_seq(self, drone_id: str) -> int:
        state = self.views[1].items.get(drone_id)
        return int(state.last_seq) if state is not None else 0

    async def stop(self) -> None:
        self.stop_event.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, DEADLINE_S)
        for view in self.views:
            await view.stop()
        await self.engine.dispose()
