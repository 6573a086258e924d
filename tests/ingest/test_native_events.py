"""The native ingest shortcut (services/ingest/native_events.py) accepts exactly what `IncomingEvent` accepts,
with the same message; everything else is judged by the model, which writes the rejection reasons."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.ingest.intake import Intake, event_messages
from services.ingest.native_events import NativeEvents, native_event, plain_event
from shared.contracts import envelope
from shared.contracts.events import AcceptedEvent, new_event_ids
from shared.contracts.limits import MAX_ENVELOPE_BYTES, MAX_PROPERTIES_BYTES
from shared.validation import reasons as describe

RECEIVED_AT = datetime(2026, 11, 28, 12, 30, 45, 123456, tzinfo=UTC)


def by_model(item: Any) -> AcceptedEvent | list[str]:
    """The reference: the model's event, or its rejection reasons."""
    try:
        return native_event(item, RECEIVED_AT)
    except (ValidationError, ValueError, TypeError) as exc:
        return describe(exc)


def same_event(fast: AcceptedEvent, model: AcceptedEvent, item: dict[str, Any]) -> None:
    fast_message, model_message = orjson.loads(fast.message), orjson.loads(model.message)
    if item.get("event_id") is None:  # generated: random on both paths
        assert uuid.UUID(fast_message.pop("event_id")).version == 4
        model_message.pop("event_id")
        assert fast.message.replace(fast.event_id.encode(), model.event_id.encode()) == model.message
    assert fast_message == model_message
    assert (fast.key, fast.timestamp, fast.properties) == (model.key, model.timestamp, model.properties)


def plain_times() -> st.SearchStrategy[str]:
    """ISO 8601 texts as clients write them, around the accepted range (1970 to 2200)."""
    zones = st.one_of(
        st.none(), st.just(UTC), st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    )
    moments = st.datetimes(min_value=datetime(1969, 12, 30), max_value=datetime(2200, 1, 2), timezones=zones)
    spec = st.sampled_from(["seconds", "milliseconds", "microseconds", "auto"])
    return st.builds(
        lambda moment, timespec, zulu: moment.isoformat(timespec=timespec).replace(
            "+00:00", "Z" if zulu else "+00:00"
        ),
        moments,
        spec,
        st.booleans(),
    )


def times() -> st.SearchStrategy[Any]:
    """ISO 8601 texts in the forms clients send, near and beyond the accepted range, and oddities."""
    zones = st.one_of(
        st.none(),
        st.just(UTC),
        st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m))),
    )
    moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)
    spec = st.sampled_from(["seconds", "milliseconds", "microseconds", "minutes", "auto"])

    def written(moment: datetime, timespec: str, zulu: bool, separator: str) -> str:
        text = moment.isoformat(sep=separator, timespec=timespec)
        return text.replace("+00:00", "Z") if zulu else text

    texts = st.builds(written, moments, spec, st.booleans(), st.sampled_from(["T", " ", "t"]))
    edited = st.builds(lambda t, cut: t[:cut], texts, st.integers(10, 32))  # truncated, lost zone digits
    fractions = st.builds(
        lambda day, digits: f"{day}T23:59:59.{digits}Z",
        st.sampled_from(["1969-12-31", "2023-03-01", "2199-12-31", "2200-01-01"]),
        st.text("0123456789", min_size=1, max_size=9),
    )
    return st.one_of(
        texts,
        edited,
        fractions,
        st.sampled_from(
            [
                "2023-02-30T10:00:00Z",
                "2023-03-01T24:00:00Z",
                "2023-03-01T23:59:60Z",
                "2023-03-01T10:00:00+24:00",
                "2023-03-01T10:00:00z",
                "20230301T100000Z",
                "2023-03-01T10:00:00+0100",
                "٢٠٢٣-03-01T10:00:00Z",
                "1970-01-01T00:30:00+01:00",
                "2199-12-31T23:30:00-01:00",
                "",
            ]
        ),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False),
        st.none(),
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
names = st.one_of(st.text(max_size=210), st.sampled_from(["page_view", "x" * 200, "x" * 201]), st.integers())
ids = st.one_of(
    st.none(), st.text(max_size=205), st.sampled_from(["u1", "u" * 200, "u" * 201]), st.integers()
)
event_ids = st.one_of(
    st.none(),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: f"{{{u}}}"),
    st.text(max_size=40),
    st.integers(),
)
properties = st.one_of(
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    st.just({"big": "x" * MAX_PROPERTIES_BYTES}),
    st.just({"beyond_64_bits": 2**64}),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=5),
)
odd_fields = {
    "event": names,
    "user_id": ids,
    "anonymous_id": ids,
    "timestamp": times(),
    "properties": properties,
    "event_id": event_ids,
    "extra": json_values,
}
# Fields as ordinary clients send them, so that many items are valid and the interesting edges
# (lengths, the time range, zones, ids) are reached with everything else right.
plain_fields = {
    "event": st.text(min_size=1, max_size=201),
    "user_id": st.one_of(st.none(), st.text(min_size=1, max_size=201)),
    "anonymous_id": st.text(min_size=1, max_size=201),
    "timestamp": plain_times(),
    "properties": st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    "event_id": st.one_of(st.none(), st.uuids().map(str)),
}
plain_items = st.builds(
    lambda name, user, rest: {"event": name, "user_id": user, **rest} if user else {"event": name, **rest},
    plain_fields["event"],
    st.one_of(st.none(), st.text(min_size=1, max_size=201)),
    st.fixed_dictionaries({}, optional={k: v for k, v in plain_fields.items() if k != "user_id"}),
)
items = st.one_of(  # plain items three times as often as odd ones
    st.fixed_dictionaries({}, optional=odd_fields),
    plain_items,
    plain_items,
    plain_items,
    st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=5), st.none()),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items)
