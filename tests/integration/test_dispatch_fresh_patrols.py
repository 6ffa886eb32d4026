"""Freshness-driven patrols through the real broker and PostgreSQL: an inspection plan on
airgrid.registry.changes sends the patrol over the plan's overdue cells, not along the
lawn-mower route."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from airgrid.bus import Producer, client_options, ensure_topics, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.geo import point_in_polygon
from airgrid.topics import DRONE_COMMANDS, REGISTRY_CHANGES
from airgrid.v1 import command_pb2, registry_pb2
from services.dispatch.app import build_app
from services.dispatch.domain.rebalance import PatrolPolicy
from tests.databases import database_of_its_own
from tests.eventually import eventually
from tests.integration.test_dispatch_flow import FLEET, NEST, publish_fleet

pytestmark = pytest.mark.integration

# An area east-north-east of the nest, about 800 m square and 1.5 km away.
CENTRE = (NEST.lon + 0.015, NEST.lat + 0.006)
HALF = 0.004
RING = [
    (CENTRE[0] - HALF, CENTRE[1] - HALF),
    (CENTRE[0] + HALF, CENTRE[1] - HALF),
    (CENTRE[0] + HALF, CENTRE[1] + HALF),
    (CENTRE[0] - HALF, CENTRE[1] + HALF),
    (CENTRE[0] - HALF, CENTRE[1] - HALF),
]


async def publish_plan(settings: Settings) -> None:
    plan = registry_pb2.InspectionPlan(
        id="fresh-1", name="east roofs", department="fire", kind="area",
        ring_lon=[p[0] for p in RING], ring_lat=[p[1] for p in RING], revisit_interval_s=1200,
    )  # fmt: skip
    producer = Producer(settings, source="tests")
    await producer.start()
    try:
        change = registry_pb2.RegistryChange(
            entity_id="inspection-plan:fresh-1", inspection_plan=plan
        )
        await producer.send(
            REGISTRY_CHANGES,
            change.SerializeToString(),
            key="inspection-plan:fresh-1",
            ce_type="airgrid.registry.inspection_plan",
        )
        await producer.flush()
    finally:
        await producer.stop()


async def first_patrol_launch(settings: Settings) -> command_pb2.DroneCommand:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic_name(settings, DRONE_COMMANDS))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        fleet = {d.id for d in FLEET}

        async def check() -> command_pb2.DroneCommand | None:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    command = command_pb2.DroneCommand.FromString(record.value or b"")
                    if (
                        command.kind == command_pb2.COMMAND_KIND_LAUNCH
                        and command.drone_id in fleet
                    ):
                        return command
            return None

        return await eventually(check, 90, "a patrol LAUNCH command")
    finally:
        await consumer.stop()


async def test_a_patrol_flies_over_the_overdue_plan_area(settings: Settings) -> None:
    # A database of its own: no patrol starts while an incident waits, and dispatch restores
    # every open incident it finds, other tests' too.
    async with database_of_its_own(
        settings.model_copy(
            update={"topic_prefix": f"fp{uuid.uuid4().hex[:8]}.", "patrol_keep_docked": 1}
        ),
        "patrols",
    ) as s:
        await _patrol_over_the_plan(s)


async def _patrol_over_the_plan(s: Settings) -> None:
    await ensure_topics(s)
    await publish_fleet(s)
    await publish_plan(s)
    app = build_app(s)
    async with app.router.lifespan_context(app):
        # Two drones are not a fleet the default budget lets patrol; the rule under test is
        # where the sortie goes, not how many start.
        app.state.worker.coverage.patrol_policy = PatrolPolicy(enabled=False)
        launch = await first_patrol_launch(s)
    path = list(zip(launch.path_lon, launch.path_lat, strict=True))
    assert path, "a patrol launch carries its route"
    assert all(point_in_polygon(lon, lat, RING) for lon, lat in path), path
