"""The dispatch log on Kafka, read from the beginning and judged: one assignment per slot at a
time, and no drone commanded to a second mission before its first one ended.

The database's unique indexes keep its own rows consistent whatever the worker does, so they
cannot show a decision or a command that went out twice; departments and gateways act on the
records, so the records are what is judged. Records are deduplicated on their `ce_id` header,
as every consumer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from airgrid.bus import client_options, header, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.topics import DISPATCH_DECISIONS, DRONE_COMMANDS, MISSION_EVENTS, Topic
from airgrid.v1 import command_pb2, dispatch_pb2, mission_pb2

logger = logging.getLogger("airgrid.chaos")

_ENDED = (
    mission_pb2.MISSION_STAGE_COMPLETED,
    mission_pb2.MISSION_STAGE_CANCELLED,
    mission_pb2.MISSION_STAGE_FAILED,
)
_SENT_OUT = (command_pb2.COMMAND_KIND_LAUNCH, command_pb2.COMMAND_KIND_GOTO)


@dataclass
class DispatchLog:
    """Each topic's records in partition order (a key's records keep their order)."""

    decisions: list[dispatch_pb2.DispatchDecision] = field(default_factory=list)
    commands: list[command_pb2.DroneCommand] = field(default_factory=list)
    mission_events: list[mission_pb2.MissionEvent] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # ce_ids read

    def ended_ms(self) -> dict[str, int]:
        """When each ended mission ended (its first terminal stage)."""
        ended: dict[str, int] = {}
        for event in self.mission_events:
            if event.stage in _ENDED:
                ended.setdefault(event.mission_id, event.event_time_ms)
        return ended

    def assigned(self) -> dict[str, tuple[str, int, str]]:
        """Mission id -> (incident id, slot, drone id) of every assignment decision."""
        return {
            a.mission_id: (d.incident_id, a.slot, a.drone_id)
            for d in self.decisions
            if d.kind == dispatch_pb2.DECISION_KIND_ASSIGNED
            for a in d.assignments
        }

    def active_missions(self) -> set[str]:
        ended = self.ended_ms()
        return {m for m in self.assigned() if m not in ended}


def judge(log: DispatchLog) -> list[str]:
    """What breaks the guarantees; empty when they hold."""
    problems: list[str] = []
    ended = log.ended_ms()
    # One decision per slot: a mission is assigned once, and a slot's next mission comes
    # only after the previous one ended.
    decided: dict[str, int] = {}
    slots: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for d in log.decisions:
        if d.kind != dispatch_pb2.DECISION_KIND_ASSIGNED:
            continue
        for a in d.assignments:
            if a.mission_id in decided:
                problems.append(f"mission {a.mission_id} assigned by two decisions")
                continue
            decided[a.mission_id] = d.decided_time_ms
            slots.setdefault((d.incident_id, a.slot), []).append((a.mission_id, d.decided_time_ms))
    for (incident_id, slot), missions in sorted(slots.items()):
        for (before, _), (after, at) in pairwise(missions):
            if before not in ended or ended[before] > at:
                problems.append(
                    f"slot {slot} of {incident_id}: {after} assigned while {before} still flies"
                )
    # No drone commanded to two missions at once: each drone's next mission is sent only
    # after the previous one ended.
    sent: dict[str, list[tuple[str, int]]] = {}
    for c in log.commands:
        if c.kind not in _SENT_OUT or not c.mission_id:
            continue
        missions = sent.setdefault(c.drone_id, [])
        if not missions or missions[-1][0] != c.mission_id:
            missions.append((c.mission_id, c.issued_time_ms))
    for drone_id, missions in sorted(sent.items()):
        seen: set[str] = set()
        for (before, _), (after, at) in pairwise(missions):
            if before not in ended or ended[before] > at:
                problems.append(f"{drone_id} sent on {after} while still on {before}")
        for mission_id, _ in missions:
            if mission_id in seen:
                problems.append(f"{drone_id} sent back to the mission {mission_id}")
            seen.add(mission_id)
    return problems


def _readers(
    settings: Settings, log: DispatchLog
) -> dict[str, tuple[Callable[[bytes], Any], list[Any]]]:
    return {
        topic_name(settings, DISPATCH_DECISIONS): (
            dispatch_pb2.DispatchDecision.FromString,
            log.decisions,
        ),
        topic_name(settings, DRONE_COMMANDS): (command_pb2.DroneCommand.FromString, log.commands),
        topic_name(settings, MISSION_EVENTS): (
            mission_pb2.MissionEvent.FromString,
            log.mission_events,
        ),
    }


def _keep(log: DispatchLog, readers: dict[str, Any], record: ConsumerRecord[Any, Any]) -> None:
    ce_id = header(record, "ce_id")
    if ce_id is not None:
        if ce_id in log.seen:
            return
        log.seen.add(ce_id)
    if record.value is not None:
        decode, into = readers[record.topic]
        into.append(decode(record.value))


async def _assigned_from_start(
    settings: Settings, consumer: AIOKafkaConsumer
) -> list[TopicPartition] | None:
    """Every partition of the three topics, from offset 0; None while a topic is missing."""
    partitions: list[TopicPartition] = []
    topics: list[Topic] = [DISPATCH_DECISIONS, DRONE_COMMANDS, MISSION_EVENTS]
    for topic in topics:
        name = topic_name(settings, topic)
        found = await topic_partitions(consumer, name)
        if not found:
            return None
        partitions += found
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return partitions


async def read_dispatch_log(
    settings: Settings, timeout_s: float = 60.0, into: DispatchLog | None = None
) -> DispatchLog:
    """Every record now on the three topics (with the settings' prefix), from the start,
    added to `into` (records it already holds, by ce_id, are skipped)."""
    log = into if into is not None else DispatchLog()
    readers = _readers(settings, log)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await asyncio.wait_for(consumer.start(), timeout=30)
    try:
        partitions = await _assigned_from_start(settings, consumer)
        assert partitions is not None, "a dispatch topic does not exist"
        pending = {tp: end for tp, end in (await consumer.end_offsets(partitions)).items() if end}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dispatch log did not read to its end: {pending}")
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    _keep(log, readers, record)
                if tp in pending and records and records[-1].offset + 1 >= pending[tp]:
                    del pending[tp]
    finally:
        await consumer.stop()
    return log


class DispatchLogWatch:
    """Follows the three topics of a broker that will be replaced by an empty one (the fault
    suite's broker outage): what that broker held can only be read while it lives. `run`
    until the broker is stopped; read the replacement with read_dispatch_log(into=log)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = DispatchLog()

    async def run(self) -> None:
        readers = _readers(self.settings, self.log)
        while True:
            consumer = AIOKafkaConsumer(
                **client_options(self.settings), group_id=None, enable_auto_commit=False
            )
            try:
                await asyncio.wait_for(consumer.start(), timeout=10)
                if await _assigned_from_start(self.settings, consumer) is None:
                    await asyncio.sleep(1.0)
                    continue
                while True:
                    batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                    for records in batches.values():
                        for record in records:
                            _keep(self.log, readers, record)
            except (KafkaError, OSError, TimeoutError) as error:
                logger.debug("dispatch log watch reconnecting", extra={"error": repr(error)})
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), timeout=10)
