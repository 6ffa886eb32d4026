"""A small fleet that really flies: the reference drones of a few nests, stepped by the twin's
physics, obeying `airgrid.drone.commands` and reporting in batches to `POST /v1/telemetry`
with each nest's gateway credential.

Every record of a batch answered 202 is kept (drone id, seq): the telemetry service promised
it, so it must be in the drone's track. Batches that are refused or get no answer are counted
and not sent again; the next reports follow at the nominal rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import defaultdict

import httpx
from aiokafka import ConsumerRecord

from airgrid.bus import ConsumerSpec, SeenIds, header, now_ms, run_batches, start_group_consumer
from airgrid.config import Settings
from airgrid.reference import ReferenceData, load_reference
from airgrid.sim.fleet import Fleet
from airgrid.topics import DRONE_COMMANDS, PROTOBUF
from airgrid.v1 import command_pb2, telemetry_pb2

log = logging.getLogger("airgrid.chaos")

TICK_S = 0.2
# The twin's physics takes no step longer than this, so a stalled loop never teleports.
MAX_STEP_S = 1.0
HTTP_TIMEOUT_S = 5.0
COMMANDS_GROUP = "airgrid-flying-fleet"


def fleet_of(nest_ids: list[str], reference: ReferenceData | None = None) -> ReferenceData:
    """The reference zone reduced to these nests and the drones housed there."""
    reference = reference or load_reference()
    wanted = set(nest_ids)
    return dataclasses.replace(
        reference,
        nests=tuple(n for n in reference.nests if n.id in wanted),
        drones=tuple(d for d in reference.drones if d.home_nest in wanted),
    )


@dataclasses.dataclass
class FleetCounters:
    batches_acked: int = 0
    records_acked: int = 0
    batches_failed: int = 0
    commands_applied: int = 0
    commands_ignored: int = 0
    launches: int = 0


class FlyingFleet:
    """Flies `zone`'s drones until cancelled; `acked` holds the acknowledged seqs per drone
    and `ack_times` the monotonic time of every 202."""

    def __init__(
        self,
        settings: Settings,
        telemetry_url: str,
        gateway_keys: dict[str, str],
        zone: ReferenceData,
    ) -> None:
        self.settings = settings
        self.url = f"{telemetry_url.rstrip('/')}/v1/telemetry"
        self.gateway_keys = gateway_keys
        started = now_ms()
        self.fleet = Fleet(zone, start_ms=started, seq_base=started)
        self.home_nest = {d.id: d.home_nest for d in zone.drones}
        self.acked: dict[str, set[int]] = defaultdict(set)
        self.ack_times: list[float] = []
        self.failure_times: list[float] = []
        self.counters = FleetCounters()
        self._seen = SeenIds(capacity=50_000)

    @property
    def drone_ids(self) -> list[str]:
        return list(self.fleet.drones)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._fly(), name="flying-fleet-telemetry")
            tasks.create_task(self._obey(), name="flying-fleet-commands")

    # -- telemetry out -------------------------------------------------------------------------

    async def _fly(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            while True:
                await asyncio.sleep(TICK_S)
                now = loop.time()
                dt, last = min(MAX_STEP_S, now - last), now
                records = self.fleet.tick(now_ms(), dt)
                by_nest: dict[str, list[telemetry_pb2.Telemetry]] = defaultdict(list)
                for record in records:
                    by_nest[self.home_nest[record.drone_id]].append(record)
                await asyncio.gather(
                    *(self._post(client, nest, batch) for nest, batch in by_nest.items())
                )

    async def _post(
        self, client: httpx.AsyncClient, nest: str, records: list[telemetry_pb2.Telemetry]
    ) -> None:
        batch = telemetry_pb2.TelemetryBatch(records=records)
        try:
            response = await client.post(
                self.url,
                content=batch.SerializeToString(),
                headers={
                    "Authorization": f"Bearer {self.gateway_keys[nest]}",
                    "Content-Type": PROTOBUF,
                },
            )
        except httpx.HTTPError as error:
            self._failed(nest, repr(error))
            return
        if response.status_code != 202:
            self._failed(nest, f"HTTP {response.status_code}")
            return
        for record in records:
            self.acked[record.drone_id].add(record.seq)
        self.counters.batches_acked += 1
        self.counters.records_acked += len(records)
        self.ack_times.append(time.monotonic())

    def _failed(self, nest: str, why: str) -> None:
        self.counters.batches_failed += 1
        self.failure_times.append(time.monotonic())
        log.debug("flying fleet batch not acknowledged", extra={"nest_id": nest, "error": why})

    # -- commands in ---------------------------------------------------------------------------

    async def _obey(self) -> None:
        """Consumes the drone commands; a consumer that fails is started anew (the broker's
        outage ends it), and commands seen before are applied once only."""
        spec = ConsumerSpec(topics=[DRONE_COMMANDS], group_id=COMMANDS_GROUP, fetch_max_wait_ms=50)
        while True:
            try:
                consumer = await start_group_consumer(self.settings, spec)
            except Exception as error:
                log.debug("flying fleet command consumer not started", extra={"e": repr(error)})
                await asyncio.sleep(1.0)
                continue
            try:
                await run_batches(consumer, self._apply, spec=spec, name="flying-fleet")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.debug("flying fleet command consumer ended", extra={"e": repr(error)})
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 10)

    async def _apply(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            command = command_pb2.DroneCommand()
            try:
                command.ParseFromString(record.value or b"")
            except Exception:
                self.counters.commands_ignored += 1
                continue
            command_id = command.command_id or header(record, "ce_id") or ""
            if command.drone_id not in self.home_nest or self._seen.contains(command_id):
                continue
            self._seen.remember(command_id)
            was_airborne = self.fleet.drones[command.drone_id].airborne
            if self.fleet.apply(command):
                self.counters.commands_applied += 1
                if not was_airborne and self.fleet.drones[command.drone_id].airborne:
                    self.counters.launches += 1
            else:
                self.counters.commands_ignored += 1
