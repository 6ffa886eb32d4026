"""The dispatch core's calls run in a worker thread, so the event loop keeps answering.

A core call can take seconds when registry data makes it rebuild what it sizes from that data:
the run cards of every response cell for every nest, the detour graph of every pair of no-fly
vertices, the coverage grid's reach. On the event loop those seconds would stall HTTP
(/healthz, /readyz, incidents), Kafka heartbeats and the writer lock's watch. In a thread the
loop keeps its turns: the thread gives up the GIL at every switch interval, and numpy releases
it in its array passes.

The core is still touched by one call at a time: the owner task awaits each call before the
next, and a cancelled owner waits for the call in flight to finish. Readers on the loop (the
/metrics collector, GET /v1/coverage) copy the core's dicts before walking them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.dispatch.domain.model import Decision

Job = Callable[[], list[Decision] | Awaitable[list[Decision]]]
T = TypeVar("T")


async def run_job(job: Job) -> list[Decision]:
    """A job's decisions: its call runs in a worker thread; when the call returns an
    awaitable (a job that reads the database first), that is awaited on the loop."""
    found = await in_thread(job)
    if isinstance(found, list):
        return found
    return await found


async def in_thread(call: Callable[[], T]) -> T:
    """call() in a worker thread. A cancellation waits for the call to finish before it is
    raised, so that no later call on the same core overlaps it."""
    future = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise
