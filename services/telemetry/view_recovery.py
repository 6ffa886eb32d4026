"""Re-reads the telemetry service's topic views after the broker was lost or came back empty.

A view reads its topic with a plain consumer that keeps its own positions. When an empty
broker (the embedded one keeps its data in memory) comes back on the same address, those
positions point past the end of the new, short log; Tansu answers such fetches with nothing
(no out-of-range error to reset on), so the view saw nothing until the new log grew past
the old offset: the 150-170 s before the state API showed new records after `make chaos`'s
empty broker. The dispatch worker's broker watch notices exactly this (a watched partition
ends before an offset seen there, a topic is missing, or the broker stayed unreachable); on
it every view is stopped and read again from the beginning of the new log, once the broker
answers and the declared topics exist. A view keeps its items meanwhile, so the API goes on
serving the last known state, which newer records then replace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from airgrid.broker_watch import recover_after_each_loss
from airgrid.bus import TopicView
from airgrid.config import Settings
from services.telemetry.metrics import VIEWS_REREAD

log = logging.getLogger("airgrid.telemetry")


class ViewRecovery:
    def __init__(
        self,
        settings: Settings,
        views: Sequence[TopicView],
        *,
        also: Sequence[Callable[[], Awaitable[None]]] = (),
        period_seconds: float = 1.0,
        grace_seconds: float = 10.0,
    ) -> None:
        self.settings = settings
        self.views = list(views)
        self.also = list(also)  # other readers of the broker to restart after a loss
        self.watching = asyncio.Event()  # the watch has seen the topics' ends once
        self.period_seconds = period_seconds
        self.grace_seconds = grace_seconds

    async def run(self) -> None:
        """Never returns: watch, and after each loss re-read every view."""
        await recover_after_each_loss(
            self.settings,
            [view.topic for view in self.views],
            self.reread,
            what="re-reading the topic views",
            period_seconds=self.period_seconds,
            grace_seconds=self.grace_seconds,
            probed=self.watching,
        )

    async def reread(self) -> None:
        """Every view read again from the beginning of the new log."""
        for view in self.views:
            await view.stop()
            await view.start()
        for restart in self.also:
            await restart()
        VIEWS_REREAD.inc()
        log.info("topic views re-read", extra={"views": len(self.views)})
