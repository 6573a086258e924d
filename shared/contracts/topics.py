"""The topics: names derived from one prefix (so tests and tenants can share a broker), what each holds,
and how each is created (partitions, config, replication). A message for a topic is an `OutgoingMessage`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

# The live topic carries only recent counts and events; an hour is far more than any reader rewinds.
LIVE_RETENTION_MS = 60 * 60 * 1000
# Replication when ANALYTICS_TOPIC_REPLICATION is unset: as many copies as brokers, up to three.
MAX_DEFAULT_REPLICATION = 3
MIN_ISR = "min.insync.replicas"


class OutgoingMessage(NamedTuple):
    """A message to send; a NamedTuple because ingest builds one per event (cheaper than a dataclass)."""

    topic: str
    value: bytes
    key: bytes | None = None
    partition: int | None = None  # None: Kafka's default partitioner picks it from the key


@dataclass(frozen=True)
class TopicSpec:
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topics:
    """The names of one deployment's topics and consumer group, from its prefix.

    - `events`: accepted events (`events.StoredEvent` messages or envelopes of them), keyed by user id;
    - `dead_letter`: `events.DeadLetter` records, from ingest and from the stream processor;
    - `live`: `live.Presence` and live-events messages from the stream processors to the gateways.
    """

    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.events.dlq"

    @property
    def live(self) -> str:
        return f"{self.prefix}.live"

    @property
    def loader_group(self) -> str:
        """The stream processor's consumer group (its faust app id)."""
        return f"{self.prefix}-stream"

    def specs(self, event_partitions: int) -> dict[str, TopicSpec]:
        """What `ensure_topics` creates: the events topic with `event_partitions`, the others with one."""
        return {
            self.events: TopicSpec(event_partitions),
            self.dead_letter: TopicSpec(1),
            self.live: TopicSpec(1, {"retention.ms": str(LIVE_RETENTION_MS)}),
        }


def default_replication(brokers: int) -> int:
    """Replicas of each topic created on a cluster of `brokers`: 1 on one broker, 3 on three or more."""
    return max(1, min(MAX_DEFAULT_REPLICATION, brokers))


def min_insync_for(replication: int) -> int:
    """One copy fewer than the replication (at least 1): with 3, an acks=all write needs two copies,
    so one broker may be down and a 202 still means two brokers hold the event."""
    return max(1, replication - 1)
