"""The twin's telemetry out: on Kafka (airgrid.telemetry.raw), or batched per nest gateway to
POST /v1/telemetry with that gateway's credential. A record not sent is counted and logged;
it never stops the run."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from airgrid.bus import Producer
from airgrid.sim.physics import flight_mode_name
from airgrid.sim.sim_stats import SimStats
from airgrid.topics import TELEMETRY_RAW
from airgrid.v1 import telemetry_pb2

log = logging.getLogger("airgrid.sim")

TELEMETRY_CE_TYPE = "airgrid.telemetry"
HTTP_TIMEOUT_S = 10.0


class TelemetrySender:
    """Telemetry out on Kafka, or batched per nest gateway to POST /v1/telemetry."""

    def __init__(
        self,
        *,
        producer: Producer | None,
        url: str,
        gateway_keys: dict[str, str],
        home_nest: dict[str, str],
    ) -> None:
        self.producer = producer
        self.url = url
        self.gateway_keys = gateway_keys
        self.home_nest = home_nest
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self.producer is not None:
            await self.producer.start()
        else:
            self.client = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        if self.client is not None:
            await self.client.aclose()

    async def send(self, records: list[telemetry_pb2.Telemetry], stats: SimStats) -> None:
        if self.producer is not None:
            await self._send_kafka(self.producer, records, stats)
        elif self.client is not None:
            await self._send_http(self.client, records, stats)

    async def _send_kafka(
        self, producer: Producer, records: list[telemetry_pb2.Telemetry], stats: SimStats
    ) -> None:
        acks = []
        for record in records:
            try:
                acks.append(
                    await producer.send(
                        TELEMETRY_RAW,
                        record.SerializeToString(),
                        key=record.drone_id,
                        ce_type=TELEMETRY_CE_TYPE,
                        ce_id=f"{record.drone_id}-{record.seq}",
                    )
                )
            except Exception as error:
                stats.telemetry_failed += 1
                log.warning(
                    "telemetry not sent",
                    extra={"drone_id": record.drone_id, "error": repr(error)},
                )
        results = await asyncio.gather(*acks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        stats.telemetry_sent += len(results) - len(failed)
        stats.telemetry_failed += len(failed)
        if failed:
            log.warning(
                "telemetry not acknowledged",
                extra={"records": len(failed), "error": repr(failed[0])},
            )

    async def _send_http(
        self, client: httpx.AsyncClient, records: list[telemetry_pb2.Telemetry], stats: SimStats
    ) -> None:
        by_nest: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            nest = self.home_nest.get(record.drone_id, "")
            by_nest.setdefault(nest, []).append(_telemetry_json(record))
        for nest, batch in sorted(by_nest.items()):
            key = self.gateway_keys.get(nest)
            if key is None:
                stats.telemetry_failed += len(batch)
                continue
            try:
                response = await client.post(
                    self.url, json={"records": batch}, headers={"Authorization": f"Bearer {key}"}
                )
            except httpx.HTTPError as error:
                stats.telemetry_failed += len(batch)
                log.warning("telemetry post failed", extra={"nest_id": nest, "error": repr(error)})
                continue
            if response.status_code in (200, 202):
                stats.telemetry_sent += len(batch)
            else:
                stats.telemetry_failed += len(batch)
                log.warning(
                    "telemetry refused",
                    extra={"nest_id": nest, "status": response.status_code},
                )


def _telemetry_json(record: telemetry_pb2.Telemetry) -> dict[str, Any]:
    return {
        "drone_id": record.drone_id,
        "seq": record.seq,
        "event_time_ms": record.event_time_ms,
        "lon": record.lon,
        "lat": record.lat,
        "alt_m": record.alt_m,
        "ground_speed_mps": record.ground_speed_mps,
        "vertical_speed_mps": record.vertical_speed_mps,
        "heading_deg": record.heading_deg,
        "battery_pct": record.battery_pct,
        "flight_mode": flight_mode_name(record.flight_mode),
        "nest_id": record.nest_id,
        "mission_id": record.mission_id,
        "wind_mps": record.wind_mps,
        "faults": list(record.faults),
    }