@example({"event": "page_view", "user_id": "u1", "timestamp": "2023-03-01T10:00:00Z", "properties": {"a": 1}})
@example({"event": "e", "anonymous_id": "a", "timestamp": "2023-03-01T10:00:00.5+05:30"})
@example({"event": "e", "user_id": "u", "event_id": "0b6f7f55-8d9b-4a43-9a51-3f0d8c1e2a77"})
@example({"event": "e", "user_id": "u", "event_id": "0B6F7F55-8D9B-4A43-9A51-3F0D8C1E2A77"})
@example({"event": "e", "user_id": "u", "timestamp": "1969-12-31T23:59:59.999999Z"})
@example({"event": "e", "user_id": "u", "properties": None})
def test_the_shortcut_accepts_only_what_the_model_accepts_and_writes_the_same_message(item: Any) -> None:
    fast = plain_event(item, RECEIVED_AT, new_event_ids(1))
    model = by_model(item)
    event("shortcut" if fast else "model accepts" if isinstance(model, AcceptedEvent) else "model rejects")
    if fast is not None:
        assert isinstance(model, AcceptedEvent), f"shortcut accepted what the model rejects: {model}"
        same_event(fast, model, item)
    converted: AcceptedEvent | list[str]
    try:
        converted = NativeEvents(1)(item, RECEIVED_AT)
    except (ValidationError, ValueError, TypeError) as exc:
        converted = describe(exc)
    if isinstance(model, AcceptedEvent):
        assert isinstance(converted, AcceptedEvent)
        same_event(converted, model, item)
    else:
        assert converted == model  # the same readable reasons, from the model


@pytest.mark.parametrize(
    "item",
    [
        {
            "event": "page_view",
            "user_id": "u1",
            "timestamp": "2023-03-01T10:00:00Z",
            "properties": {"a": [1]},
        },
        {"event": "page_view", "anonymous_id": "a1", "timestamp": "2023-03-01T10:00:00.123+01:00"},
        {"event": "page_view", "user_id": "u1", "event_id": str(uuid.uuid4()), "unknown": "ignored"},
    ],
)
def test_ordinary_events_take_the_shortcut(item: dict[str, Any]) -> None:
    assert plain_event(item, RECEIVED_AT, new_event_ids(1)) is not None


def test_a_request_of_plain_events_draws_one_id_per_event_without_one() -> None:
    items = [{"event": "e", "user_id": f"u{i}"} for i in range(50)]
    convert = NativeEvents(len(items))
    ids = [convert(item, RECEIVED_AT).event_id for item in items]
    assert len(set(ids)) == 50


