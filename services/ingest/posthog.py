"""PostHog's capture protocol onto our event model, so posthog-js, posthog-python, posthog-node (and
PostHog's other libraries) send here unchanged.

A request holds one event, a bare list of events, or `{"api_key", "batch": [...], "sent_at"}`. Each
event becomes one stored event:
- `distinct_id` (top level, `$distinct_id`, else `properties.distinct_id`; numbers and objects as
  their JSON text, at most 200 characters) is the user_id;
- links (shared/contracts/persons.py): `$identify` links `properties.$anon_distinct_id` to the
  distinct id (it is the event's anonymous id), `$create_alias` links `properties.alias` to it; one
  person from then on, and for the past. The other id is read as distinct_id is (a long one is cut where
  that id's own events are cut); an id equal to the event's own links nothing;
- `$set` / `$set_once` at the top level are kept in `properties["$set"]` / `["$set_once"]` (merged
  over any already there), which is where the stream processor reads person properties from; an
  `$identify`'s other properties are the event's own, not the person's (source `posthog`), as in PostHog;
- `uuid` is the event_id (a retry is counted once); the project key is never stored.

The time is PostHog's: `timestamp` corrected for the client's clock with the request's `sent_at`
(`now + (timestamp - sent_at)`, unless `properties.$ignore_sent_at`), else `now - offset` ms, else
the time received. Each item goes through the intake as `{"data": event, "now", "sent_at"}`, PostHog's
own captured-event shape, so a dead letter replays to the same time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from shared.contracts.events import AcceptedEvent, IncomingEvent, as_utc, iso_utc
from shared.contracts.limits import MAX_EVENT_NAME_LENGTH, MAX_ID_LENGTH
from shared.errors import InvalidRequest, MalformedBody, PayloadTooLarge, Unauthorized

TOKEN_KEYS = ("api_key", "token", "$token")
PERSON_KEYS = ("$set", "$set_once")
# The events whose named property is the other id of a link: that id -> the event's distinct id.
IDENTIFY, ALIAS = "$identify", "$create_alias"
ANONYMOUS_ID, ALIAS_ID = "$anon_distinct_id", "alias"
TIME = TypeAdapter(datetime)
# A numeric client time with more digits than this is milliseconds, else seconds (as PostHog reads `_`).
SECONDS_DIGITS = 11


@dataclass
class CaptureRequest:
    """The events of one request, with the project key and the client's send time it carried."""

    events: list[Any]
    token: str | None
    sent_at: datetime | None

    def items(self, now: datetime) -> list[dict[str, Any]]:
        """What the intake converts (and dead-letters): each event with the request's times, keyless."""
        received = iso_utc(now)
        sent_at = iso_utc(self.sent_at) if self.sent_at else None
        return [{"data": without_keys(e), "now": received, "sent_at": sent_at} for e in self.events]


def capture_request(data: Any, fields: dict[str, str]) -> CaptureRequest:
    """Events, key and sent_at of a decoded body (`fields`: the form and query parameters)."""
    if isinstance(data, dict) and "batch" in data:
        events = data["batch"]
        if not isinstance(events, list):
            raise InvalidRequest("'batch' must be a list of events")
        token = first_text(data, TOKEN_KEYS) or tokens_of(events)
    elif isinstance(data, list):
        events, token = data, tokens_of(data)
    elif isinstance(data, dict):
        events, token = [data], tokens_of([data])
    else:
        raise InvalidRequest('body must be an event, a list of events or {"batch": [...]}')
    token = token or fields.get("api_key") or fields.get("token")
    sent_at = data.get("sent_at") if isinstance(data, dict) else None
    if sent_at in (None, ""):
        sent_at = fields.get("sent_at") or fields.get("_")
    return CaptureRequest(events, token, request_time(sent_at))


def check_size(events: list[Any], max_events: int) -> None:
    if not events:
        raise InvalidRequest("request holds no event")
    if len(events) > max_events:
        raise PayloadTooLarge(f"a request holds at most {max_events} events, got {len(events)}")


def first_text(source: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def event_token(event: Any) -> str | None:
    if not isinstance(event, dict):
        return None
    properties = event.get("properties")
    inner = first_text(properties, ("token",)) if isinstance(properties, dict) else None
    return first_text(event, TOKEN_KEYS) or inner


def tokens_of(events: list[Any]) -> str | None:
    """The one key the events carry (PostHog refuses a batch that mixes projects)."""
    tokens = {token for token in map(event_token, events) if token}
    if len(tokens) > 1:
        raise Unauthorized("batch submitted with inconsistent api_key values")
    return tokens.pop() if tokens else None


def without_keys(event: Any) -> Any:
    """The event without the project key (it authorised the request; it is not event data)."""
    if not isinstance(event, dict):
        return event
    clean = {k: v for k, v in event.items() if k not in TOKEN_KEYS}
    properties = clean.get("properties")
    if isinstance(properties, dict) and "token" in properties:
        clean["properties"] = {k: v for k, v in properties.items() if k != "token"}
    return clean


def request_time(value: Any) -> datetime | None:
    """The client's send time: ISO 8601, or Unix seconds / milliseconds; 400 when unreadable."""
    if value in (None, ""):
        return None
    try:
        return client_time(value)
    except (ValueError, OverflowError) as exc:
        raise MalformedBody(f"Malformed request data, invalid sent_at: {value!r}") from exc


def client_time(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, int | float):
        seconds = value / 1000 if len(str(int(abs(value)))) > SECONDS_DIGITS else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError) as exc:
            raise ValueError("out of range") from exc
    try:
        return as_utc(TIME.validate_python(value))
    except ValidationError as exc:
        raise ValueError("not an ISO 8601 date-time") from exc


