"""Per-key request rate limits (token buckets), kept in memory per process.

Buckets exist only for configured keys (a request with an unknown key is refused before it gets
here), so memory is bounded by the number of keys, whatever clients send.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.errors import RateLimited


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """`rates` maps a scope (e.g. "ingest", "query") to requests per second; 0 disables a scope."""

    rates: dict[str, float]
    burst_seconds: float = 2.0
    clock: Callable[[], float] = field(default=time.monotonic)
    _buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)

    def check(self, key: str, scope: str) -> None:
        """Take one token from the key's bucket for `scope`, or raise RateLimited with Retry-After."""
        rate = self.rates.get(scope, 0.0)
        if rate <= 0:
            return
        capacity = max(1.0, rate * self.burst_seconds)
        now = self.clock()
        ident = (hashlib.sha256(key.encode()).hexdigest()[:16], scope)  # never keep the key itself
        bucket = self._buckets.get(ident)
        if bucket is None:
            bucket = self._buckets[ident] = Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            retry_after = max(1, math.ceil((1.0 - bucket.tokens) / rate))
            raise RateLimited(
                f"rate limit of {rate:g} {scope} requests/s exceeded for this key", retry_after=retry_after
            )
        bucket.tokens -= 1.0