def test_new_event_ids_are_distinct_canonical_version_4_uuids() -> None:
    drawn = list(new_event_ids(1000))
    assert len(set(drawn)) == 1000
    for text in drawn:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def event_of_size(message_bytes: int) -> AcceptedEvent:
    """A plain event of one user whose events-topic message is exactly `message_bytes` long."""
    item = {"event": "e", "user_id": "u1", "timestamp": "2023-03-01T10:00:00Z", "properties": {"p": ""}}
    padding = message_bytes - len(NativeEvents(1)(item, RECEIVED_AT).message)
    accepted = NativeEvents(1)({**item, "properties": {"p": "x" * padding}}, RECEIVED_AT)
    assert len(accepted.message) == message_bytes
    return accepted


@pytest.mark.parametrize("overshoot", range(-16, 4))
def test_envelopes_near_the_size_limit_stay_loadable(overshoot: int) -> None:
    """Joined events around MAX_ENVELOPE_BYTES: every envelope, framing included, fits the loader's limit."""
    events = [event_of_size(30_000) for _ in range(17)]
    joined = sum(len(e.message) + 1 for e in events) - 1
    events.append(event_of_size(MAX_ENVELOPE_BYTES - joined - 1 + overshoot))
    messages = event_messages("events", events, partitions=4)
    assert all(len(m.value) <= MAX_ENVELOPE_BYTES for m in messages)
    unpacked = [envelope.unpack(m.value) for m in messages]
    assert not any(u.refused for u in unpacked)
    assert [str(e.event_id) for u in unpacked for e in u.events] == [e.event_id for e in events]


# --- event_ids repeated inside one request (README, Definitions: "Duplicates") ------------------------

POOL = ["0b6f7f55-8d9b-4a43-9a51-3f0d8c1e2a77", "6d3a1f0e-1c2b-4d5e-8f90-a1b2c3d4e5f6"]
repeated_ids = st.one_of(
    st.sampled_from(POOL),
    st.sampled_from(POOL).map(str.upper),
    st.sampled_from(POOL).map(lambda u: f"{{{u}}}"),
)
request_items = st.lists(
    st.one_of(
        st.builds(lambda item, eid: {**item, "event_id": eid}, plain_items, repeated_ids),
        st.builds(
            lambda name, eid, props: {"event": name, "user_id": "u1", "event_id": eid, "properties": props},
            st.sampled_from(["a", "b"]),
            repeated_ids,
            st.sampled_from([{}, {"x": 1}, {"x": 1.0}, {"x": True}, {"y": 2, "x": 1}, {"x": 1, "y": 2}]),
        ),
        items,
    ),
    min_size=1,
    max_size=6,
)


def request_outcome(items: list[Any], convert: Any) -> tuple[list[bytes], list[tuple[int, list[str]]]]:
    """The messages a request would publish and its rejections, without Kafka."""
    intake = Intake(producer=None, topics=None)  # type: ignore[arg-type]  # nothing is published
    for index, item in enumerate(items):
        intake.add(index, item, convert, RECEIVED_AT)
    intake.reject_conflicting_ids(items)
    published = [e.message for e in intake.accepted if str(e.event_id) in {*POOL}]
    return published, [(r.index, r.errors) for r in intake.rejected]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_items)
def test_rule_duplicates_a_request_repeating_an_event_id_with_other_content_loses_those_items_on_both_paths(
    items: list[Any],
) -> None:
    """The shortcut and the model give one request the same outcome, conflicts included."""
    fast = request_outcome(items, NativeEvents(len(items)))
    model = request_outcome(items, native_event)
    assert fast == model


def test_rule_duplicates_conflicting_copies_in_one_request_are_all_rejected_identical_ones_kept() -> None:
    same = {"event": "a", "user_id": "u1", "event_id": POOL[0], "timestamp": "2023-03-01T10:00:00Z"}
    items = [
        same,
        {**same, "properties": {"x": 1}},  # conflicts with 0 and 2
        dict(same),  # identical to 0
        {"event": "b", "user_id": "u1", "event_id": POOL[1], "properties": {"x": 1, "y": 2}},
        {"event": "b", "user_id": "u1", "event_id": POOL[1].upper(), "properties": {"y": 2, "x": 1}},  # same
    ]
    published, rejected = request_outcome(items, NativeEvents(len(items)))
    assert [index for index, _ in rejected] == [0, 1, 2]
    assert "item(s) 0, 2 of this request carry it with different content" in rejected[1][1][0]
    assert len(published) == 2  # the two copies of POOL[1]; storage collapses them
