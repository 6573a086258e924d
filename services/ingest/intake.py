"""Validate a list of raw items, publish the valid ones and dead-letter the rest, in one Kafka round.

Both the native API and the Segment-compatible API end here, so there is one definition of
"accepted": every accepted event (and every rejected one's dead letter) is acknowledged by Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from services.ingest.native_events import NativeEvents
from shared.contracts import envelope
from shared.contracts.events import AcceptedEvent, DeadLetter
from shared.contracts.topics import OutgoingMessage, Topics
from shared.errors import InvalidRequest
from shared.kafka import DurableProducer, partition_of_user
from shared.validation import reasons

Convert = Callable[[Any, datetime], AcceptedEvent]


class Rejection(BaseModel):
    index: int
    errors: list[str]


class IngestResult(BaseModel):
    """Answer to an accepted request: valid events were stored; invalid ones are listed by index."""

    accepted: int
    rejected: list[Rejection] = []
    event_ids: list[str] = []


def event_messages(
    topic: str, events: Sequence[AcceptedEvent], partitions: int | None
) -> list[OutgoingMessage]:
    """The events-topic messages for accepted events: one envelope per partition (split so that none
    is over the envelope limit); one message per event while the partition count is not known yet."""
    if partitions is None or len(events) == 1:
        return [OutgoingMessage(topic, e.message, e.key) for e in events]
    groups: dict[int, list[AcceptedEvent]] = {}
    for event in events:
        groups.setdefault(partition_of_user(event.user_id, partitions), []).append(event)
    return [
        OutgoingMessage(topic, value, group[0].key, partition)
        for partition, group in groups.items()
        for value in envelope.pack([e.message for e in group])
    ]


def content(event: AcceptedEvent) -> tuple[Any, ...]:
    """What two items carrying one event_id must agree on (property order aside)."""
    properties = orjson.dumps(event.properties, option=orjson.OPT_SORT_KEYS)
    return (event.event, event.user_id, event.timestamp, properties)


def conflicting_ids(accepted: Sequence[tuple[int, AcceptedEvent]]) -> dict[int, list[int]]:
    """Item index -> the indices sharing its event_id, for every event_id that items of one request
    carry with different content (README, Definitions: "Duplicates")."""
    groups: dict[str, list[tuple[int, AcceptedEvent]]] = {}
    for index, event in accepted:
        groups.setdefault(event.event_id, []).append((index, event))
    found: dict[int, list[int]] = {}
    for group in groups.values():
        if len({content(event) for _, event in group}) > 1:
            found.update({index: [i for i, _ in group] for index, _ in group})
    return found


@dataclass
class Intake:
    producer: DurableProducer
    topics: Topics
    source: str = "api"
    accepted: list[AcceptedEvent] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def add(self, index: int, item: Any, convert: Convert, now: datetime) -> None:
        try:
            self.accepted.append(convert(item, now))
        except (ValidationError, ValueError, TypeError) as exc:
            self.reject(index, item, reasons(exc))

    def reject(self, index: int, item: Any, why: list[str]) -> None:
        self.rejected.append(Rejection(index=index, errors=why))
        self.dead_letters.append(
            DeadLetter(reason="; ".join(why), stage="ingest", source=self.source, payload=item, errors=why)
        )

    def reject_conflicting_ids(self, items: Sequence[Any]) -> None:
        """After every item was added: items repeating an event_id with different content. None of
        them can be known to be the event, so each is rejected (identical repeats stay: they count
        once)."""
        if len({event.event_id for event in self.accepted}) == len(self.accepted):  # the usual case
            return
        refused = {r.index for r in self.rejected}
        indexed = list(zip([i for i in range(len(items)) if i not in refused], self.accepted, strict=True))
        conflicts = conflicting_ids(indexed)
        self.accepted = [event for index, event in indexed if index not in conflicts]
        for index, group in sorted(conflicts.items()):
            others = ", ".join(str(i) for i in group if i != index)
            why = f"event_id: item(s) {others} of this request carry it with different content"
            self.reject(index, items[index], [why])
        self.rejected.sort(key=lambda r: r.index)

    async def publish(self) -> IngestResult:
        """Send accepted events and dead letters; 422 (nothing sent) when no event is valid."""
        if not self.accepted:
            raise InvalidRequest(
                "no valid event in the request", details=[r.model_dump() for r in self.rejected]
            )
        topic = self.topics.events
        messages = event_messages(topic, self.accepted, self.producer.partition_count(topic))
        messages += [OutgoingMessage(self.topics.dead_letter, d.to_message()) for d in self.dead_letters]
        await self.producer.send_all(messages)
        return IngestResult.model_construct(
            accepted=len(self.accepted),
            rejected=self.rejected,
            event_ids=[e.event_id for e in self.accepted],
        )


async def ingest_items(
    items: Sequence[Any],
    *,
    producer: DurableProducer,
    topics: Topics,
    convert: Convert | None = None,
    source: str = "api",
) -> IngestResult:
    """Convert each item (native events unless `convert` says otherwise), then publish in one round."""
    now = datetime.now(UTC)
    intake = Intake(producer, topics, source)
    converter = convert if convert is not None else NativeEvents(len(items))
    for index, item in enumerate(items):
        intake.add(index, item, converter, now)
    intake.reject_conflicting_ids(items)
    return await intake.publish()
