"""Integration: the telemetry service across a broker replaced by an EMPTY one on the same
port (Tansu keeps its data in memory), as `make chaos` does, on a broker of this module's own
so that stopping it disturbs no other test.

The state view (behind `GET /v1/drones/{id}/state`) is read again from the beginning of the
new log, so a new record shows at once, not when the new log grows past the old offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
import pytest
from prometheus_client import REGISTRY

from airgrid.bus import Producer, ensure_topics
from airgrid.config import Settings
from airgrid.topics import DRONE_STATE, feed_topic
from airgrid.v1 import drone_state_pb2
from services.telemetry.feeds import FeedHub, Subscription
from services.telemetry.topic_views import state_view
from services.telemetry.view_recovery import ViewRecovery
from tests.eventually import until
from tests.integration.conftest import ReplaceableBroker

pytestmark = pytest.mark.integration

DEADLINE_S = 90.0


async def send_states(producer: Producer, seqs: Iterable[int]) -> None:
    """Live states of drone d1 with these seqs, flushed."""
    for seq in seqs:
        state = drone_state_pb2.DroneState(drone_id="d1", last_seq=seq)
        await producer.send(DRONE_STATE, state.SerializeToString(), key="d1", ce_type="test")
    await producer.flush()


def counted(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_the_state_view_reads_the_new_log_of_an_empty_broker_from_its_beginning(
    settings: Settings, replaceable_broker: ReplaceableBroker
) -> None:
    broker = replaceable_broker
    private = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    await ensure_topics(private)
    producer = Producer(private, source="airgrid/test")
    await producer.start()
    # 300 states of one drone: the view's position on its partition ends at offset 300.
    await send_states(producer, range(1, 301))
    view = state_view(private)
    await view.start()
    recovery = ViewRecovery(private, [view], period_seconds=0.5, grace_seconds=2.0)
    watching = asyncio.create_task(recovery.run())
    rereads = counted("airgrid_telemetry_views_reread_total")
    try:
        await until(
            lambda: "d1" in view.items and view.items["d1"].last_seq == 300, DEADLINE_S, "view"
        )
        await asyncio.wait_for(recovery.watching.wait(), DEADLINE_S)
        broker.stop()
        broker.start_empty()
        # The new log holds a handful of records, far below the old offset 300.
        seq = 1_000
        while view.items["d1"].last_seq < 1_000:
            seq += 1
            state = drone_state_pb2.DroneState(drone_id="d1", last_seq=seq)
            try:
                await producer.send_and_wait(
                    DRONE_STATE, state.SerializeToString(), key="d1", ce_type="test"
                )
            except Exception:  # the producer reconnects to the new broker
                seq -= 1
            assert seq < 1_000 + DEADLINE_S, "the view never read the new broker's log"
            await asyncio.sleep(0.5)
        assert counted("airgrid_telemetry_views_reread_total") > rereads
        assert view.items["d1"].last_seq <= seq < 1_300  # read long before offset 300
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await view.stop()
        await producer.stop()


async def test_a_department_feed_subscriber_hears_new_events_after_an_empty_broker(
    settings: Settings, replaceable_broker: ReplaceableBroker
) -> None:
    """The feed hub (behind the SSE endpoints) reads from the end of each feed topic; after an
    empty broker it reads the new log from its beginning, and a subscriber connected across
    the loss hears the first event published after it."""
    broker = replaceable_broker
    private = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    await ensure_topics(private)
    producer = Producer(private, source="airgrid/test")
    await producer.start()
    fire = feed_topic("fire")

    async def publish(n: int) -> None:
        body = orjson.dumps({"type": "state", "n": n})
        await producer.send_and_wait(fire, body, key="d1", ce_type="test")

    async def hear(n: int) -> None:
        """Until the event `n` (the hub may also pass on older ones it read)."""
        while (
            orjson.loads((await asyncio.wait_for(listener.queue.get(), DEADLINE_S)).data)["n"] != n
        ):
            pass

    for n in range(50):  # the hub's position on the old log ends far past the new log's end
        await producer.send(fire, orjson.dumps({"type": "state", "n": n}), key="d1", ce_type="test")
    # Some live state too: the watch sees the loss where a partition's end went backwards.
    await send_states(producer, range(1, 11))
    hub = FeedHub(private)
    await hub.start()
    listener = Subscription(department="fire", event_types=frozenset(), bbox=None)
    hub.subscribe(listener)
    state = state_view(private)
    await state.start()
    await until(lambda: "d1" in state.items, DEADLINE_S, "the live state")
    recovery = ViewRecovery(
        private, [state], also=[hub.read_new_log], period_seconds=0.5, grace_seconds=2.0
    )
    watching = asyncio.create_task(recovery.run())
    rereads = counted("airgrid_telemetry_views_reread_total")
    try:
        await publish(1_000)
        await hear(1_000)
        await asyncio.wait_for(recovery.watching.wait(), DEADLINE_S)
        broker.stop()
        broker.start_empty()
        await until(
            lambda: counted("airgrid_telemetry_views_reread_total") > rereads,
            DEADLINE_S,
            "the recovery after the empty broker",
        )
        await publish(2_000)
        await hear(2_000)
        assert not listener.dropped
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await state.stop()
        await hub.stop()
        await producer.stop()
