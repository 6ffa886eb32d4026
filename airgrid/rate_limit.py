"""Per-credential rate limiting: a token bucket per verified credential (per client address for
requests without a bearer key), in each process; and the throttle of failed authentications
per client address.

A caller over its budget gets 429 with `Retry-After` and a problem+json body. Only a key the
authenticator verified recently gets a bucket, named by its credential id: forged or junk keys
never get fresh budgets nor push real callers' buckets out; their failures are throttled per
address instead, before any lookup or hash. Health, readiness and metrics endpoints are exempt
so that probes and scrapers never starve.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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


class FailedAuthThrottle:
    """Failed authentications per client address: `burst` at once, then `per_second`. An
    address over it is refused before any key of its is looked up or hashed, so a flood of
    guessed keys costs the service almost nothing and cannot guess fast."""

    def __init__(
        self,
        *,
        per_second: float = 5.0,
        burst: int = 100,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self.max_addresses = max_addresses
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def blocked_for(self, address: str) -> float:
        """0 when the address may try a key now, else the seconds until it may."""
        bucket = self._buckets.get(address)
        if bucket is None:
            return 0.0
        now = self.clock()
        tokens = min(bucket.capacity, bucket.tokens + (now - bucket.updated) * bucket.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / bucket.rate

    def failed(self, address: str) -> None:
        now = self.clock()
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = TokenBucket(self.per_second, float(self.burst), float(self.burst), now)
            self._buckets[address] = bucket
            if len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
        bucket.take(now)


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


class KnowsKeys(Protocol):
    def cached(self, key: str) -> Any: ...


def caller_of(scope: Scope) -> str | None:
    """A bucket id: the credential id of a recently verified bearer key, or the client address
    of a request without one. None for a bearer key not verified yet: its authentication
    decides (a failure is throttled per address by FailedAuthThrottle, a success is cached
    and counted against its credential from then on)."""
    app = scope.get("app")
    authenticator: KnowsKeys | None = getattr(getattr(app, "state", None), "authenticator", None)
    for name, value in scope.get("headers") or ():
        if name == b"authorization" and value:
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or authenticator is None:
                break
            principal = authenticator.cached(key.strip())
            return f"cred:{principal.credential_id}" if principal is not None else None
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
        caller = caller_of(scope)
        wait = 0.0 if caller is None else self.limiter.wait_seconds(caller)
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
