"""Live counts end to end: POST -> Kafka -> stream (live counts) -> live topic -> gateway -> WebSocket.

Clients are real `websockets` connections to real service processes; the small pure parts (the
active-user window, combining replicas, a client's budget) have hand-written cases at the end.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka.structs import ConsumerRecord
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from deploy.kafka.broker import free_port
from services.live.fanout_protocol import FanoutWebSocketProtocol, FramedText, send_nowait_of
from services.live.hub import Client, Hub
from services.live.settings import LiveSettings
from services.stream.active_users import ActiveUsers
from services.stream.live_counts import LiveCounter, LivePublisher
from services.stream.settings import StreamSettings
from shared.contracts.events import StoredEvent, iso_utc
from shared.contracts.live import LiveEvent, Presence, number_or_none, read_live_message
from shared.live_topic import LiveTopicReader, PresenceBoard, ReaderOptions
from tests.live.client import (
    both_replicas_own_partitions,
    event,
    fresh_user,
    is_type,
    open_live,
    open_stalled,
    post_events,
)
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, Environment, ServiceProcess, auth, wait_until

OLD = "2023-03-01T10:00:00Z"


@pytest.fixture(scope="module")
def shared_system(
    kafka_bootstrap: str, clickhouse_server_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Environment, ServiceProcess]]:
    """One all-in-one process for the tests that do not depend on exact counts or special settings."""
    environment = Environment(kafka_bootstrap, clickhouse_server_url, tmp_path_factory.mktemp("live"))
    process = environment.service("all")
    try:
        yield environment, process.start()
    finally:
        process.kill()


@pytest.fixture
def live_system(shared_system: tuple[Environment, ServiceProcess]) -> ServiceProcess:
    return shared_system[1]


async def test_posted_event_arrives_as_new_event_with_amount(live_system: ServiceProcess) -> None:
    client = await open_live(live_system.url)
    first = await client.wait_for(lambda m: True)
    assert first["type"] == "active_users" and isinstance(first["count"], int)
    user = fresh_user()
    await post_events(
        live_system.url,
        [
            event("purchase", user, "2024-05-01T12:00:00Z", amount=99, sku="x"),
            event("signup", user, amount="12"),
        ],
    )
    purchase = await client.wait_for(is_type("new_event", user_id=user, event="purchase"))
    assert purchase == {
        "type": "new_event",
        "event": "purchase",
        "user_id": user,
        "timestamp": "2024-05-01T12:00:00.000Z",
        "amount": 99.0,
    }
    signup = await client.wait_for(is_type("new_event", user_id=user, event="signup"))
    assert "amount" not in signup  # properties.amount is a string, not a number
    await client.close()


async def test_unauthenticated_connections_are_refused(live_system: ServiceProcess) -> None:
    for token, status in [(None, 401), ("not-a-key-0123456789", 401), (INGEST_KEY, 403)]:
        with pytest.raises(InvalidStatus) as refused:
            await open_live(live_system.url, token)
        assert refused.value.response.status_code == status
    by_header = await open_live(live_system.url, None, additional_headers=auth(READ_KEY))
    by_admin_token = await open_live(live_system.url, ADMIN_KEY)
    for client in (by_header, by_admin_token):
        assert (await client.wait_for(lambda m: True))["type"] == "active_users"
        await client.close()


async def test_permessage_deflate_is_declined_by_default(live_system: ServiceProcess) -> None:
    """Browsers offer compression; the gateway declines it unless ANALYTICS_WS_COMPRESSION=true."""
    client = await open_live(live_system.url, compression="deflate")
    assert "Sec-WebSocket-Extensions" not in client.connection.response.headers
    assert (await client.wait_for(lambda m: True))["type"] == "active_users"
    await client.close()


async def test_subscribe_filters_event_names(live_system: ServiceProcess) -> None:
    purchases, counts_only = await open_live(live_system.url), await open_live(live_system.url)
    await purchases.send({"type": "subscribe", "events": ["purchase"]})
    await counts_only.send({"type": "subscribe", "events": []})
    assert (await purchases.wait_for(is_type("subscribed")))["events"] == ["purchase"]
    assert (await counts_only.wait_for(is_type("subscribed")))["events"] == []
    user = fresh_user()
    await post_events(live_system.url, [event("signup", user), event("purchase", user, amount=5.5)])
    await purchases.wait_for(is_type("new_event", user_id=user, event="purchase"))
    await counts_only.drain(1.0)
    assert not [m for m in purchases.of_type("new_event") if m["event"] != "purchase"]
    assert counts_only.of_type("new_event") == []

    await purchases.send({"type": "subscribe", "events": None})
    assert (await purchases.wait_for(is_type("subscribed")))["events"] is None
    await post_events(live_system.url, [event("signup", user)])
    await purchases.wait_for(is_type("new_event", user_id=user, event="signup"))
    await purchases.close()
    await counts_only.close()


async def test_bad_client_messages_get_error_replies(live_system: ServiceProcess) -> None:
    client = await open_live(live_system.url)
    bad = [
        "not json",
        '{"type": "dance"}',
        '{"events": []}',
        '{"type": "subscribe", "events": "purchase"}',
        '{"type": "subscribe", "events": [1]}',
        "[1, 2]",
        b"\x00binary",
        "x" * 10_000,
    ]
    for message in bad:
        await client.send(message)
        reply = await client.wait_for(lambda m: m["type"] in {"error", "subscribed"})
        assert reply["type"] == "error", (message, reply)
        assert reply["error"] and reply["message"]
    await client.send({"type": "ping"})
    await client.wait_for(is_type("pong"))  # still connected and answering
    await client.close()


async def test_two_gateway_replicas_both_deliver(
    live_system: ServiceProcess,
    shared_system: tuple[Environment, ServiceProcess],
    services: list[ServiceProcess],
) -> None:
    gateway = shared_system[0].service("live")
    services.append(gateway)
    gateway.start()
    clients = [await open_live(live_system.url), await open_live(gateway.url)]
    for client in clients:
        assert (await client.wait_for(lambda m: True))["type"] == "active_users"
    user = fresh_user()
    await post_events(live_system.url, [event("purchase", user, amount=1)])
    for client in clients:
        await client.wait_for(is_type("new_event", user_id=user))
        await client.close()


async def test_active_users_counts_fresh_users_not_backfills(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    system = environment.service("all", LIVE_HEARTBEAT_SECONDS=1)
    services.append(system)
    system.start()
    client = await open_live(system.url)
    assert await client.wait_for(is_type("active_users")) == {"type": "active_users", "count": 0}
    old_users, fresh = [fresh_user() for _ in range(3)], fresh_user()
    await post_events(system.url, [event("page_view", u, OLD) for u in old_users])
    await post_events(system.url, [event("page_view", fresh), event("click", fresh)])
    await client.wait_for(is_type("active_users", count=1))
    for user in [*old_users, fresh]:  # every event went through the stream by now ...
        await client.seen_or_wait(is_type("new_event", user_id=user))
    later = [m for m in await client.drain(2.5) if m["type"] == "active_users"]
    assert later and {m["count"] for m in later} == {1}  # ... and the backfill never raised the count
    async with httpx.AsyncClient(base_url=system.url, headers=auth(READ_KEY), timeout=30) as http:
        overview = await http.get("/api/v1/analytics/overview")  # the ETL overview reads the same count
    assert overview.status_code == 200, overview.text
    assert overview.json()["active_users_now"] == 1
    await client.close()


async def test_counts_of_two_stream_replicas_add_up(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    system = environment.service("all")
    second = environment.service("stream", ANALYTICS_DATA_DIR=environment.workdir / "replica-2")
    services.extend([system, second])
    system.start()
    second.start()
    await both_replicas_own_partitions(environment)
    client = await open_live(system.url)
    users = [fresh_user() for _ in range(12)]  # keyed by user: spread over both replicas' partitions
    await post_events(system.url, [event("page_view", u) for u in users])
    await client.wait_for(is_type("active_users", count=12), timeout=30)
    await client.close()


async def test_stalled_client_does_not_delay_a_healthy_one(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    # No rate limit, no staleness limit, a queue as long as a live-topic batch: only a stalled socket
    # can lose messages.
    system = environment.service(
        "all", LIVE_MAX_EVENTS_PER_SECOND=1_000_000, LIVE_CLIENT_QUEUE_SIZE=500, LIVE_MAX_DELAY_SECONDS=60
    )
    services.append(system)
    system.start()
    stalled = await open_stalled(system.url)
    healthy = await open_live(system.url)
    reading = asyncio.create_task(healthy.drain(600))

    def accounted() -> int:  # what the healthy client received, or was told it lost
        return len(healthy.of_type("new_event")) + sum(m["count"] for m in healthy.of_type("dropped"))

    fat_name, fat_user = "flood".ljust(200, "f"), fresh_user().ljust(200, "p")
    # 15,000 events, ~7 MB for the stalled client: more than its socket buffers hold (~4 MB). They go in
    # rounds no larger than the client queue, each waiting for the healthy client: a client that keeps
    # reading can then lose nothing, whatever the machine's load (a single burst could outrun it, or the
    # processor's bound on events awaiting the live topic), so a loss or a stall here is the stalled
    # client's doing.
    for sent in range(500, 15_001, 500):
        await post_events(system.url, [event(fat_name, fat_user) for _ in range(500)])
        await wait_until(
            lambda sent=sent: accounted() >= sent or reading.done(),
            timeout=60,
            state=lambda sent=sent: f"sent {sent}, received {len(healthy.of_type('new_event'))}",
        )
        assert not reading.done(), f"the healthy client stopped reading: {reading.exception()!r}"
        assert healthy.of_type("dropped") == []  # the healthy client got every event of the round
    marker = fresh_user()
    await post_events(system.url, [event("marker", marker)])
    await wait_until(lambda: any(m.get("user_id") == marker for m in healthy.seen), timeout=30)
    reading.cancel()

    # The stalled client reads at last: past what its buffers held, it lost messages and is told.
    notice = await stalled.wait_for(is_type("dropped"), timeout=60)
    assert notice["count"] > 0
    await healthy.close()
    await stalled.close()


async def test_flood_is_rate_limited_per_client_and_accounted(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    system = environment.service("all", LIVE_MAX_EVENTS_PER_SECOND=5)
    services.append(system)
    system.start()
    client = await open_live(system.url)
    user = fresh_user()
    await post_events(system.url, [event("flood", user) for _ in range(200)])
    await client.wait_for(is_type("dropped"))
    await client.drain(2.0)
    delivered = [m for m in client.of_type("new_event") if m["user_id"] == user]
    dropped = sum(m["count"] for m in client.of_type("dropped"))
    assert len(delivered) + dropped == 200
    assert len(delivered) <= 5 + 3 * 5  # the burst plus at most ~3 s of refills
    await client.close()


# The pure parts, with hand-written expectations.


def test_amount_is_only_a_finite_number() -> None:
    assert [number_or_none(v) for v in (99, 1.5, True, "12", None, 10**400)] == [
        99.0,
        1.5,
        None,
        None,
        None,
        None,
    ]


def test_active_users_window_ignores_old_and_far_future_events() -> None:
    active = ActiveUsers(window_seconds=300)
    now = 1_000_000.0
    assert active.see(0, "a", now - 10, now) is True
    assert active.see(0, "a", now - 5, now) is False  # same user again
    assert active.see(1, "b", now - 299, now) is True
    assert active.see(1, "old", now - 301, now) is False
    assert active.see(1, "skew", now + 30, now) is True  # a little clock skew counts as now
    assert active.see(1, "future", now + 3600, now) is False
    assert active.counts(now, owned=[0, 1, 2]) == {0: 1, 1: 2, 2: 0}
    assert active.counts(now + 2, owned=[0, 1]) == {0: 1, 1: 1}  # b expired
    assert active.counts(now + 400, owned=[1]) == {1: 0}


def report(replica: str, partitions: dict[int, int]) -> Presence:
    return Presence(replica=replica, window_seconds=300, partitions=partitions, sent_at=0)


def test_presence_board_combines_replicas_and_follows_handoffs() -> None:
    board = PresenceBoard(ttl=10)
    board.update(report("a", {0: 3, 1: 2}), seen_at=100)
    board.update(report("b", {2: 4, 3: 0}), seen_at=100)
    assert board.total(now=101) == 9
    board.update(report("a", {0: 3}), seen_at=102)
    board.update(report("b", {1: 1, 2: 4, 3: 0}), seen_at=102)
    assert board.total(now=103) == 8  # partition 1 moved from a to b
    board.update(report("b", {1: 1, 2: 4, 3: 0}), seen_at=110)
    assert board.total(now=115) == 5  # a stopped reporting: its partition 0 expired
    assert board.total(now=200) is None


def test_client_budget_queue_bound_and_staleness_are_accounted() -> None:
    settings = LiveSettings(max_events_per_second=10, client_queue_size=4, max_delay_seconds=2)
    client = Client(socket=None, settings=settings, now=0.0)  # type: ignore[arg-type]
    client.offer_events([(0.0, f"e{i}") for i in range(25)], now=0.0)
    assert [text for _, text in client.events] == ["e6", "e7", "e8", "e9"] and client.dropped == 21
    client.offer_events([(0.05, "late")], now=0.05)  # half a token refilled: still over budget
    assert client.dropped == 22
    assert client.next_message(now=0.1) == '{"type":"dropped","count":22}'
    assert client.next_message(now=0.1) == "e6"
    assert client.next_message(now=2.5) is None and client.dropped == 3  # e7..e9 waited too long
    assert client.next_message(now=2.5) == '{"type":"dropped","count":3}'


def test_published_new_events_are_what_the_gateway_reads() -> None:
    """The processor writes its events messages with orjson, not a model: they must read as the
    contract's `LiveEvent`s, through the gateway's own reader and hub."""
    settings = StreamSettings()
    counter = LiveCounter(settings)
    now = datetime.now(UTC)
    events = [
        StoredEvent(
            event_id=uuid.uuid4(),
            event="purchase",
            user_id=f"u{i}",
            timestamp=now,
            received_at=now,
            properties={"amount": amount},
        )
        for i, amount in enumerate([99, "12", None])
    ]
    counter.observe_all(events, [0, 1, 2], time.time())
    publisher = LivePublisher(counter, None, "live", set, settings)  # type: ignore[arg-type]
    [message] = publisher.event_messages()
    read = read_live_message(message.value)
    assert isinstance(read, list)
    parsed = [LiveEvent.model_validate(raw) for raw in read]
    assert [(e.user_id, e.amount) for e in parsed] == [("u0", 99.0), ("u1", None), ("u2", None)]
    assert parsed[0].timestamp == iso_utc(now) and parsed[0].timestamp.endswith("Z")

    # The gateway itself parses with orjson, not the model: the same message through its feed and hub.
    hub = Hub(LiveSettings())
    subscriber = hub.connect(None)  # type: ignore[arg-type]
    hub.subscribe(subscriber, frozenset({"purchase"}))
    feed = LiveTopicReader("unused:9092", "live", ReaderOptions(), hub.publish)
    size = len(message.value)
    feed.handle(ConsumerRecord("live", 0, 5, 0, 0, None, message.value, None, -1, size, ()), history_end=0)
    sent = [json.loads(text) for _, text in subscriber.events]
    assert [(m["type"], m["user_id"], m.get("amount")) for m in sent] == [
        ("new_event", "u0", 99.0),
        ("new_event", "u1", None),
        ("new_event", "u2", None),
    ]


def test_hub_validates_only_subscribed_events_and_skips_invalid_ones() -> None:
    hub = Hub(LiveSettings())
    purchases, everything = hub.connect(None), hub.connect(None)  # type: ignore[arg-type]
    hub.subscribe(purchases, frozenset({"purchase"}))
    batch = [
        {"event": "purchase", "user_id": "u1", "timestamp": "t", "amount": 5},
        {"event": "signup", "user_id": "u2", "timestamp": "t"},
        {"event": "purchase"},  # wanted and invalid: skipped, counted
        "not an event",
    ]
    hub.publish(batch)
    assert [json.loads(text)["user_id"] for _, text in purchases.events] == ["u1"]
    assert [json.loads(text)["user_id"] for _, text in everything.events] == ["u1", "u2"]
    assert hub.invalid_events == 1 and hub.events_received == 4

    hub.subscribe(everything, frozenset())
    hub.publish([{"event": "signup"}])  # nobody wants it: never validated
    assert hub.invalid_events == 1 and len(purchases.events) == 1
    hub.publish([{"event": "purchase"}])  # still wanted by `purchases`: validated, invalid
    assert hub.invalid_events == 2
    hub.disconnect(purchases)
    hub.publish([{"event": "purchase"}])  # nobody is left who wants it
    assert hub.invalid_events == 2


async def test_new_events_wake_the_live_publisher_at_once() -> None:
    """The processor publishes new events as they are taken, not on a timer: observing one wakes the
    publishing loop's wait long before its timeout (the counts' heartbeat)."""
    counter = LiveCounter(StreamSettings())
    waiting = asyncio.create_task(counter.wait_for_events(timeout=60))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # nothing pending: it waits
    now = datetime.now(UTC)
    fresh = StoredEvent(event_id=uuid.uuid4(), event="e", user_id="u", timestamp=now, received_at=now)
    counter.observe_all([fresh], [0], time.time())
    await asyncio.wait_for(waiting, timeout=10)
    assert [e.event_id for e in counter.take_pending()] == [fresh.event_id]
    waiting = asyncio.create_task(counter.wait_for_events(timeout=60))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # drained: the next wait waits again
    waiting.cancel()


async def test_gateway_server_writes_to_idle_clients_directly() -> None:
    """The gateway's uvicorn protocol (services/live/fanout_protocol.py) offers `websocket.send_nowait`:
    a pre-framed `FramedText` and a plain text reach a real client, in order, without the ASGI send."""
    seen: dict[str, Any] = {}

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        send = send_nowait_of(websocket)
        seen["offered"] = send is not None
        if send is not None:
            seen["written"] = [send(FramedText("framed once")), send("plain text")]
        await websocket.receive()  # until the client leaves

    port = free_port()
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    # As the live component asks uvicorn to run the gateway (compression off by default).
    config = uvicorn.Config(
        app,
        port=port,
        ws=FanoutWebSocketProtocol,
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, timeout=10)
        async with connect(f"ws://127.0.0.1:{port}/ws") as client:
            received = [await asyncio.wait_for(client.recv(), timeout=10) for _ in range(2)]
        assert received == ["framed once", "plain text"]
    finally:
        server.should_exit = True
        await serving
    assert seen == {"offered": True, "written": [True, True]}
