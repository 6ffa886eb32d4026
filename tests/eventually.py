"""Waiting in tests without timing assertions: poll until a check gives a result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, *, every: float = 0.05
) -> T:
    """The first result of `check` that is not None; an AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


async def until(
    check: Callable[[], bool], timeout: float, what: str, *, every: float = 0.1
) -> None:
    """Poll a plain yes/no `check` until it holds; an AssertionError after `timeout` s."""

    async def holds() -> bool | None:
        return True if check() else None

    await eventually(holds, timeout, what, every=every)
