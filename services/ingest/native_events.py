"""Native events (POST /api/v1/events) to `AcceptedEvent`s: ordinary events skip the pydantic model.

`IncomingEvent` defines what is valid. Building it for every event of a batch was the largest cost of
batch ingest (docs/performance.md). Most events
are plain: string fields of sane length, an ISO 8601 time, a JSON object of properties. `plain_event`
checks exactly those shapes and builds the same message the model would; for anything else (and every
invalid event) it answers None and the model decides, so errors and their wording come from one place.
tests/ingest/test_native_events.py checks with hypothesis that both paths build the same message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from shared.contracts.events import AcceptedEvent, IncomingEvent, as_utc, encode_event, new_event_ids
from shared.contracts.limits import (
    MAX_EVENT_NAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_PROPERTIES_BYTES,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
)

# The times the model reads the same way as datetime.fromisoformat (ASCII digits only: `\d` would
# also match other scripts' digits). Other forms (unix seconds, a space for T, ...) go to the model.
PLAIN_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
# A UUID in the text form the model writes back (lowercase, hyphenated): kept as sent.
PLAIN_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def plain_id(value: Any) -> bool:
    return value is None or (type(value) is str and 0 < len(value) <= MAX_ID_LENGTH)


def plain_time(value: Any) -> datetime | None:
    """The time as the model would store it, or None when the model must judge it."""
    if type(value) is not str or PLAIN_TIME.fullmatch(value) is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:  # e.g. 25:00, February 30th, an offset of 24 hours
        return None
    if moment.tzinfo is not UTC:  # `Z` parses as UTC itself
        moment = as_utc(moment)
    return moment if MIN_TIMESTAMP <= moment < MAX_TIMESTAMP else None


def plain_event(item: Any, received_at: datetime, new_ids: Iterator[str]) -> AcceptedEvent | None:
    """The accepted event when `item` is plainly valid; None: let `IncomingEvent` decide."""
    if type(item) is not dict:
        return None
    name = item.get("event")
    user_id = item.get("user_id")
    anonymous_id = item.get("anonymous_id")
    if (
        type(name) is not str
        or not 0 < len(name) <= MAX_EVENT_NAME_LENGTH
        or not plain_id(user_id)
        or not plain_id(anonymous_id)
        or (user_id is None and anonymous_id is None)
    ):
        return None
    timestamp = item.get("timestamp")
    if timestamp is None:
        timestamp = received_at
    elif (timestamp := plain_time(timestamp)) is None:
        return None
    event_id = item.get("event_id")
    if event_id is not None and (type(event_id) is not str or PLAIN_UUID.fullmatch(event_id) is None):
        return None
    properties = item.get("properties", {})
    if type(properties) is not dict:  # an explicit null too: the model decides
        return None
    accepted = AcceptedEvent(
        event_id if event_id is not None else next(new_ids),
        name,
        cast(str, user_id if user_id is not None else anonymous_id),  # one is a str: checked above
        timestamp,
        received_at,
        properties,
        "api",
        # An anonymous id sent beside a user id links it to the user (IncomingEvent.accept's rule).
        [anonymous_id]
        if user_id is not None and anonymous_id is not None and anonymous_id != user_id
        else [],
    )
    try:
        accepted.message = encode_event(accepted, properties)
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
        return None
    # The properties' JSON is part of the message: only a long message needs them measured on their own.
    if len(accepted.message) > MAX_PROPERTIES_BYTES and len(orjson.dumps(properties)) > MAX_PROPERTIES_BYTES:
        return None
    return accepted


class NativeEvents:
    """Converts the items of one request; the ids of events sent without one are drawn together."""

    def __init__(self, count: int) -> None:
        self.new_ids = new_event_ids(count)  # a plain event takes at most one

    def __call__(self, item: Any, received_at: datetime) -> AcceptedEvent:
        accepted = plain_event(item, received_at, self.new_ids)
        return accepted if accepted is not None else native_event(item, received_at)


def native_event(item: Any, received_at: datetime) -> AcceptedEvent:
    """An event judged by the model: the reference for what is valid, and the source of every error."""
    if not isinstance(item, dict):
        raise TypeError("each event must be a JSON object")
    return IncomingEvent.model_validate(item).accept(received_at)