def posthog_event(captured: Any, received_at: datetime) -> AcceptedEvent:
    """One captured PostHog event as our event, validated by the same `IncomingEvent` rules."""
    if not isinstance(captured, dict) or "data" not in captured:
        raise TypeError('a captured PostHog event is {"data": event, "now": ..., "sent_at": ...}')
    event = captured["data"]
    if not isinstance(event, dict):
        raise TypeError("each event must be a JSON object")
    name = event.get("event")
    if not isinstance(name, str) or not name:
        raise ValueError("event: event submitted with an empty event name")
    properties = properties_of(event)
    alias = id_text(properties.get(ALIAS_ID)) if name == ALIAS else None
    incoming = IncomingEvent(
        event=name[:MAX_EVENT_NAME_LENGTH],
        user_id=distinct_id_of(event),
        # The visitor known as $anon_distinct_id is this distinct id: IncomingEvent links the two.
        anonymous_id=id_text(properties.get(ANONYMOUS_ID)) if name == IDENTIFY else None,
        timestamp=event_time(event, properties, captured_times(captured, received_at)),
        properties=properties,
        event_id=event_uuid(event),
    )
    return incoming.accept(received_at, source="posthog", links_from=[alias] if alias else [])


def captured_times(captured: dict[str, Any], received_at: datetime) -> tuple[datetime, datetime | None]:
    """(now, sent_at) as capture recorded them; `now` defaults to the time this conversion runs."""
    try:
        now = client_time(captured["now"]) if captured.get("now") else received_at
        sent_at = client_time(captured["sent_at"]) if captured.get("sent_at") else None
    except (ValueError, OverflowError) as exc:
        raise ValueError("now/sent_at: not a time") from exc
    return now, sent_at


def id_text(value: Any) -> str | None:
    """An id as PostHog keeps it: strings as sent, anything else as its JSON text; 200 characters."""
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text[:MAX_ID_LENGTH] or None


def distinct_id_of(event: dict[str, Any]) -> str:
    value = event.get("distinct_id")
    if value is None:
        value = event.get("$distinct_id")
    if value is None and isinstance(event.get("properties"), dict):
        value = event["properties"].get("distinct_id")
    distinct_id = id_text(value)
    if distinct_id is None:
        raise ValueError("distinct_id: event submitted without a distinct_id")
    return distinct_id


def properties_of(event: dict[str, Any]) -> dict[str, Any]:
    """The event's properties with top-level `$set` / `$set_once` merged in (top level wins)."""
    properties = event.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise ValueError("properties: must be a JSON object")
    properties = dict(properties)
    for key in PERSON_KEYS:
        top = event.get(key)
        if top is not None:
            if not isinstance(top, dict):
                raise ValueError(f"{key}: must be a JSON object")
            inner = properties.get(key)
            properties[key] = {**inner, **top} if isinstance(inner, dict) else dict(top)
        inner = properties.get(key)
        if inner is not None and not isinstance(inner, dict):
            raise ValueError(f"properties.{key}: must be a JSON object")
    return properties


def event_time(
    event: dict[str, Any], properties: dict[str, Any], times: tuple[datetime, datetime | None]
) -> datetime:
    """PostHog's event time: the client's timestamp corrected for its clock, else now - offset."""
    now, sent_at = times
    if properties.get("$ignore_sent_at"):
        sent_at = None
    try:
        raw = event.get("timestamp")
        if raw not in (None, ""):
            try:
                moment = client_time(raw)
            except ValueError as exc:
                raise ValueError("timestamp: not an ISO 8601 date-time") from exc
            return now + (moment - sent_at) if sent_at else moment
        offset = event.get("offset")
        if offset not in (None, 0):
            if isinstance(offset, bool) or not isinstance(offset, int | float):
                raise ValueError("offset: must be a number of milliseconds")
            return now - timedelta(milliseconds=offset)
    except OverflowError as exc:
        raise ValueError("timestamp: out of range") from exc
    return now


def event_uuid(event: dict[str, Any]) -> uuid.UUID | None:
    value = event.get("uuid")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("uuid: must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ValueError("uuid: not a valid UUID") from exc
