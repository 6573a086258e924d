"""The event contract: what producers send (`IncomingEvent`), what travels on Kafka (`StoredEvent`),
and the row the loader writes to ClickHouse. Producer and every consumer import these models."""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.constants import MAX_ENVELOPE_BYTES, MAX_EVENT_NAME_LENGTH, MAX_PROPERTIES_BYTES
from shared.kafka import OutgoingMessage

MAX_ID_LENGTH = 200
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)


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

    def accept(self, received_at: datetime, source: str = "api") -> AcceptedEvent:
        """The event as stored, serialized once; ValueError when properties exceed 32 KiB as JSON."""
        properties_json = orjson.dumps(self.properties)
        if len(properties_json) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties: must be at most {MAX_PROPERTIES_BYTES} bytes as JSON")
        accepted = AcceptedEvent(
            event_id=str(self.event_id) if self.event_id else new_event_id(),
            event=self.event,
            user_id=self.user_id if self.user_id is not None else str(self.anonymous_id),
            timestamp=self.timestamp or received_at,
            received_at=received_at,
            properties=self.properties,
            source=source,
        )
        accepted.message = wire_message(accepted, orjson.Fragment(properties_json))
        return accepted


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
    than validating it (cProfile of a 100-event batch). Consumers parse the message as `StoredEvent`.
    """

    event_id: str
    event: str
    user_id: str
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any]
    source: str
    message: bytes = b""

    @property
    def key(self) -> bytes:
        return user_key(self.user_id)

    def to_message(self) -> bytes:
        return self.message


def wire_message(event: AcceptedEvent | StoredEvent, properties: Any) -> bytes:
    """JSON for the events topic; orjson writes the UUID and the UTC times (ISO 8601, `Z`) itself."""
    return orjson.dumps(
        {
            "event_id": event.event_id,
            "event": event.event,
            "user_id": event.user_id,
            "timestamp": event.timestamp,
            "received_at": event.received_at,
            "properties": properties,
            "source": event.source,
        },
        option=orjson.OPT_UTC_Z,
    )


# An events-topic message is one event (a `StoredEvent` object) or an envelope of events that all hash
# to the message's partition: `{"events": [event, ...]}`. Ingest wraps a request's events in one
# envelope per partition: consumers pay Kafka's and faust's per-message cost once per envelope, not
# once per event (the processor is bound by that cost), and a user's events stay on one partition, in
# order, as with one message per event.
ENVELOPE_PREFIX = b'{"events":['
ENVELOPE_SUFFIX = b"]}"


def user_key(user_id: str) -> bytes:
    """An event's Kafka key: its user id, so one user's events stay in order on one partition."""
    return user_id.encode()


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), as the Java client and aiokafka compute it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@functools.lru_cache(maxsize=65_536)
def partition_of_user(user_id: str, partitions: int) -> int:
    """`partition_of` the user's key, cached by the user id itself: aiokafka's murmur2 is pure Python
    (py-spy: ~10% of ingest under batch load), the same users come back again and again, and a hit
    encodes no key."""
    return partition_of(user_key(user_id), partitions)


# Room for the events' joined messages: the whole envelope must stay within MAX_ENVELOPE_BYTES, the
# limit the stream loader applies to the message (a larger one is dead-lettered there).
ENVELOPE_ROOM = MAX_ENVELOPE_BYTES - len(ENVELOPE_PREFIX) - len(ENVELOPE_SUFFIX)


def event_messages(
    topic: str, events: Sequence[AcceptedEvent], partitions: int | None
) -> list[OutgoingMessage]:
    """The events-topic messages for accepted events: one envelope per partition (split so that none
    is over MAX_ENVELOPE_BYTES); one message per event while the partition count is not known yet."""
    if partitions is None or len(events) == 1:
        return [OutgoingMessage(topic, e.message, e.key) for e in events]
    groups: dict[int, list[AcceptedEvent]] = {}
    for event in events:
        groups.setdefault(partition_of_user(event.user_id, partitions), []).append(event)
    messages = []
    for partition, group in groups.items():
        joined = b",".join([e.message for e in group])
        if len(group) == 1 or len(joined) <= ENVELOPE_ROOM:
            messages.append(envelope_message(topic, partition, group, joined))
        else:
            messages += split_envelopes(topic, partition, group)
    return messages


def split_envelopes(topic: str, partition: int, group: list[AcceptedEvent]) -> list[OutgoingMessage]:
    """A partition's events in as few envelopes as fit MAX_ENVELOPE_BYTES, in order."""
    messages = []
    chunk: list[AcceptedEvent] = []
    size = -1  # the joined length of `chunk` (no comma before the first)
    for event in group:
        if chunk and size + 1 + len(event.message) > ENVELOPE_ROOM:
            messages.append(envelope_message(topic, partition, chunk))
            chunk, size = [], -1
        chunk.append(event)
        size += 1 + len(event.message)
    messages.append(envelope_message(topic, partition, chunk))
    return messages


def envelope_message(
    topic: str, partition: int, events: Sequence[AcceptedEvent], joined: bytes | None = None
) -> OutgoingMessage:
    """One message for `events` (one event: its own message); `joined`: their messages already joined."""
    if len(events) == 1:
        value = events[0].message
    else:
        if joined is None:
            joined = b",".join([e.message for e in events])
        value = b"".join((ENVELOPE_PREFIX, joined, ENVELOPE_SUFFIX))
    return OutgoingMessage(topic, value, events[0].key, partition)


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

    @field_validator("timestamp", "received_at")
    @classmethod
    def _naive_is_utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @field_validator("properties")
    @classmethod
    def _properties_fit(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_properties(value)

    def to_message(self) -> bytes:
        """The events-topic message, which is also the analytics_events row (inserted with ROW_SETTINGS):
        ClickHouse stores the properties object's text as the String column and parses the ISO 8601
        times itself, truncating microseconds to the column's milliseconds (23:59:59.9996 stays on its
        day)."""
        return wire_message(self, self.properties)

    @property
    def key(self) -> bytes:
        return user_key(self.user_id)


# The insert settings a `StoredEvent.to_message` row needs; set explicitly, whatever the server's defaults.
ROW_SETTINGS = {"date_time_input_format": "best_effort", "input_format_json_read_objects_as_strings": 1}


class StoredEnvelope(BaseModel):
    """Several events in one events-topic message (see ENVELOPE_PREFIX)."""

    model_config = ConfigDict(extra="ignore")

    events: list[StoredEvent]


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
