"""The dispatch log on Kafka, read from the beginning and judged: the decisions, the drone
commands and the mission events dispatch published, and the checks that no slot, no mission
and no drone was given twice.

The database's unique indexes keep its own rows consistent whatever the worker does, so they
cannot show a decision or a command that went out twice; departments and gateways act on the
records, so the records are what is judged. Records are deduplicated on their `ce_id` header,
as every consumer does (SPEC §4): a record the outbox published twice is one record.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from airgrid.bus import client_options, header, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.topics import DISPATCH_DECISIONS, DRONE_COMMANDS, MISSION_EVENTS, Topic
from airgrid.v1 import command_pb2, dispatch_pb2, mission_pb2

logger = logging.getLogger("airgrid.chaos")

ASSIGNED = dispatch_pb2.DECISION_KIND_ASSIGNED
# Decisions that free a slot of their incident: it may be assigned again afterwards.
FREES_A_SLOT = (dispatch_pb2.DECISION_KIND_PREEMPTED, dispatch_pb2.DECISION_KIND_REDISPATCHED)
_ENDED = (
    mission_pb2.MISSION_STAGE_COMPLETED,
    mission_pb2.MISSION_STAGE_CANCELLED,
    mission_pb2.MISSION_STAGE_FAILED,
)
_SENT_OUT = (command_pb2.COMMAND_KIND_LAUNCH, command_pb2.COMMAND_KIND_GOTO)
_TOPICS: tuple[Topic, ...] = (DISPATCH_DECISIONS, DRONE_COMMANDS, MISSION_EVENTS)


@dataclass
class DispatchLog:
    """Each topic's records in partition order (a key's records keep their order), each
    `ce_id` once; decision_records counts the decision records read, duplicates included."""

    decisions: list[dispatch_pb2.DispatchDecision] = field(default_factory=list)
    commands: list[command_pb2.DroneCommand] = field(default_factory=list)
    mission_events: list[mission_pb2.MissionEvent] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # ce_ids read
    decision_records: int = 0

    def _first(self, ce_id: str | None) -> bool:
        """True unless this ce_id was read before (a record without one always counts)."""
        if ce_id is None:
            return True
        if ce_id in self.seen:
            return False
        self.seen.add(ce_id)
        return True

    def add_decision(self, value: bytes, ce_id: str | None = None) -> None:
        self.decision_records += 1
        if self._first(ce_id):
            self.decisions.append(dispatch_pb2.DispatchDecision.FromString(value))

    def add_command(self, value: bytes, ce_id: str | None = None) -> None:
        if self._first(ce_id):
            self.commands.append(command_pb2.DroneCommand.FromString(value))

    def add_mission_event(self, value: bytes, ce_id: str | None = None) -> None:
        if self._first(ce_id):
            self.mission_events.append(mission_pb2.MissionEvent.FromString(value))

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
            if d.kind == ASSIGNED
            for a in d.assignments
        }

    def active_missions(self) -> set[str]:
        ended = self.ended_ms()
        return {m for m in self.assigned() if m not in ended}


# -- the checks --------------------------------------------------------------------------------


def judge(log: DispatchLog) -> list[str]:
    """What breaks the guarantees; empty when they hold."""
    problems: list[str] = []
    ended = log.ended_ms()
    # One decision per slot: a mission is assigned once, and a slot's next mission comes
    # only after the previous one ended.
    decided: dict[str, int] = {}
    slots: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for d in log.decisions:
        if d.kind != ASSIGNED:
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
        if event.stage in _ENDED and event.mission_id not in end:
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


# -- reading -----------------------------------------------------------------------------------


def _adders(settings: Settings, log: DispatchLog) -> dict[str, Callable[[bytes, str | None], None]]:
    """Topic name (with the settings' prefix) -> how its records join the log."""
    return {
        topic_name(settings, DISPATCH_DECISIONS): log.add_decision,
        topic_name(settings, DRONE_COMMANDS): log.add_command,
        topic_name(settings, MISSION_EVENTS): log.add_mission_event,
    }


def _keep(
    adders: dict[str, Callable[[bytes, str | None], None]], record: ConsumerRecord[bytes, bytes]
) -> None:
    if record.value is not None:
        adders[record.topic](record.value, header(record, "ce_id"))


async def _assigned_from_start(
    settings: Settings, consumer: AIOKafkaConsumer
) -> list[TopicPartition] | None:
    """Every partition of the three topics, from offset 0; None while a topic is missing."""
    partitions: list[TopicPartition] = []
    for topic in _TOPICS:
        found = await topic_partitions(consumer, topic_name(settings, topic))
        if not found:
            return None
        partitions += found
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return partitions


async def read_dispatch_log(
    settings: Settings, timeout_s: float = 60.0, into: DispatchLog | None = None
) -> DispatchLog:
    """Every record now on the three topics (with the settings' prefix), from the start to
    the end offsets seen when reading begins, added to `into` (records it already holds, by
    ce_id, are skipped); TimeoutError when the end is not reached in `timeout_s`."""
    log = into if into is not None else DispatchLog()
    adders = _adders(settings, log)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await asyncio.wait_for(consumer.start(), timeout=30)
    try:
        partitions = await _assigned_from_start(settings, consumer)
        if partitions is None:
            raise LookupError("a dispatch topic does not exist")
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dispatch log did not read to its end: {pending}")
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        _keep(adders, record)
            # The position, not the last offset: control records of transactions take
            # offsets that no record carries.
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await asyncio.wait_for(consumer.stop(), 30)
    return log


class DispatchLogWatch:
    """Follows the three topics of a broker that will be replaced by an empty one (the fault
    suite's broker outage): what that broker held can only be read while it lives. `run`
    until the broker is stopped; read the replacement with read_dispatch_log(into=log)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = DispatchLog()

    async def run(self) -> None:
        adders = _adders(self.settings, self.log)
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
                            _keep(adders, record)
            except (KafkaError, OSError, TimeoutError) as error:
                logger.debug("dispatch log watch reconnecting", extra={"error": repr(error)})
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), timeout=10)
