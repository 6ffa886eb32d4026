"""A shutdown always ends: a task that will not stop, or a Kafka client whose stop waits
without end, holds it up for at most STOP_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import time

import pytest

from airgrid import worker_runs
from airgrid.worker_runs import cancel_within, stop_quietly


async def _stubborn(released: asyncio.Event) -> None:
    """Swallows every cancellation until released, as a task stuck in a library's retry loop
    can."""
    while not released.is_set():
        try:
            await released.wait()
        except asyncio.CancelledError:
            continue


async def _stopped_quickly() -> None:
    await asyncio.sleep(3600)


async def test_a_task_that_ignores_cancellation_is_left_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_runs, "STOP_TIMEOUT_S", 0.2)
    released = asyncio.Event()
    stubborn = asyncio.create_task(_stubborn(released), name="stubborn")
    polite = asyncio.create_task(_stopped_quickly(), name="polite")
    started = time.monotonic()
    await asyncio.wait_for(cancel_within([stubborn, polite], "test"), 5)
    assert time.monotonic() - started < 5
    assert polite.cancelled() and not stubborn.done()
    released.set()  # so the test leaves nothing behind
    await stubborn


async def test_a_client_stop_that_never_returns_is_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_runs, "STOP_TIMEOUT_S", 0.2)
    never = asyncio.Event()

    async def stop() -> None:
        await never.wait()

    await asyncio.wait_for(stop_quietly(stop, "a consumer"), 5)
