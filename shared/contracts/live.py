"""The live-updates contract: what the stream processors publish on the live topic (stream -> gateway,
and any other reader of the counts, such as the ETL overview) and what the WebSocket gateway sends to
and accepts from dashboards.

The live topic carries two kinds of message, both JSON objects with a `type`:
- `presence`: one stream replica's active-user counts per events-topic partition (`Presence`);
- `events`: a batch of new events as dashboards see them (`events_message`), written by orjson with
  `type` first, so a reader that wants only the counts can skip them unparsed (`is_events_message`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.contracts.events import StoredEvent, iso_utc
from shared.contracts.limits import MAX_EVENT_NAME_LENGTH

MAX_SUBSCRIBED_EVENTS = 100
EVENTS_MESSAGE_PREFIX = b'{"type":"events"'
EventName = Annotated[str, Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)]


# --- stream -> live topic ----------------------------------------------------------------------------


class Presence(BaseModel):
    """One stream replica's active-user counts for the events-topic partitions it owns right now.

    Events are keyed by user id, so a user lives on exactly one partition: readers sum the latest fresh
    count of every partition, whichever replica reported it.
    """

    type: Literal["presence"] = "presence"
    replica: str
    window_seconds: int
    partitions: dict[int, int] = Field(description="partition -> distinct users active in the window")
    sent_at: float = Field(description="Unix time of the replica's clock")


def live_event_of(event: StoredEvent) -> dict[str, Any]:
    """What dashboards see of an event (a `LiveEvent`, as JSON); `amount` only when properties.amount
    is a number. Built as a plain dict: the processor makes one per event, a model cost twice as much."""
    return {
        "event": event.event,
        "user_id": event.user_id,
        "timestamp": iso_utc(event.timestamp),
        "amount": number_or_none(event.properties.get("amount")),
    }


def number_or_none(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (booleans, strings, huge integers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def events_message(replica: str, events: list[dict[str, Any]]) -> bytes:
    """A live-topic `events` message: `live_event_of` dicts from one stream replica."""
    return orjson.dumps({"type": "events", "replica": replica, "events": events})


def is_events_message(value: bytes) -> bool:
    return value.startswith(EVENTS_MESSAGE_PREFIX)


def read_live_message(value: bytes) -> Presence | list[Any]:
    """A live-topic message: a replica's `Presence`, or the events of an `events` message as parsed JSON
    (each validated later, by `new_event_text`, only when some client wants it). ValueError otherwise."""
    message = orjson.loads(value)
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "events":
        events = message.get("events")
        if not isinstance(events, list):
            raise ValueError("events is not a list")
        return events
    if kind == "presence":
        return Presence.model_validate(message)
    raise ValueError(f"unknown message type {kind!r}")


# --- gateway -> dashboards ---------------------------------------------------------------------------


class LiveEvent(BaseModel):
    """One accepted event as dashboards see it (no properties except a numeric `amount`)."""

    model_config = ConfigDict(extra="ignore")

    event: str
    user_id: str
    timestamp: str = Field(description="ISO 8601 UTC, as stored")
    amount: float | None = None

    def client_text(self) -> str:
        """The `new_event` WebSocket message, encoded once and shared by every client."""
        body: dict[str, Any] = {
            "type": "new_event",
            "event": self.event,
            "user_id": self.user_id,
            "timestamp": self.timestamp,
        }
        if self.amount is not None:
            body["amount"] = self.amount
        return orjson.dumps(body).decode()


def new_event_text(raw: Any) -> str | None:
    """One event of a live-topic `events` message (as parsed JSON) as the client message; None if invalid.

    The gateway validates an event only when some client subscribed to its name: most of the stream is
    never sent, and validating every event cost more than everything else the feed does."""
    try:
        return LiveEvent.model_validate(raw).client_text()
    except ValidationError:
        return None


def active_users_text(count: int) -> str:
    return orjson.dumps({"type": "active_users", "count": count}).decode()


def dropped_text(count: int) -> str:
    return orjson.dumps({"type": "dropped", "count": count}).decode()


def error_text(code: str, message: str, details: Any = None) -> str:
    body: dict[str, Any] = {"type": "error", "error": code, "message": message}
    if details is not None:
        body["details"] = details
    return orjson.dumps(body).decode()


def subscribed_text(events: frozenset[str] | None) -> str:
    return orjson.dumps({"type": "subscribed", "events": None if events is None else sorted(events)}).decode()


PONG_TEXT = orjson.dumps({"type": "pong"}).decode()


# --- dashboards -> gateway ---------------------------------------------------------------------------


class Subscribe(BaseModel):
    """Client -> gateway: only these event names from now on (`[]`: counts only; null: all)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    events: Annotated[list[EventName], Field(max_length=MAX_SUBSCRIBED_EVENTS)] | None


class Ping(BaseModel):
    """Client -> gateway: an application-level liveness check, answered with `pong`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["ping"]


ClientMessageType = Annotated[Subscribe | Ping, Field(discriminator="type")]
ClientMessage: TypeAdapter[Subscribe | Ping] = TypeAdapter(ClientMessageType)
