"""Kafka telemetry generator: every drone of the reference fleet, docked at its nest, reporting
on `airgrid.telemetry.raw` at a chosen rate (nominal: 0.5 Hz docked; SPEC §7).

    python -m loadtests.telemetry_generator --hz 5 --seconds 600

Connects like any airgrid process (AIRGRID_KAFKA_BOOTSTRAP, AIRGRID_TOPIC_PREFIX). Prints the
records sent and acknowledged per second."""

from __future__ import annotations

import argparse
import asyncio
import time

from airgrid.bus import Producer, now_ms
from airgrid.config import Settings, get_settings
from airgrid.reference import load_reference
from airgrid.topics import TELEMETRY_RAW
from airgrid.v1 import telemetry_pb2


async def generate(settings: Settings, hz: float, seconds: float, stop: asyncio.Event) -> int:
    """Send `hz` records per drone per second for `seconds`; returns the acknowledged count."""
    reference = load_reference(settings.reference_data)
    nests = {n.id: n for n in reference.nests}
    producer = Producer(settings, source="airgrid/telemetry-generator")
    await producer.start()
    seq = dict.fromkeys((d.id for d in reference.drones), int(time.time() * 1000))
    acknowledged = 0
    pending: list[asyncio.Future[object]] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not stop.is_set():
            tick = time.monotonic()
            for drone in reference.drones:
                nest = nests[drone.home_nest]
                seq[drone.id] += 1
                record = telemetry_pb2.Telemetry(
                    drone_id=drone.id,
                    seq=seq[drone.id],
                    event_time_ms=now_ms(),
                    lon=nest.lon,
                    lat=nest.lat,
                    battery_pct=95.0,
                    flight_mode=telemetry_pb2.FLIGHT_MODE_DOCKED,
                    nest_id=nest.id,
                )
                pending.append(
                    await producer.send(
                        TELEMETRY_RAW,
                        record.SerializeToString(),
                        key=drone.id,
                        ce_type="airgrid.telemetry.recorded",
                    )
                )
            for future in pending:
                await future
                acknowledged += 1
            pending.clear()
            await asyncio.sleep(max(0.0, 1.0 / hz - (time.monotonic() - tick)))
    finally:
        await producer.stop()
    return acknowledged


def main() -> None:
    parser = argparse.ArgumentParser(description="airgrid telemetry generator")
    parser.add_argument("--hz", type=float, default=0.5, help="records per drone per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    started = time.monotonic()
    sent = asyncio.run(generate(get_settings(), args.hz, args.seconds, asyncio.Event()))
    elapsed = time.monotonic() - started
    print(f"{sent} records acknowledged in {elapsed:.0f} s ({sent / elapsed:.0f}/s)")


if __name__ == "__main__":
    main()
