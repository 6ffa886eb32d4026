"""What the inspection tests share: registered drones and scenarios on the registry topic,
detections as a gateway posts them, and a reader of a whole topic from its beginning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from airgrid.bus import (
    REASON_HEADER,
    Producer,
    client_options,
    now_ms,
    topic_name,
    topic_partitions,
)
from airgrid.config import Settings
from airgrid.reference import load_reference
from airgrid.topics import REGISTRY_CHANGES, Topic
from airgrid.v1 import registry_pb2
from tests.eventually import eventually

DEADLINE_S = 60.0
SHA = "ab" * 32
CENTRE = load_reference().zone.centre


async def register_drone(producer: Producer, drone_id: str, nest: str) -> None:
    change = registry_pb2.RegistryChange(
        entity_id=drone_id,
        version=1,
        changed_time_ms=now_ms(),
        drone=registry_pb2.Drone(id=drone_id, home_nest=nest, status="active"),
    )
    await producer.send_and_wait(
        REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="test.registry"
    )


async def register_scenarios(producer: Producer) -> None:
    """The reference zone's scenario catalogue, as the registry publishes it."""
    for spec in load_reference().scenarios:
        scenario = registry_pb2.Scenario(
            code=spec.code,
            name=spec.name,
            departments=list(spec.departments),
            severity=spec.severity,
            merge_radius_m=spec.merge_radius_m,
            merge_window_s=spec.merge_window_s,
        )
        if spec.escalation is not None:
            scenario.escalation.CopyFrom(
                registry_pb2.EscalationRule(
                    min_confidence=spec.escalation.min_confidence,
                    incident_type=spec.escalation.incident_type,
                    priority=spec.escalation.priority,
                )
            )
        key = f"scenario:{spec.code}"
        change = registry_pb2.RegistryChange(
            entity_id=key, version=1, changed_time_ms=now_ms(), scenario=scenario
        )
        await producer.send_and_wait(
            REGISTRY_CHANGES, change.SerializeToString(), key=key, ce_type="test.registry"
        )


def detection(
    detection_id: str,
    drone_id: str,
    *,
    scenario: str = "smoke",
    confidence: float = 0.7,
    lon: float = CENTRE[0],
    lat: float = CENTRE[1],
    observed_time_ms: int | None = None,
    sha256: str = SHA,
    uri: str = "s3://media/1.jpg",
) -> dict[str, Any]:
    return {
        "id": detection_id,
        "drone_id": drone_id,
        "scenario": scenario,
        "confidence": confidence,
        "lon": lon,
        "lat": lat,
        "observed_time_ms": observed_time_ms if observed_time_ms is not None else now_ms(),
        "media": {"uri": uri, "sha256": sha256},
    }


@dataclass
class Read:
    key: str
    value: bytes
    headers: dict[str, bytes]

    @property
    def reason(self) -> str:
        return self.headers.get(REASON_HEADER, b"").decode()


async def read_topic(settings: Settings, topic: Topic, *, until: Any) -> list[Read]:
    """Every record of the topic from its beginning, once `until(records)` holds."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, topic),
        **client_options(settings),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    rows: list[Read] = []
    try:

        async def collect() -> bool | None:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    rows.append(Read(key, record.value or b"", dict(record.headers)))
            return True if until(rows) else None

        await eventually(collect, DEADLINE_S, f"records on {topic.name}")
    finally:
        await consumer.stop()
    return rows


async def topic_size(settings: Settings, topic: Topic) -> int:
    """How many records the topic holds: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None)
    await consumer.start()
    try:
        name = topic_name(settings, topic)
        partitions = await topic_partitions(consumer, name)

        async def ends() -> int | None:
            try:
                offsets: dict[Any, int] = await consumer.end_offsets(partitions)
                return sum(offsets.values())
            except KafkaError:  # the first request may go before the node is ready
                return None

        return await eventually(ends, DEADLINE_S, f"the end offsets of {topic.name}")
    finally:
        await consumer.stop()
