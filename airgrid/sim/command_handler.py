"""The twin's drone commands in: each command from airgrid.drone.commands applied to the fleet
once per command id; undecodable, repeated or stale commands are counted and skipped."""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord

from airgrid.bus import SeenIds, header, now_ms
from airgrid.sim.fleet import Fleet
from airgrid.sim.sim_stats import SimStats
from airgrid.v1 import command_pb2

log = logging.getLogger("airgrid.sim")

# Commands older than this (a first run reading the topic's history) are not flown.
MAX_COMMAND_AGE_S = 300.0


class CommandHandler:
    """Applies each batch of drone commands to the fleet, once per command id."""

    def __init__(self, fleet: Fleet, stats: SimStats) -> None:
        self.fleet = fleet
        self.stats = stats
        self.seen = SeenIds(capacity=50_000)

    async def __call__(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            self.handle(record)

    def handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.stats.commands_received += 1
        command = command_pb2.DroneCommand()
        try:
            command.ParseFromString(record.value or b"")
        except Exception:
            self.stats.commands_ignored += 1
            log.warning(
                "undecodable drone command skipped",
                extra={"partition": record.partition, "offset": record.offset},
            )
            return
        command_id = command.command_id or header(record, "ce_id")
        if self.seen.contains(command_id):
            self.stats.commands_ignored += 1
            return
        self.seen.remember(command_id)
        context = {
            "drone_id": command.drone_id,
            "mission_id": command.mission_id,
            "command": command_pb2.CommandKind.Name(command.kind)
            if command.kind in command_pb2.CommandKind.values()
            else str(command.kind),
        }
        age_s = (now_ms() - command.issued_time_ms) / 1000 if command.issued_time_ms else 0.0
        if age_s > MAX_COMMAND_AGE_S:
            self.stats.commands_ignored += 1
            log.info("stale drone command skipped", extra={**context, "age_s": round(age_s)})
            return
        if self.fleet.apply(command):
            self.stats.commands_applied += 1
            log.info("drone command applied", extra=context)
        else:
            self.stats.commands_ignored += 1
            log.info("drone command does not apply", extra=context)
