"""The event contract: what producers send (`IncomingEvent`), what ingest accepted (`AcceptedEvent`),
what travels on the events topic and lands in ClickHouse (`StoredEvent`), and what could never load
(`DeadLetter`). Ingest, the stream processor and the replay tool all import these."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contracts.limits import (
    MAX_EVENT_NAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_LINKED_IDS,
    MAX_PROPERTIES_BYTES,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
)


def as_utc(moment: datetime) -> datetime:
    """A timestamp without a zone is UTC; one with a zone is converted to UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, the precision ClickHouse stores."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def check_timestamp(moment: datetime) -> datetime:
    moment = as_utc(moment)
    if not MIN_TIMESTAMP <= moment < MAX_TIMESTAMP:
        raise ValueError("timestamp must be between 1970-01-01 and 2200-01-01")
    return moment


def check_properties(properties: dict[str, Any]) -> dict[str, Any]:
    try:
        written = orjson.dumps(properties)
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits, which JSON parsers accept
        raise ValueError(f"properties cannot be stored as JSON: {exc}") from exc
    if len(written) > MAX_PROPERTIES_BYTES:
        raise ValueError(f"properties must be at most {MAX_PROPERTIES_BYTES} bytes as JSON")
    return properties


def user_key(user_id: str) -> bytes:
    """An event's Kafka key: its user id, so one user's events stay in order on one partition."""
    return user_id.encode()


class IncomingEvent(BaseModel):
    """One event as a producer posts it to /api/v1/events."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    event: str = Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH, description="Event name")
    user_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH)
    anonymous_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH)
    timestamp: datetime | None = Field(None, description="ISO 8601; UTC when no zone; default: time received")
    properties: dict[str, Any] = Field(default_factory=dict, description="JSON object, at most 32 KiB")
    event_id: uuid.UUID | None = Field(None, description="Idempotency key; generated when absent")

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_range(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_timestamp(value)

    @model_validator(mode="after")
    def needs_an_identity(self) -> IncomingEvent:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("one of user_id or anonymous_id is required")
        return self

    def accept(
        self, received_at: datetime, source: str = "api", links_from: Sequence[str] = ()
    ) -> AcceptedEvent:
        """The event as stored, serialized once; ValueError when properties exceed 32 KiB as JSON.
        `links_from`: more distinct ids this event links to its own (a Segment alias's previousId)."""
        properties_json = orjson.dumps(self.properties)
        if len(properties_json) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties: must be at most {MAX_PROPERTIES_BYTES} bytes as JSON")
        distinct_id = self.user_id if self.user_id is not None else str(self.anonymous_id)
        accepted = AcceptedEvent(
            event_id=str(self.event_id) if self.event_id else new_event_id(),
            event=self.event,
            user_id=distinct_id,
            timestamp=self.timestamp or received_at,
            received_at=received_at,
            properties=self.properties,
            source=source,
            linked_ids=linked_ids(distinct_id, (self.anonymous_id, *links_from)),
        )
        accepted.message = encode_event(accepted, orjson.Fragment(properties_json))
        return accepted


def linked_ids(distinct_id: str, candidates: Sequence[str | None]) -> list[str]:
    """The distinct ids an event links to its own: each candidate once, in order, never the event's own
    id (an event with only an anonymous id, or an anonymous id equal to its user id, links nothing)."""
    found: list[str] = []
    for candidate in candidates:
        if candidate is not None and candidate != distinct_id and candidate not in found:
            found.append(candidate)
    return found


def new_event_id() -> str:
    """A random (version 4) UUID in its canonical text form, without building a uuid.UUID object."""
    return next(new_event_ids(1))


def new_event_ids(count: int) -> Iterator[str]:
    """`count` random UUIDs (as `new_event_id`) from one read of the system's randomness (one syscall)."""
    text = os.urandom(16 * count).hex()
    for start in range(0, 32 * count, 32):
        hexa = text[start : start + 32]
        # The version digit is 4; the variant digit keeps two random bits under the bits 10 (RFC 9562).
        yield f"{hexa[:8]}-{hexa[8:12]}-4{hexa[13:16]}-{UUID_VARIANT[hexa[16]]}{hexa[17:20]}-{hexa[20:]}"


UUID_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


@dataclass(slots=True)
class AcceptedEvent:
    """An event ingest accepted, with its events-topic message built once.

    A plain record rather than a pydantic model: building a model for every event of a batch cost more
    than validating it (docs/performance.md). Consumers parse the message as `StoredEvent`.
    """

    event_id: str
    event: str
    user_id: str
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any]
    source: str
    linked_ids: list[str] = field(default_factory=list)
    message: bytes = b""

    @property
    def key(self) -> bytes:
        return user_key(self.user_id)

    def to_message(self) -> bytes:
        return self.message


