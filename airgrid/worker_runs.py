"""How a long-running worker's run ends, and how it stops its Kafka clients without that
clean-up ending it: shared by the dispatch and telemetry workers and the broker watch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

log = logging.getLogger("airgrid.worker")


class RunEnded(RuntimeError):
    """A run of the worker has to end; `cause` is the bounded label of the restart counter."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


def cancelled_by_owner() -> bool:
    """True when this task itself is being cancelled (shutdown), as opposed to a
    CancelledError that escaped from a library's internal task."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


# How long a shutdown waits for a cancelled task or a Kafka client's stop before it goes on:
# a client whose group coordinator is unreachable can wait on it without end.
STOP_TIMEOUT_S = 10.0


async def cancel_within(
    tasks: Collection[asyncio.Task[Any]], what: str, timeout_s: float | None = None
) -> None:
    """Cancel the tasks and wait for them, at most `timeout_s` (STOP_TIMEOUT_S unless given)
    in all; those still running then are logged and left behind, so a shutdown always ends."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout_s or STOP_TIMEOUT_S)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a crash was logged where it happened
    if pending:
        log.warning(
            "tasks did not stop in time; shutting down without them",
            extra={"owner": what, "tasks": sorted(t.get_name() for t in pending)},
        )


async def stop_quietly(stop: Callable[[], Awaitable[None]], what: str) -> None:
    """Stop a Kafka client without letting its clean-up end the worker, and within
    STOP_TIMEOUT_S.

    aiokafka's fetcher, stopped while the broker is unreachable, lets the CancelledError of
    its own retry pause escape from `stop()` (Fetcher.close cancels and awaits a fetch task
    that is sleeping in its back-off). Raised in a `finally`, that error replaced the real
    one and ended the worker task as if it had been cancelled: silently."""
    try:
        await asyncio.wait_for(stop(), STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("a Kafka client did not stop in time", extra={"client": what})
    except asyncio.CancelledError:
        if cancelled_by_owner():
            raise
        log.warning(
            "a Kafka client raised a stray cancellation while stopping", extra={"client": what}
        )
    except Exception as error:
        log.warning("a Kafka client failed to stop", extra={"client": what, "error": repr(error)})
