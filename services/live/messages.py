"""The live-updates contract: what the stream processors publish on the live topic (stream -> gateway)
and what the WebSocket gateway sends to and accepts from dashboards.

Both services/stream/live_counts.py (producer) and services/live (consumer) import these models. It
depends only on pydantic and orjson so it can move to shared/ unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.constants import MAX_EVENT_NAME_LENGTH

MAX_SUBSCRIBED_EVENTS = 100
EventName = Annotated[str, Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)]


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


class LiveEvents(BaseModel):
    """A small batch of new events from one stream replica."""

    type: Literal["events"] = "events"
    replica: str
    events: list[LiveEvent]


class Presence(BaseModel):
    """One stream replica's active-user counts for the events-topic partitions it owns right now.

    Events are keyed by user id, so a user lives on exactly one partition: the gateway sums the
    latest fresh count of every partition, whichever replica reported it.
    """

    type: Literal["presence"] = "presence"
    replica: str
    window_seconds: int
    partitions: dict[int, int] = Field(description="partition -> distinct users active in the window")
    sent_at: float = Field(description="Unix time of the replica's clock")


LiveMessage = TypeAdapter(Annotated[LiveEvents | Presence, Field(discriminator="type")])


def new_event_text(raw: Any) -> str | None:
    """One event of a live-topic `events` message (as parsed JSON) as the client message; None if invalid.

    The gateway validates an event only when some client subscribed to its name: most of the stream is
    never sent, and pydantic cost more than everything else the feed does (py-spy, 1,000 events/s)."""
    try:
        return LiveEvent.model_validate(raw).client_text()
    except ValidationError:
        return None


class Subscribe(BaseModel):
    """Client -> gateway: only these event names from now on (`[]`: counts only; null: all)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    events: Annotated[list[EventName], Field(max_length=MAX_SUBSCRIBED_EVENTS)] | None


class Ping(BaseModel):
    """Client -> gateway: an application-level liveness check, answered with `pong`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["ping"]


ClientMessage = TypeAdapter(Annotated[Subscribe | Ping, Field(discriminator="type")])


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
