"""Distinct users per partition whose latest event time falls within a sliding window.

Each user sits in the one-second bucket of its latest event time, so an event costs O(1), a prune costs
O(buckets + users expired) and memory is one entry per active user. Time is the event's `timestamp`,
not arrival time: a backfill of old events adds nobody, and a replay after a restart counts only what
is still recent. Timestamps a little in the future (clock skew) count as now; far-future ones not at all.
"""

from __future__ import annotations

from collections.abc import Iterable


class PartitionWindow:
    """One partition's active users, bucketed by the second of their latest event."""

    __slots__ = ("latest", "by_second")

    def __init__(self) -> None:
        self.latest: dict[str, int] = {}
        self.by_second: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self.latest)

    def see(self, user: str, second: int) -> bool:
        """Record an event at `second`; True when the user was not active before."""
        previous = self.latest.get(user)
        if previous is not None:
            if previous >= second:
                return False
            self.by_second[previous].discard(user)
        self.latest[user] = second
        self.by_second.setdefault(second, set()).add(user)
        return previous is None

    def expire(self, cutoff: int) -> None:
        """Forget users whose latest event is before `cutoff`."""
        for second in [s for s in self.by_second if s < cutoff]:
            for user in self.by_second.pop(second):
                del self.latest[user]


class ActiveUsers:
    """Per-partition windows; counts are exact when events are keyed by user (as ingest does)."""

    def __init__(self, window_seconds: int, max_future_seconds: int = 60) -> None:
        self.window_seconds = window_seconds
        self.max_future_seconds = max_future_seconds
        self.partitions: dict[int, PartitionWindow] = {}

    def see(self, partition: int, user: str, timestamp: float, now: float) -> bool:
        """Count `user` on `partition` if `timestamp` (Unix seconds) is within the window ending `now`."""
        second, now_second = int(timestamp), int(now)
        if second <= now_second - self.window_seconds or second > now_second + self.max_future_seconds:
            return False
        window = self.partitions.get(partition)
        if window is None:
            window = self.partitions[partition] = PartitionWindow()
        return window.see(user, min(second, now_second))

    def counts(self, now: float, owned: Iterable[int]) -> dict[int, int]:
        """Active users per owned partition (0 when none), after forgetting everyone outside the window.

        A partition lost in a rebalance keeps its window until it empties, so getting it back moments
        later (an eager rebalance revokes everything first) does not reset its count.
        """
        owned = set(owned)
        cutoff = int(now) - self.window_seconds + 1
        for partition, window in list(self.partitions.items()):
            window.expire(cutoff)
            if not window and partition not in owned:
                del self.partitions[partition]
        return {p: len(self.partitions[p]) if p in self.partitions else 0 for p in sorted(owned)}
