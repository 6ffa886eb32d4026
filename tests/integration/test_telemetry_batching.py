"""Integration: one batch of raw records through the real worker, broker and PostgreSQL:
live state and feed positions are conflated per drone, the track keeps every record, and a
replayed batch writes no track point twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from airgrid.bus import (
    Producer,
    TopicView,
    client_options,
    ensure_topics,
    now_ms,
    topic_name,
    topic_partitions,
)
from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.topics import (
    ALERTS,
    DRONE_STATE,
    INCIDENTS,
    MISSION_EVENTS,
    REGISTRY_CHANGES,
    TELEMETRY_RAW,
    feed_topic,
)
from airgrid.v1 import (
    alert_pb2,
    drone_state_pb2,
    incident_pb2,
    mission_pb2,
    registry_pb2,
    telemetry_pb2,
)
from services.telemetry.feed_routing import FeedRouting, incident_view, mission_view
from services.telemetry.models import track_points
from services.telemetry.stream import TelemetryWorker
from services.telemetry.topic_views import registry_view, state_view
from tests.integration.telemetry_rig import register_drones

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0


@dataclass
class Rig:
    settings: Settings
    producer: Producer
    worker: TelemetryWorker
    views: list[TopicView]


@pytest.fixture
async def rig(fresh_prefix: Settings) -> AsyncIterator[Rig]:
    settings = fresh_prefix
    await ensure_topics(settings)
    producer = Producer(settings, source="airgrid/test")
    await producer.start()
    views = [
        registry_view(settings),
        state_view(settings),
        incident_view(settings),
        mission_view(settings),
    ]
    engine = create_engine(settings)
    worker = TelemetryWorker(
        settings=settings,
        producer=producer,
        registry=views[0],
        states=views[1],
        engine=engine,
        routing=FeedRouting(views[2], views[3]),
    )
    try:
        yield Rig(settings, producer, worker, views)
    finally:
        for view in views:
            await view.stop()
        await producer.stop()
        await engine.dispose()


async def read_all(
    settings: Settings, topic: str, expected: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the beginning, once at least `expected` arrived."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < expected:
            assert time.monotonic() < deadline, f"{len(records)} of {expected} from {topic}"
            batches = await consumer.getmany(timeout_ms=200)
            records.extend(r for batch in batches.values() for r in batch)
        await asyncio.sleep(0.3)  # nothing more than expected arrives
        batches = await consumer.getmany(timeout_ms=200)
        records.extend(r for batch in batches.values() for r in batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def test_a_batch_publishes_the_newest_state_per_drone_and_tracks_every_record(
    rig: Rig,
) -> None:
    settings, producer = rig.settings, rig.producer
    run = uuid.uuid4().hex[:6]
    flying, docked = f"dr-f-{run}", f"dr-d-{run}"
    await register_drones(producer, [flying, docked])
    incident = incident_pb2.IncidentEvent(
        accepted=incident_pb2.Incident(id=f"inc-{run}", department="fire")
    )
    await producer.send_and_wait(
        INCIDENTS, incident.SerializeToString(), key=f"inc-{run}", ce_type="test"
    )
    mission = mission_pb2.MissionEvent(
        mission_id=f"m-{run}", incident_id=f"inc-{run}", drone_id=flying
    )
    await producer.send_and_wait(
        MISSION_EVENTS, mission.SerializeToString(), key=f"m-{run}", ce_type="test"
    )
    for view in rig.views:
        await view.start()
    for view in rig.views:
        await asyncio.wait_for(view.caught_up.wait(), DEADLINE_S)

    base = now_ms()
    values = []
    for seq in range(1, 6):
        values.append(
            telemetry_pb2.Telemetry(
                drone_id=flying,
                seq=seq,
                event_time_ms=base + seq * 200,
                lon=121.4 + seq * 1e-4,
                lat=31.1,
                alt_m=80.0,
                battery_pct=90.0 - seq,
                flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
                mission_id=f"m-{run}",
                # Only the second record names the nest: conflation must not lose it.
                nest_id="nest-b" if seq == 2 else "",
            )
        )
    values.append(
        telemetry_pb2.Telemetry(
            drone_id=docked,
            seq=1,
            event_time_ms=base,
            lon=121.5,
            lat=31.2,
            battery_pct=100.0,
            flight_mode=telemetry_pb2.FLIGHT_MODE_DOCKED,
            nest_id="nest-a",
        )
    )
    for value in values:
        await producer.send(
            TELEMETRY_RAW, value.SerializeToString(), key=value.drone_id, ce_type="test"
        )
    await producer.flush()
    raw = await read_all(settings, topic_name(settings, TELEMETRY_RAW), len(values))
    assert len(raw) == len(values)

    await rig.worker.handle(raw)

    states = await read_all(settings, topic_name(settings, DRONE_STATE), 2)
    published = [drone_state_pb2.DroneState.FromString(r.value or b"") for r in states]
    assert sorted((s.drone_id, s.last_seq) for s in published) == [(docked, 1), (flying, 5)]
    newest = next(s for s in published if s.drone_id == flying)
    assert newest.battery_pct == 85.0
    assert newest.nest_id == "nest-b"
    assert dict(states[0].headers)["ce_type"] == b"airgrid.drone.state"
    ce_ids = {dict(r.headers)["ce_id"] for r in states}
    assert ce_ids == {f"{flying}:5".encode(), f"{docked}:1".encode()}

    feed = await read_all(settings, topic_name(settings, feed_topic("fire")), 1)
    items = [orjson.loads(r.value or b"") for r in feed]
    assert [(i["type"], i["drone_id"], i["seq"]) for i in items] == [("drone.position", flying, 5)]

    async def track() -> list[tuple[str, int]]:
        async with rig.worker.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(track_points.c.drone_id, track_points.c.seq).where(
                    track_points.c.drone_id.in_([flying, docked])
                )
            )
            return sorted((r.drone_id, r.seq) for r in rows)

    expected_track = [(docked, 1), *((flying, seq) for seq in range(1, 6))]
    assert await track() == expected_track

    # The same batch again (a replay after a crash, new worker memory): every record is now a
    # duplicate or out of order, the track keeps one row per seq, and nothing reaches state.
    replay = TelemetryWorker(
        settings=settings,
        producer=producer,
        registry=rig.views[0],
        states=rig.views[1],
        engine=rig.worker.engine,
        routing=rig.worker.routing,
    )
    deadline = time.monotonic() + DEADLINE_S
    while rig.views[1].items.get(flying) is None or rig.views[1].items[flying].last_seq != 5:
        assert time.monotonic() < deadline, "the state view did not catch up"
        await asyncio.sleep(0.1)
    await replay.handle(raw)
    assert await track() == expected_track
    again = await read_all(settings, topic_name(settings, DRONE_STATE), 2)
    assert len(again) == 2


ZONE = [(121.50, 31.20), (121.52, 31.20), (121.52, 31.22), (121.50, 31.22)]


async def test_a_no_fly_zone_added_while_running_applies_to_the_next_batch(rig: Rig) -> None:
    """The worker re-reads the zones after a registry change, not on a timer: a zone published
    while the worker runs catches the next record inside it."""
    settings, producer = rig.settings, rig.producer
    run = uuid.uuid4().hex[:6]
    drone = f"dr-z-{run}"
    await register_drones(producer, [drone])
    for view in rig.views:
        await view.start()
    for view in rig.views:
        await asyncio.wait_for(view.caught_up.wait(), DEADLINE_S)
    base = now_ms()

    def inside(seq: int) -> telemetry_pb2.Telemetry:
        return telemetry_pb2.Telemetry(
            drone_id=drone,
            seq=seq,
            event_time_ms=base + seq * 200,
            lon=121.51,
            lat=31.21,
            alt_m=80.0,
            battery_pct=90.0,
            flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
        )

    await producer.send_and_wait(
        TELEMETRY_RAW, inside(1).SerializeToString(), key=drone, ce_type="test"
    )
    first = await read_all(settings, topic_name(settings, TELEMETRY_RAW), 1)
    await rig.worker.handle(first)  # no zone yet: no breach

    fence_id = f"nfz-{run}"
    fence = registry_pb2.RegistryChange(
        entity_id=fence_id,
        version=1,
        geofence=registry_pb2.Geofence(
            id=fence_id,
            kind="no-fly",
            ring_lon=[p[0] for p in ZONE],
            ring_lat=[p[1] for p in ZONE],
        ),
    )
    await producer.send_and_wait(
        REGISTRY_CHANGES, fence.SerializeToString(), key=fence_id, ce_type="test"
    )
    deadline = time.monotonic() + DEADLINE_S
    while fence_id not in rig.views[0].items:
        assert time.monotonic() < deadline, "the registry view did not see the zone"
        await asyncio.sleep(0.05)
    await producer.send_and_wait(
        TELEMETRY_RAW, inside(2).SerializeToString(), key=drone, ce_type="test"
    )
    raw = await read_all(settings, topic_name(settings, TELEMETRY_RAW), 2)
    await rig.worker.handle([r for r in raw if r.offset not in {x.offset for x in first}])

    alerts = await read_all(settings, topic_name(settings, ALERTS), 1)
    breaches = [alert_pb2.Alert.FromString(r.value or b"") for r in alerts]
    assert [(a.kind, a.drone_id, a.subject_id, a.active) for a in breaches] == [
        (alert_pb2.ALERT_KIND_GEOFENCE_BREACH, drone, fence_id, True)
    ]
