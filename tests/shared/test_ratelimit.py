"""Per-key token buckets: a burst is allowed, then 429 with Retry-After, refilled over time."""

from __future__ import annotations

import pytest

from shared.errors import RateLimited
from shared.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_limited_then_refilled() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"query": 2.0}, burst_seconds=2.0, clock=clock)
    for _ in range(4):
        limiter.check("key-a", "query")
    with pytest.raises(RateLimited) as refused:
        limiter.check("key-a", "query")
    assert refused.value.retry_after == 1
    limiter.check("key-b", "query")  # another key has its own bucket
    clock.now += 0.5
    limiter.check("key-a", "query")


def test_zero_rate_disables_a_scope() -> None:
    limiter = RateLimiter({"ingest": 0.0})
    for _ in range(10_000):
        limiter.check("k", "ingest")


def test_the_key_itself_is_not_kept() -> None:
    limiter = RateLimiter({"query": 1.0})
    limiter.check("super-secret-key-value", "query")
    assert all("super-secret" not in ident for ident, _ in limiter._buckets)
