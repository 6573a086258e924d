"""Validate a list of raw items, publish the valid ones and dead-letter the rest, in one Kafka round.

Both the native API and the Segment-compatible API end here, so there is one definition of
"accepted": every accepted event (and every rejected one's dead letter) is acknowledged by Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from services.ingest.native import NativeEvents
from shared.errors import InvalidRequest
from shared.events import AcceptedEvent, DeadLetter, event_messages
from shared.kafka import DurableProducer, OutgoingMessage


class Rejection(BaseModel):
    index: int
    errors: list[str]


class IngestResult(BaseModel):
    """Answer to an accepted request: valid events were stored; invalid ones are listed by index."""

    accepted: int
    rejected: list[Rejection] = []
    event_ids: list[str] = []


@dataclass
class Intake:
    producer: DurableProducer
    events_topic: str
    dead_letter_topic: str
    source: str = "api"
    accepted: list[AcceptedEvent] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def add(
        self, index: int, item: Any, convert: Callable[[Any, datetime], AcceptedEvent], now: datetime
    ) -> None:
        try:
            self.accepted.append(convert(item, now))
        except (ValidationError, ValueError, TypeError) as exc:
            reasons = describe(exc)
            self.rejected.append(Rejection(index=index, errors=reasons))
            self.dead_letters.append(
                DeadLetter(
                    reason="; ".join(reasons),
                    stage="ingest",
                    source=self.source,
                    payload=item,
                    errors=reasons,
                )
            )

    async def publish(self) -> IngestResult:
        """Send accepted events and dead letters; 422 (nothing sent) when no event is valid."""
        if not self.accepted:
            raise InvalidRequest(
                "no valid event in the request", details=[r.model_dump() for r in self.rejected]
            )
        partitions = self.producer.partition_count(self.events_topic)
        messages = event_messages(self.events_topic, self.accepted, partitions)
        messages += [OutgoingMessage(self.dead_letter_topic, d.to_message()) for d in self.dead_letters]
        await self.producer.send_all(messages)
        return IngestResult.model_construct(
            accepted=len(self.accepted),
            rejected=self.rejected,
            event_ids=[e.event_id for e in self.accepted],
        )


def describe(exc: Exception) -> list[str]:
    """Readable reasons: `field: message` for validation errors."""
    if isinstance(exc, ValidationError):
        reasons = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error.get("loc", ()))
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            reasons.append(f"{where}: {message}" if where else message)
        return reasons
    return [str(exc)]


async def ingest_items(
    items: Sequence[Any],
    *,
    producer: DurableProducer,
    events_topic: str,
    dead_letter_topic: str,
    convert: Callable[[Any, datetime], AcceptedEvent] | None = None,
    source: str = "api",
) -> IngestResult:
    """Convert each item (native events unless `convert` says otherwise), then publish in one round."""
    now = datetime.now(UTC)
    if convert is None:
        convert = NativeEvents(len(items))
    intake = Intake(producer, events_topic, dead_letter_topic, source)
    for index, item in enumerate(items):
        intake.add(index, item, convert, now)
    return await intake.publish()
