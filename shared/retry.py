"""Retrying with exponential back-off: the one way every client here waits for a dependency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Backoff:
    """Each `wait()` sleeps the current delay, then doubles it, up to `maximum`."""

    initial: float = 0.5
    maximum: float = 10.0
    delay: float = field(init=False)

    def __post_init__(self) -> None:
        self.delay = self.initial

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.maximum)

    def reset(self) -> None:
        self.delay = self.initial


async def retry_forever(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff,
    on_failure: Callable[[BaseException, float], None],
) -> T:
    """`attempt()` until it succeeds; each failure of a `retry_on` kind is reported to `on_failure`
    (with the delay before the next try), then waited out. Other errors propagate."""
    while True:
        try:
            return await attempt()
        except retry_on as exc:
            on_failure(exc, backoff.delay)
            await backoff.wait()
