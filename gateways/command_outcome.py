"""How a gateway reports one command's fate: metrics, a log line and the mission outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from airgrid.v1 import command_pb2
from gateways.metrics import COMMAND_RTT, COMMANDS

Outcome = Callable[[command_pb2.DroneCommand, bool, str], Awaitable[None]]


async def report_command(
    outcome: Outcome | None,
    command: command_pb2.DroneCommand,
    gateway: str,
    protocol: str,
    context: dict[str, Any],
    log: logging.Logger,
    started: float,
    failure: Exception | None = None,
) -> None:
    """Count, log and publish a command that was acknowledged (failure None) or not;
    context names the command (its "command" entry) for the log and the reason."""
    kind = context["command"]
    if failure is not None:
        COMMANDS.labels(gateway, "failed").inc()
        log.warning("command not delivered", extra={**context, "reason": str(failure)})
        if outcome is not None:
            await outcome(command, False, f"{kind} not delivered over {protocol}: {failure}")
        return
    elapsed = time.perf_counter() - started
    COMMAND_RTT.labels(gateway).observe(elapsed)
    COMMANDS.labels(gateway, "accepted").inc()
    log.info("command acknowledged", extra={**context, "rtt_ms": round(elapsed * 1000, 1)})
    if outcome is not None:
        await outcome(
            command, True, f"{kind} acknowledged over {protocol} in {elapsed * 1000:.0f} ms"
        )
