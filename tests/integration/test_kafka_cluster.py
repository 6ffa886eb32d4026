"""airgrid on a one-node Apache Kafka cluster: topics as declared, compaction, a librdkafka
department client in a consumer group."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from confluent_kafka import Consumer

from airgrid.bus import Producer, client_options, ensure_topics, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.servers.kafka import KafkaCluster
from airgrid.topics import ALL_TOPICS, DRONE_STATE, feed_topic
from airgrid.v1 import drone_state_pb2
from services.telemetry.topic_views import state_view
from tests import kafka_fixtures
from tests.eventually import eventually, until

pytestmark = pytest.mark.integration

kafka_one = kafka_fixtures.kafka_one


async def _topic_configs(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for error_code, _message, _type, name, entries in response.resources:
            assert error_code == 0, f"describe_configs({name}) failed: {error_code}"
            configs[name] = {entry[0]: entry[1] for entry in entries}
    return configs


async def _partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


async def test_ensure_topics_creates_every_declared_topic_with_its_configs(
    kafka_one: KafkaCluster,
) -> None:
    settings = kafka_fixtures.kafka_settings(kafka_one)

    created = await ensure_topics(settings)

    names = [topic_name(settings, t) for t in ALL_TOPICS]
    assert sorted(created) == sorted(names)
    counts = await _partition_counts(settings, names)
    assert counts == {topic_name(settings, t): t.partitions for t in ALL_TOPICS}
    configs = await _topic_configs(settings, names)
    for topic in ALL_TOPICS:
        actual = configs[topic_name(settings, topic)]
        for key, value in topic.configs.items():
            assert actual[key] == value, f"{topic.name}: {key}={actual[key]}, declared {value}"
    for compacted in ("airgrid.drone.state", "airgrid.registry.changes"):
        assert configs[f"{settings.topic_prefix}{compacted}"]["cleanup.policy"] == "compact"
    assert configs[f"{settings.topic_prefix}airgrid.telemetry.raw"]["cleanup.policy"] == "delete"
    # A second start-up finds them all and creates nothing.
    assert await ensure_topics(settings) == []


async def _read_all(settings: Settings, name: str) -> list[Any]:
    """Every record of topic `name` from the beginning up to its current end."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, name)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, batch in batches.items():
                records.extend(batch)
                if batch and batch[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return records
    finally:
        await consumer.stop()


DRONES = 12
UPDATES = 150


async def test_compaction_keeps_the_latest_state_per_drone_and_the_view_rebuilds_it(
    kafka_one: KafkaCluster,
) -> None:
    settings = kafka_fixtures.kafka_settings(kafka_one)
    # airgrid.drone.state as declared, with segments that roll and clean within seconds.
    fast = dataclasses.replace(
        DRONE_STATE,
        partitions=3,
        configs={
            **DRONE_STATE.configs,
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "100",
            "min.compaction.lag.ms": "0",
        },
    )
    await ensure_topics(settings, [fast])
    name = topic_name(settings, DRONE_STATE)
    producer = Producer(settings, source="test")
    await producer.start()
    latest: dict[str, drone_state_pb2.DroneState] = {}
    try:
        for update in range(UPDATES):
            futures = []
            for d in range(DRONES):
                state = drone_state_pb2.DroneState(
                    drone_id=f"drone-{d:03d}",
                    last_seq=update,
                    battery_pct=100.0 - update * 0.5,
                    lon=114.4 + d * 0.001,
                    lat=30.5,
                )
                latest[state.drone_id] = state
                futures.append(
                    await producer.send(
                        DRONE_STATE,
                        state.SerializeToString(),
                        key=state.drone_id,
                        ce_type="airgrid.drone.state",
                    )
                )
            for future in futures:
                await future
    finally:
        await producer.stop()
    written = DRONES * UPDATES

    async def compacted() -> list[Any] | None:
        records = await _read_all(settings, name)
        return records if len(records) < written / 2 else None

    records = await eventually(
        compacted, timeout=150, what="the log cleaner to compact the topic", every=2.0
    )

    last_by_key: dict[str, drone_state_pb2.DroneState] = {}
    for record in records:
        last_by_key[record.key.decode()] = drone_state_pb2.DroneState.FromString(record.value)
    assert last_by_key == latest
    # The telemetry service's state view, started after compaction, holds exactly that.
    view = state_view(settings)
    await view.start()
    try:
        await until(view.caught_up.is_set, timeout=60, what="the state view to catch up")
        assert view.items == latest
    finally:
        await view.stop()


def _member(settings: Settings, group: str, topic: str) -> tuple[Consumer, set[int]]:
    """A department's librdkafka consumer; the set holds its current partitions."""
    assigned: set[int] = set()

    def on_assign(_consumer: Consumer, partitions: list[Any]) -> None:
        assigned.clear()
        assigned.update(p.partition for p in partitions)

    def on_revoke(_consumer: Consumer, _partitions: list[Any]) -> None:
        assigned.clear()

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": 10_000,
        }
    )
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    return consumer, assigned


async def test_a_department_consumer_group_on_librdkafka_reads_its_feed_and_splits_it(
    kafka_one: KafkaCluster,
) -> None:
    settings = kafka_fixtures.kafka_settings(kafka_one)
    fire = feed_topic("fire")
    await ensure_topics(settings, [fire])
    name = topic_name(settings, fire)
    items = [{"type": "incident.updated", "incident_id": f"inc-{i}", "seq": i} for i in range(30)]
    producer = Producer(settings, source="test")
    await producer.start()
    try:
        for item in items:
            await producer.send_and_wait(
                fire, json.dumps(item).encode(), key=item["incident_id"], ce_type=item["type"]
            )
    finally:
        await producer.stop()

    group = f"{settings.topic_prefix}fire-dispatch-room"
    first, first_parts = _member(settings, group, name)
    second: Consumer | None = None
    try:
        received: list[dict[str, Any]] = []

        def first_reads_all() -> bool:
            message = first.poll(0.2)
            if message is not None and message.error() is None:
                received.append(json.loads(message.value() or b"null"))
            return len(received) == len(items)

        await until(first_reads_all, timeout=60, what="the first member to read the feed")
        assert sorted(r["seq"] for r in received) == list(range(len(items)))
        assert first_parts == {0, 1, 2}

        second, second_parts = _member(settings, group, name)
        member = second

        def split() -> bool:
            first.poll(0.1)
            member.poll(0.1)
            return (
                bool(first_parts)
                and bool(second_parts)
                and not first_parts & second_parts
                and first_parts | second_parts == {0, 1, 2}
            )

        await until(split, timeout=90, what="the two members to split the partitions")
    finally:
        first.close()
        if second is not None:
            second.close()
