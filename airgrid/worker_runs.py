"""How a long-running worker's run ends, and how it stops its Kafka clients without that
clean-up ending it: shared by the dispatch and telemetry workers and the broker watch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

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


async def stop_quietly(stop: Callable[[], Awaitable[None]], what: str) -> None:
    """Stop a Kafka client without letting its clean-up end the worker.

    aiokafka's fetcher, stopped while the broker is unreachable, lets the CancelledError of
    its own retry pause escape from `stop()` (Fetcher.close cancels and awaits a fetch task
    that is sleeping in its back-off). Raised in a `finally`, that error replaced the real
    one and ended the worker task as if it had been cancelled: silently."""
    try:
        await stop()
    except asyncio.CancelledError:
        if cancelled_by_owner():
            raise
        log.warning(
            "a Kafka client raised a stray cancellation while stopping", extra={"client": what}
        )
    except Exception as error:
        log.warning("a Kafka client failed to stop", extra={"client": what, "error": repr(error)})
