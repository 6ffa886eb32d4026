"""Chaos drones: a few registered drones flying outside a no-fly zone, each sending 1 Hz
telemetry to `airgrid.telemetry.raw` as a gateway would (records the broker does not take are
kept and sent again, in order, once it is back), and the real conditions injected on them.

The drones are registered in `maintenance` status at their own offline nest, so dispatch
never assigns them and they do not change the incident outcomes of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from airgrid.bus import client_options, cloudevent_headers, now_ms, topic_name
from airgrid.config import Settings
from airgrid.topics import TELEMETRY_RAW
from airgrid.v1 import telemetry_pb2
from loadtests.chaos.alert_rule import KINDS, Condition

log = logging.getLogger("airgrid.chaos")

NEST_ID = "chaos-nest"
FENCE_ID = "chaos-no-fly"
# In the zone (the registry refuses positions outside it), away from the incident load
# (114.40-114.46, 30.48).
NEST = (114.300, 30.520)
CRUISE = (114.305, 30.525)
FENCE = [(114.299, 30.519), (114.303, 30.519), (114.303, 30.523), (114.299, 30.523)]
INSIDE_FENCE = (114.301, 30.521)
GOOD_BATTERY_PCT = 80.0
LOW_BATTERY_PCT = 10.0  # the default threshold is 25 %
PENDING_LIMIT = 50_000


@dataclass
class ChaosDrone:
    drone_id: str
    seq: int = 0
    silent: bool = False
    low_battery: bool = False
    in_fence: bool = False
    condition: str | None = None

    def record(self, event_ms: int) -> telemetry_pb2.Telemetry:
        self.seq += 1
        lon, lat = INSIDE_FENCE if self.in_fence else CRUISE
        return telemetry_pb2.Telemetry(
            drone_id=self.drone_id,
            seq=self.seq,
            event_time_ms=event_ms,
            lon=lon,
            lat=lat,
            alt_m=80.0,
            ground_speed_mps=0.5,
            heading_deg=90.0,
            battery_pct=LOW_BATTERY_PCT if self.low_battery else GOOD_BATTERY_PCT,
            flight_mode=telemetry_pb2.FLIGHT_MODE_HOVERING,
            nest_id=NEST_ID,
            wind_mps=2.0,
        )


async def register_fleet(registry_url: str, admin_key: str, count: int) -> list[str]:
    """The nest, the no-fly zone and `count` drones, through the registry API."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    ids = [f"chaos-{n:03d}" for n in range(count)]
    ring = [[lon, lat] for lon, lat in [*FENCE, FENCE[0]]]
    async with httpx.AsyncClient(base_url=registry_url, headers=headers, timeout=20) as client:
        r = await client.post(
            "/v1/nests",
            json={
                "id": NEST_ID,
                "name": "chaos nest",
                "location": {"type": "Point", "coordinates": list(NEST)},
                "charging_slots": 64,
                "status": "offline",
            },
        )
        r.raise_for_status()
        r = await client.post(
            "/v1/geofences",
            json={
                "id": FENCE_ID,
                "name": "chaos no-fly zone",
                "kind": "no-fly",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            },
        )
        r.raise_for_status()
        for drone_id in ids:
            r = await client.post(
                "/v1/drones",
                json={
                    "id": drone_id,
                    "model": "chaos-quad",
                    "home_nest": NEST_ID,
                    "cruise_speed_mps": 10,
                    "max_speed_mps": 15,
                    "endurance_s": 1800,
                    "status": "maintenance",
                },
            )
            r.raise_for_status()
    return ids


class ChaosFleet:
    """Sends telemetry for every drone that is not silent, once a second."""

    def __init__(self, settings: Settings, drone_ids: list[str]) -> None:
        self.settings = settings
        self.drones = {drone_id: ChaosDrone(drone_id) for drone_id in drone_ids}
        self.conditions: list[Condition] = []
        self.sent = 0
        self.failed_sends = 0
        self._pending: deque[telemetry_pb2.Telemetry] = deque()
        self._producer: AIOKafkaProducer | None = None
        self._topic = topic_name(settings, TELEMETRY_RAW)

    @property
    def control_drone(self) -> str:
        """The last drone: it never gets a condition (inject takes them in order)."""
        return list(self.drones)[-1]

    @property
    def pending(self) -> int:
        return len(self._pending)

    def inject(self, kind: str, phase: str) -> Condition:
        """The next drone without a condition gets this one, from now on."""
        assert kind in KINDS, kind
        drone = next(d for d in self.drones.values() if d.condition is None and not d.silent)
        drone.condition = kind
        if kind == "link_lost":
            drone.silent = True
        elif kind == "low_battery":
            drone.low_battery = True
        else:
            drone.in_fence = True
        condition = Condition(drone.drone_id, kind, phase, now_ms())
        self.conditions.append(condition)
        return condition

    def inject_all(self, phase: str) -> None:
        for kind in KINDS:
            self.inject(kind, phase)

    async def run(self) -> None:
        try:
            while True:
                event_ms = now_ms()
                for drone in self.drones.values():
                    if not drone.silent:
                        self._pending.append(drone.record(event_ms))
                while len(self._pending) > PENDING_LIMIT:
                    self._pending.popleft()
                await self._flush()
                await asyncio.sleep(1.0)
        finally:
            await self._close()

    async def _flush(self) -> None:
        if not self._pending:
            return
        try:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **client_options(self.settings), acks="all", request_timeout_ms=5_000
                )
                try:
                    await asyncio.wait_for(producer.start(), timeout=5)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            batch = list(self._pending)
            futures = []
            for record in batch:
                headers = cloudevent_headers(
                    ce_type="airgrid.telemetry",
                    source="chaos-fleet",
                    content_type="application/x-protobuf",
                    ce_id=f"{record.drone_id}:{record.seq}",
                )
                futures.append(
                    await self._producer.send(
                        self._topic,
                        record.SerializeToString(),
                        key=record.drone_id.encode(),
                        headers=headers,
                    )
                )
            await asyncio.wait_for(asyncio.gather(*futures), timeout=10)
            for _ in batch:
                self._pending.popleft()
            self.sent += len(batch)
        except (KafkaError, OSError, TimeoutError) as error:
            # Kept and sent again (same seq, same ce_id): the worker drops what it already has.
            self.failed_sends += 1
            log.debug("chaos telemetry not sent", extra={"error": repr(error)})
            await self._close()

    async def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=5)
