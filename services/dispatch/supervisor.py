"""Supervision of the dispatch worker: a run that ends or fails for any reason but shutdown is
logged, counted and started again after a bounded exponential back-off, and readiness says
where the worker stands meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from airgrid.bus import BrokerUnavailable
from airgrid.service_app import is_database_down
from airgrid.worker_runs import RunEnded, cancelled_by_owner
from services.dispatch.metrics import RESTARTS, WRITING

log = logging.getLogger("airgrid.dispatch")


class WorkerStatus:
    """Where the worker stands, for /readyz: "ok" while it decides (or stands by for another
    writer), otherwise what it is doing instead."""

    def __init__(self) -> None:
        self.state = "starting"
        self.ready = False

    def set(self, state: str, *, ready: bool) -> None:
        self.state = state
        self.ready = ready

    def check(self) -> str:
        return "ok" if self.ready else self.state


@dataclass
class Backoff:
    """Bounded exponential back-off; a run that lasted `stable_after` seconds starts it over."""

    first: float = 0.5
    limit: float = 30.0
    stable_after: float = 60.0
    failures: int = 0

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self.stable_after:
            self.failures = 0
        self.failures += 1
        return float(min(self.limit, self.first * 2 ** (self.failures - 1)))


def cause_of(error: BaseException) -> str:
    if isinstance(error, RunEnded):
        return error.cause
    if isinstance(error, asyncio.CancelledError):
        return "stray_cancel"
    if is_database_down(error):
        return "database"
    if isinstance(error, KafkaError | BrokerUnavailable):
        return "broker"
    return "error"


async def supervise(
    run_once: Callable[[], Awaitable[None]],
    status: WorkerStatus,
    *,
    name: str,
    backoff: Backoff | None = None,
) -> None:
    """Run `run_once` for ever: whenever it returns or raises (a stray CancelledError too),
    log why, mark not ready, count the restart, back off, and run it again. Only the
    cancellation of this task itself (shutdown) ends the loop."""
    backoff = backoff or Backoff()
    while True:
        started = time.monotonic()
        error: BaseException
        try:
            await run_once()
            error = RunEnded("ended", f"the {name} run returned")
        except asyncio.CancelledError as cancelled:
            if cancelled_by_owner():
                raise
            error = cancelled
        except Exception as failure:
            error = failure
        WRITING.set(0)
        cause = cause_of(error)
        delay = backoff.next_delay(time.monotonic() - started)
        RESTARTS.labels(cause).inc()
        why = str(error) or type(error).__name__
        status.set(f"restarting in {delay:.1f} s ({cause}: {why})", ready=False)
        log.error(
            f"{name} stopped; starting it again",
            exc_info=None if isinstance(error, RunEnded) else error,
            extra={"cause": cause, "reason": why, "retry_in_s": delay},
        )
        await asyncio.sleep(delay)
