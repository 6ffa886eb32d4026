"""The gateways stop on SIGINT/SIGTERM when run as a program, and run on any other thread's
event loop (as in tests) without touching the process's signal handlers."""

from __future__ import annotations

import asyncio
import signal
import threading

from gateways.app import _stop_on_signals


def test_sigterm_sets_stop_in_the_main_thread() -> None:
    async def main() -> bool:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 30)
        return stop.is_set()

    assert asyncio.run(main())
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the closed loop let go


def test_another_threads_loop_leaves_the_signal_handlers_alone() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    errors: list[BaseException] = []

    def run() -> None:
        async def main() -> None:
            _stop_on_signals(asyncio.Event())

        try:
            asyncio.run(main())
        except BaseException as error:  # handed to the test's thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []
    assert {sig: signal.getsignal(sig) for sig in before} == before
