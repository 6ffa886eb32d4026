"""Per-credential rate limiting: a token bucket per bearer key (or client address) in each process.

A caller over its budget gets 429 with `Retry-After` and a problem+json body. The key is never
stored: buckets are indexed by a short digest of the `Authorization` header. Health, readiness
and metrics endpoints are exempt so that probes and scrapers never starve.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from airgrid.problems import problem_response

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second; one request takes one token."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token; returns 0 when granted, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Buckets per caller, the least recently used forgotten beyond `max_callers`."""

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        max_callers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = max(1, burst)
        self.max_callers = max_callers
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def wait_seconds(self, caller: str) -> float:
        """0 when the caller may proceed now, else how long it should wait."""
        now = self.clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = TokenBucket(self.per_second, float(self.burst), float(self.burst), now)
            self._buckets[caller] = bucket
            if len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
        return bucket.take(now)


def caller_of(scope: Scope) -> str:
    """A bucket id: a digest of the bearer credential, else the client address."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization" and value:
            return "key:" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class RateLimit:
    """ASGI middleware answering 429 problem+json with Retry-After to a caller over budget."""

    def __init__(self, app: ASGIApp, *, per_second: float, burst: int) -> None:
        self.app = app
        self.enabled = per_second > 0
        self.limiter = RateLimiter(per_second=max(per_second, 1e-9), burst=burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.wait_seconds(caller_of(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        response = problem_response(
            429,
            "Too many requests",
            f"This credential sent more than {self.limiter.per_second:g} requests per second "
            f"(burst {self.limiter.burst}); retry after {retry_after} s or spread the load.",
            kind="rate-limited",
            instance=scope.get("path"),
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)
