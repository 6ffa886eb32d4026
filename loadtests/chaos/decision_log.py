"""What dispatch told the world, read back from Kafka: the decisions and mission events of a run,
and the checks that no slot and no drone was given twice.

Consumers deduplicate on `ce_id` (SPEC §4), so a record the outbox published twice is one
decision; the checks run on what remains. They read the topics, not the database, whose
constraints would hide a duplicate that reached the log.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from airgrid.bus import client_options, header, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.topics import DISPATCH_DECISIONS, MISSION_EVENTS, Topic
from airgrid.v1 import dispatch_pb2, mission_pb2

ASSIGNED = dispatch_pb2.DECISION_KIND_ASSIGNED
# Decisions that free a slot of their incident: it may be assigned again afterwards.
FREES_A_SLOT = (dispatch_pb2.DECISION_KIND_PREEMPTED, dispatch_pb2.DECISION_KIND_REDISPATCHED)
MISSION_ENDS = (
    mission_pb2.MISSION_STAGE_COMPLETED,
    mission_pb2.MISSION_STAGE_CANCELLED,
    mission_pb2.MISSION_STAGE_FAILED,
)


@dataclass(frozen=True)
class Logged:
    """One record of a topic: its CloudEvents id and its decoded value."""

    ce_id: str
    partition: int
    offset: int
    value: bytes


async def read_topic(settings: Settings, topic: Topic, timeout: float = 60.0) -> list[Logged]:
    """Every record of `topic` from the beginning to the end offsets seen at the start, in
    offset order per partition; TimeoutError when the end is not reached in `timeout` s."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        name = topic_name(settings, topic)
        partitions = await topic_partitions(consumer, name)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        rows: list[ConsumerRecord[bytes, bytes]] = []
        pending = {tp for tp in partitions if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not read to its end within {timeout:.0f} s")
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for batch in batches.values():
                rows.extend(batch)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        end_of = {tp.partition: end for tp, end in ends.items()}
        return [
            Logged(header(r, "ce_id") or "", r.partition, r.offset, r.value or b"")
            for r in rows
            if r.offset < end_of[r.partition]
        ]
    finally:
        await asyncio.wait_for(consumer.stop(), 30)


def unique(records: Iterable[Logged]) -> list[Logged]:
    """The first record of each `ce_id`, as a deduplicating consumer keeps them."""
    seen: set[str] = set()
    kept = []
    for record in records:
        if record.ce_id in seen:
            continue
        seen.add(record.ce_id)
        kept.append(record)
    return kept


def decisions_of(records: Iterable[Logged]) -> list[dispatch_pb2.DispatchDecision]:
    return [dispatch_pb2.DispatchDecision.FromString(r.value) for r in unique(records)]


def double_assignments(decisions: Iterable[dispatch_pb2.DispatchDecision]) -> list[str]:
    """Each slot given twice, read in log order (per incident the log is ordered: the
    incident id is the key). A slot may be given again only after a decision that frees a
    slot of that incident (preempted, re-dispatched); a mission id may appear only once."""
    filled: dict[str, set[int]] = defaultdict(set)
    freed: dict[str, int] = defaultdict(int)
    missions: set[str] = set()
    found: list[str] = []
    for decision in decisions:
        incident = decision.incident_id
        if decision.kind in FREES_A_SLOT:
            freed[incident] += 1
        if decision.kind != ASSIGNED:
            continue
        for a in decision.assignments:
            if a.mission_id in missions:
                found.append(f"mission {a.mission_id} assigned twice")
            missions.add(a.mission_id)
            if a.slot in filled[incident]:
                if freed[incident] > 0:
                    freed[incident] -= 1
                else:
                    found.append(f"incident {incident} slot {a.slot} assigned twice")
            filled[incident].add(a.slot)
    return found


def drones_twice(
    decisions: Iterable[dispatch_pb2.DispatchDecision],
    events: Iterable[mission_pb2.MissionEvent],
) -> list[str]:
    """Drones holding two missions at once: each mission lasts from its assignment decision
    to the first event that ends it (dispatch stamps both with its own clock), and a drone's
    missions must not overlap."""
    start: dict[str, tuple[str, int]] = {}
    for decision in decisions:
        if decision.kind == ASSIGNED:
            for a in decision.assignments:
                start.setdefault(a.mission_id, (a.drone_id, decision.decided_time_ms))
    end: dict[str, int] = {}
    for event in events:
        if event.stage in MISSION_ENDS and event.mission_id not in end:
            end[event.mission_id] = event.event_time_ms
    by_drone: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for mission_id, (drone_id, began) in start.items():
        by_drone[drone_id].append((began, end.get(mission_id, 2**62), mission_id))
    found = []
    for drone_id, spans in sorted(by_drone.items()):
        spans.sort()
        for (_, ended, previous), (began, _, mission_id) in itertools.pairwise(spans):
            if began < ended:
                found.append(f"drone {drone_id}: mission {mission_id} while {previous} was on")
    return found


async def read_decisions(settings: Settings) -> list[dispatch_pb2.DispatchDecision]:
    return decisions_of(await read_topic(settings, DISPATCH_DECISIONS))


async def read_mission_events(settings: Settings) -> list[mission_pb2.MissionEvent]:
    records = unique(await read_topic(settings, MISSION_EVENTS))
    return [mission_pb2.MissionEvent.FromString(r.value) for r in records]
