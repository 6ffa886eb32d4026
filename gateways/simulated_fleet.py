"""The twin's drones speaking a device protocol: every drone of the chosen nests as a
simulated MAVLink vehicle or a simulated DJI-style dock, so a demo runs through a gateway.

Conventions, printed at start so the gateway can be started to match: MAVLink system ids
are 1, 2, ... in drone-id order; each DJI dock is `DOCK-<drone id>` at the drone's nest and
its aircraft's serial number is the drone id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from airgrid.reference import DroneSpec, NestSpec, load_reference
from gateways.simulated_dock import SimulatedDock
from gateways.simulated_mavlink import SimulatedMavlinkDrone


def drones_of(
    nest_ids: list[str], reference_data: Path | None = None
) -> list[tuple[DroneSpec, NestSpec]]:
    """The drones homed at the nests, in id order; a ValueError names an unknown nest."""
    reference = load_reference(reference_data)
    nests = {n.id: n for n in reference.nests}
    unknown = [n for n in nest_ids if n not in nests]
    if unknown:
        raise ValueError(f"unknown nest(s) {', '.join(unknown)}; see GET /v1/nests")
    return sorted(
        ((d, nests[d.home_nest]) for d in reference.drones if d.home_nest in nest_ids),
        key=lambda pair: pair[0].id,
    )


async def run_simulated(
    protocol: str,
    drones: list[tuple[DroneSpec, NestSpec]],
    *,
    target: tuple[str, int],
    topic_prefix: str = "",
    time_scale: float = 1.0,
    detections_per_minute: float = 0.0,
    seed: int = 1,
    echo: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Fly the drones until `stop` (or Ctrl-C); `target` is the gateway (MAVLink) or the
    MQTT broker. Each drone's detector is seeded from `seed` and its place in the list."""
    stop = stop or asyncio.Event()
    runs = []
    if protocol == "mavlink":
        pairs = []
        nests = {nest.id: (nest.lon, nest.lat) for _, nest in drones}
        for system_id, (spec, nest) in enumerate(drones, start=1):
            device = SimulatedMavlinkDrone(
                spec, nest, system_id=system_id, gateway=target, time_scale=time_scale,
                nests=nests, detections_per_minute=detections_per_minute,
                seed=seed * 10_000 + system_id,
            )  # fmt: skip
            runs.append(device.run(stop))
            pairs.append(f"--system {system_id}={spec.id}")
        echo(f"{len(runs)} MAVLink vehicles → udp://{target[0]}:{target[1]}; gateway options:")
        echo("  " + " ".join(pairs))
    elif protocol == "mqtt":
        docks = []
        for index, (spec, nest) in enumerate(drones, start=1):
            dock = SimulatedDock(
                spec,
                nest,
                dock_sn=f"DOCK-{spec.id}",
                aircraft_sn=spec.id,
                host=target[0],
                port=target[1],
                topic_prefix=topic_prefix,
                time_scale=time_scale,
                detections_per_minute=detections_per_minute,
                seed=seed * 10_000 + index,
            )
            runs.append(dock.run(stop))
            docks.append(f"--dock DOCK-{spec.id}={nest.id}")
        echo(f"{len(runs)} DJI-style docks on mqtt://{target[0]}:{target[1]}; gateway options:")
        echo("  " + " ".join(docks))
    else:
        raise ValueError(f"unknown protocol {protocol!r}; choose mavlink or mqtt")
    tasks = [asyncio.create_task(run) for run in runs]
    try:
        await stop.wait()
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