def encode_event(event: AcceptedEvent | StoredEvent, properties: Any, did: int | None = None) -> bytes:
    """The events-topic JSON of an event (with `did`: its analytics_events row): orjson writes the UUID
    and the UTC times (ISO 8601, `Z`) itself; `properties` may be an `orjson.Fragment` already written.
    `linked_ids` is written only when there are some, so an ordinary event's message stays as it was."""
    record = {
        "event_id": event.event_id,
        "event": event.event,
        "user_id": event.user_id,
        "timestamp": event.timestamp,
        "received_at": event.received_at,
        "properties": properties,
        "source": event.source,
    }
    if event.linked_ids:
        record["linked_ids"] = event.linked_ids
    if did is not None:
        record["did"] = did
    return orjson.dumps(record, option=orjson.OPT_UTC_Z)


class StoredEvent(BaseModel):
    """An accepted event as it travels on the events topic (JSON) and lands in ClickHouse."""

    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID
    event: str = Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)
    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    # The range is checked by pydantic-core itself (half the decode cost of a Python validator, which
    # the processor pays per event); a time without a zone is UTC. A time with another offset keeps it:
    # every reader converts (`.timestamp()`, `iso_utc`, ClickHouse parsing the row).
    timestamp: datetime = Field(ge=MIN_TIMESTAMP, lt=MAX_TIMESTAMP)
    received_at: datetime = Field(ge=MIN_TIMESTAMP, lt=MAX_TIMESTAMP)
    properties: dict[str, Any] = Field(default_factory=dict)
    source: str = Field("api", max_length=32)
    # Distinct ids this event says are the same person as its own (`user_id`): each is a link
    # linked_id -> user_id (persons.py in this package has the rules).
    linked_ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_LINKED_IDS
    )

    @field_validator("timestamp", "received_at")
    @classmethod
    def _naive_is_utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @field_validator("properties")
    @classmethod
    def _properties_fit(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_properties(value)

    def to_message(self) -> bytes:
        """The events-topic message."""
        return encode_event(self, self.properties)

    def to_row(self, did: int) -> bytes:
        """The analytics_events row: the message plus the distinct id's number (inserted with
        storage.ROW_SETTINGS: ClickHouse stores the properties object's text as the String column and
        parses the ISO 8601 times itself, truncating microseconds to the column's milliseconds, so
        23:59:59.9996 stays on its day)."""
        return encode_event(self, self.properties, did)

    @property
    def key(self) -> bytes:
        return user_key(self.user_id)


class DeadLetter(BaseModel):
    """A message that can never be loaded, with why. Replayable once the cause is fixed."""

    reason: str
    stage: str = Field(description="ingest or stream")
    source: str = Field("api", description="api, segment or kafka: which parser the payload needs")
    payload: Any = Field(description="The original item (parsed JSON) or, if undecodable, its text")
    errors: list[Any] = Field(default_factory=list)
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_message(self) -> bytes:
        record = self.model_dump(mode="json")
        try:
            return orjson.dumps(record)
        except orjson.JSONEncodeError:
            # A payload orjson cannot write (an integer beyond 64 bits): the standard library can, and a
            # dead letter must always be writable.
            return json.dumps(record).encode()
