"""The clock of a simulated device: the twin's physics stepped every tick until `stop`.

Both simulators (MAVLink vehicle, DJI-style dock) fly by it and only decide what to report."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from airgrid.sim.physics import SimDrone, step

TICK_S = 0.1


async def flight_ticks(
    drone: SimDrone, stop: asyncio.Event, time_scale: float
) -> AsyncIterator[tuple[float, bool]]:
    """Step `drone` every TICK_S (at most 1 s of physics a tick, times `time_scale`) until
    `stop`; yield the loop time and whether the flight mode changed on that tick."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    mode = drone.mode
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)
        now = loop.time()
        step(drone, min(1.0, now - last) * time_scale)
        last = now
        changed, mode = drone.mode != mode, drone.mode
        yield now, changed
