"""Supervision of the dispatch worker: a view stopped while the broker is gone does not end
its caller, and the loop restarts the worker whatever ends a run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from airgrid.broker import EmbeddedBroker
from airgrid.bus import TopicView, ensure_topics
from airgrid.config import Settings
from airgrid.topics import REGISTRY_CHANGES
from services.dispatch.supervisor import Backoff, WorkerStatus, supervise
from tests.conftest import free_port
from tests.eventually import until

pytestmark = pytest.mark.integration


def restarts(cause: str) -> float:
    value = REGISTRY.get_sample_value("airgrid_dispatch_worker_restarts_total", {"cause": cause})
    return value or 0.0


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    own = EmbeddedBroker(port=free_port(), log_file=Path(".airgrid/logs/test-supervisor.log"))
    own.start()
    try:
        yield own
    finally:
        own.stop()


async def test_stopping_a_view_while_the_broker_is_down_does_not_cancel_the_caller(
    settings: Settings, broker: EmbeddedBroker
) -> None:
    """aiokafka's fetcher, stopped while the broker is unreachable, lets the CancelledError of
    its retry pause escape from stop(); in the worker's clean-up that ended the task as if
    it had been cancelled. TopicView.stop absorbs it, unless the caller is being cancelled."""
    s = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    await ensure_topics(s, [REGISTRY_CHANGES])
    view = TopicView(s, REGISTRY_CHANGES, bytes)
    await view.start()
    await asyncio.wait_for(view.caught_up.wait(), timeout=30)
    broker.stop()
    # The state the bug needs: the view's consumer has lost every connection, so its fetcher
    # retries (and pauses between tries) against a closed port. aiokafka exposes no public
    # view of its connections; its client's table of them is read here.
    consumer = view._consumer
    assert consumer is not None
    connections = consumer._client._conns
    await until(
        lambda: not any(conn.connected() for conn in connections.values()),
        30,
        "the view's connections to the stopped broker closed",
    )

    async def clean_up() -> str:
        await view.stop()
        return "stopped"

    task = asyncio.create_task(clean_up())
    assert await asyncio.wait_for(task, timeout=30) == "stopped"
    assert not task.cancelled()


async def test_supervise_restarts_a_run_that_fails_ends_or_is_stray_cancelled() -> None:
    status = WorkerStatus()
    runs = 0
    third_run = asyncio.Event()
    stray_before, ended_before, error_before = (
        restarts("stray_cancel"),
        restarts("ended"),
        restarts("error"),
    )

    async def run_once() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("the consumer failed")
        if runs == 2:
            inner = asyncio.get_running_loop().create_future()
            inner.cancel()  # a library's future, cancelled: not this task
            await inner
        if runs == 3:
            return  # a loop that ends without an error
        status.set("ok", ready=True)
        third_run.set()
        await asyncio.Event().wait()

    supervisor = asyncio.create_task(
        supervise(run_once, status, name="test worker", backoff=Backoff(first=0.01, limit=0.05))
    )
    await asyncio.wait_for(third_run.wait(), timeout=10)
    assert runs == 4 and status.check() == "ok"
    assert restarts("error") == error_before + 1
    assert restarts("stray_cancel") == stray_before + 1
    assert restarts("ended") == ended_before + 1

    supervisor.cancel()  # shutdown: the only way out
    with pytest.raises(asyncio.CancelledError):
        await supervisor


def test_backoff_is_bounded_and_starts_over_after_a_stable_run() -> None:
    backoff = Backoff(first=0.5, limit=4.0, stable_after=60.0)
    delays = [backoff.next_delay(ran_for=1.0) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.next_delay(ran_for=120.0) == 0.5
