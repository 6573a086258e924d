"""Several events in one events-topic message: `{"events": [event, ...]}`, packed and unpacked here.

An events-topic message is one event (a `StoredEvent` object) or an envelope of events that all hash
to the message's partition. Ingest wraps a request's events in one envelope per partition: consumers
pay Kafka's and faust's per-message cost once per envelope, not once per event (the processor is bound
by that cost), and a user's events stay on one partition, in order, as with one message per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import from_json

from shared.contracts.events import StoredEvent
from shared.contracts.limits import MAX_ENVELOPE_BYTES
from shared.validation import problems

PREFIX = b'{"events":['
SUFFIX = b"]}"
# Room for the events' joined messages: the whole envelope must stay within MAX_ENVELOPE_BYTES, the
# limit the stream loader applies to an envelope (a larger one is dead-lettered there).
ROOM = MAX_ENVELOPE_BYTES - len(PREFIX) - len(SUFFIX)


def pack(messages: Sequence[bytes]) -> list[bytes]:
    """The message values for one partition's event messages, in order: one envelope when they fit in
    MAX_ENVELOPE_BYTES, else as few as fit; an event alone travels as its own message."""
    if len(messages) == 1:
        return [messages[0]]
    joined = b",".join(messages)
    if len(joined) <= ROOM:
        return [PREFIX + joined + SUFFIX]
    values = []
    chunk: list[bytes] = []
    size = -1  # the joined length of `chunk` (no comma before the first)
    for message in messages:
        if chunk and size + 1 + len(message) > ROOM:
            values.append(wrap(chunk))
            chunk, size = [], -1
        chunk.append(message)
        size += 1 + len(message)
    values.append(wrap(chunk))
    return values


def wrap(messages: list[bytes]) -> bytes:
    return messages[0] if len(messages) == 1 else b"".join((PREFIX, b",".join(messages), SUFFIX))


def is_envelope(value: bytes) -> bool:
    return value.startswith(PREFIX)


class StoredEnvelope(BaseModel):
    """Several events in one events-topic message."""

    model_config = ConfigDict(extra="ignore")

    events: list[StoredEvent]


@dataclass(frozen=True)
class Refusal:
    """What in a message can never load: the reason (`events[i]: ...` for one event of an envelope),
    the refused payload (parsed JSON, or text) and pydantic's messages."""

    reason: str
    payload: Any
    errors: list[str] = field(default_factory=list)


@dataclass
class Unpacked:
    events: list[StoredEvent] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def unpack(value: bytes) -> Unpacked:
    """The events of one message (a single event or an envelope). In an envelope that does not validate
    as a whole, each event is judged on its own: the bad ones are refused with their index, the others
    load; a message that is not JSON at all is refused whole."""
    envelope = is_envelope(value)
    try:
        if envelope:
            return Unpacked(StoredEnvelope.model_validate_json(value).events)
        return Unpacked([StoredEvent.model_validate_json(value)])
    except ValidationError as exc:
        items = envelope_items(value) if envelope else None
        if items is None:
            return Unpacked(refused=[refusal(reason_of(exc), payload_of(value), exc)])
    unpacked = Unpacked()
    for index, item in enumerate(items):
        try:
            unpacked.events.append(StoredEvent.model_validate(item))
        except ValidationError as item_exc:
            unpacked.refused.append(refusal(f"events[{index}]: {reason_of(item_exc)}", item, item_exc))
    return unpacked


def envelope_items(value: bytes) -> list[Any] | None:
    """The items of an envelope that parses as JSON but does not validate as a whole (None: not one)."""
    try:
        parsed = from_json(value)  # pydantic's own parser: the items are judged as single messages are
    except ValueError:
        return None
    items = parsed.get("events") if isinstance(parsed, dict) else None
    return items if isinstance(items, list) else None


def refusal(reason: str, payload: Any, exc: ValidationError) -> Refusal:
    return Refusal(reason, payload, [problem.message for problem in problems(exc)])


def reason_of(exc: ValidationError) -> str:
    first = problems(exc)[0]
    if first.type == "json_invalid":
        return "undecodable: not valid JSON"
    return f"wrong schema: {first.where or 'message'}: {first.message}"


def payload_of(value: bytes) -> Any:
    """The original message as JSON when it parses, else as text, so it can be fixed and replayed."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", errors="replace")
