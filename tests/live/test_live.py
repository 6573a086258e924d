"""Live counts end to end: POST -> Kafka -> stream (live counts) -> live topic -> gateway -> WebSocket.

Clients are real `websockets` connections to real service processes. The gateway's parts have
hand-written cases in test_gateway.py, the stream processor's live counts in tests/stream/test_live_counts.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus

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
