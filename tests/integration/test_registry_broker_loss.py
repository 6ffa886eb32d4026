"""Integration: the registry across a broker replaced by an EMPTY one on the same port. The
registry publishes its whole content again, so a consumer that starts reading the new log
(a dispatch or telemetry worker started after the loss) gets every drone without waiting for
the next registry change or a registry restart."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from airgrid.bus import TopicView, ensure_topics
from airgrid.config import Settings
from airgrid.topics import REGISTRY_CHANGES
from airgrid.v1 import registry_pb2
from tests.eventually import until
from tests.integration.conftest import ReplaceableBroker
from tests.integration.registry_rig import running_registry

pytestmark = pytest.mark.integration

DEADLINE_S = 90.0
REFERENCE_DRONES = 186


async def wait_for_the_fleet(settings: Settings, what: str) -> None:
    """A consumer that starts at the beginning of the topic's log sees every reference
    drone."""
    view = TopicView(settings, REGISTRY_CHANGES, registry_pb2.RegistryChange.FromString)
    await view.start()
    try:
        await until(
            lambda: sum(1 for c in view.items.values() if c.HasField("drone")) >= REFERENCE_DRONES,
            DEADLINE_S,
            what,
        )
    finally:
        await view.stop()


async def test_the_registry_publishes_itself_again_to_a_broker_that_lost_its_data(
    settings: Settings, replaceable_broker: ReplaceableBroker
) -> None:
    private = settings.model_copy(
        update={
            "kafka_bootstrap": replaceable_broker.bootstrap,
            "topic_prefix": f"rl{uuid.uuid4().hex[:8]}.",
        }
    )
    await ensure_topics(private)
    republished = REGISTRY.get_sample_value("airgrid_registry_snapshots_republished_total") or 0
    async with running_registry(private) as (app, _client):
        await wait_for_the_fleet(private, "the start-up snapshot on the first broker")
        await asyncio.wait_for(app.state.broker_watching.wait(), DEADLINE_S)
        replaceable_broker.stop()
        replaceable_broker.start_empty()

        def again() -> bool:
            count = REGISTRY.get_sample_value("airgrid_registry_snapshots_republished_total")
            return (count or 0) > republished

        await until(again, DEADLINE_S, "the registry to notice the empty broker")
        # a consumer that starts on the new log
        await wait_for_the_fleet(private, "every drone on the new broker")
