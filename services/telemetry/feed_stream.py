"""One SSE feed connection: the catch-up after a Last-Event-ID, then live events, keep-alive
comments, the credential checked while it lasts, and a cap on streams per credential."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from services.telemetry.feeds import FeedEvent, FeedHub, Subscription

log = logging.getLogger("airgrid.telemetry")

CONNECTED = b": connected\n\n"
KEEP_ALIVE = b": keep-alive\n\n"
# How often a stream looks at its credential in the database, and wakes to see whether it
# was closed: a revoked or expired credential's stream ends within about 3 s.
CREDENTIAL_CHECK_SECONDS = 2.0
WAKE_SECONDS = 1.0


class StreamSlots:
    """Open streams per credential in this process; `claim` refuses past the cap."""

    def __init__(self, per_credential: int) -> None:
        self.per_credential = per_credential
        self._open: Counter[str] = Counter()

    def claim(self, credential_id: str) -> bool:
        if self._open[credential_id] >= self.per_credential:
            return False
        self._open[credential_id] += 1
        return True

    def release(self, credential_id: str) -> None:
        self._open[credential_id] -= 1
        if self._open[credential_id] <= 0:
            del self._open[credential_id]

    def open(self, credential_id: str) -> int:
        return self._open[credential_id]


async def watch_credential(
    subscription: Subscription,
    is_current: Callable[[str], Awaitable[bool]],
    period_seconds: float = CREDENTIAL_CHECK_SECONDS,
) -> None:
    """Marks the stream closed once its credential is revoked or expired. A database that
    cannot answer closes nothing: the stream goes on and the next check asks again."""
    while not subscription.closed:
        await asyncio.sleep(period_seconds)
        try:
            current = await is_current(subscription.credential_id)
        except Exception as error:
            log.warning("feed credential check failed", extra={"error": repr(error)})
            continue
        if not current:
            subscription.closed = "credential revoked or expired"


async def feed_events(
    *,
    hub: FeedHub,
    subscription: Subscription,
    replay: bool,
    keepalive_seconds: float,
    is_current: Callable[[str], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """The SSE body. With `replay` the stream first reads what the broker holds after its
    positions (a Last-Event-ID); otherwise the hub has carried it since the request came in."""
    watcher = asyncio.create_task(watch_credential(subscription, is_current))
    getter: asyncio.Task[FeedEvent] | None = None
    try:
        yield CONNECTED
        if replay:
            events: AsyncIterator[FeedEvent] = hub.replay(subscription)
            async for event in events:
                yield event.sse()
        quiet_since = time.monotonic()
        while not (subscription.dropped or subscription.closed):
            # One pending get across wake-ups: a timed-out get is never cancelled, so no
            # item is lost between two waits.
            getter = getter or asyncio.ensure_future(subscription.queue.get())
            done, _ = await asyncio.wait({getter}, timeout=WAKE_SECONDS)
            if done:
                event, getter = getter.result(), None
                yield event.sse()
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= keepalive_seconds:
                yield KEEP_ALIVE
                quiet_since = time.monotonic()
        if subscription.closed:
            yield f": closed: {subscription.closed}\n\n".encode()
    finally:
        if getter is not None:
            getter.cancel()
        watcher.cancel()


class FeedResponse(StreamingResponse):
    """A streaming response that runs `on_close` once it ends, however it ends, even when
    the client left before the body began (when the body generator never starts)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
