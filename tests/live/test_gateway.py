"""The gateway's parts with hand-written expectations: combining replicas' counts, a client's budget and
queue, the hub's subscriptions, and the synchronous send of its uvicorn protocol to a real client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from deploy.kafka.broker import free_port
from services.live.fanout_protocol import FanoutWebSocketProtocol, FramedText, send_nowait_of
from services.live.hub import Client, Hub
from services.live.settings import LiveSettings
from shared.contracts.live import Presence
from shared.live_topic import PresenceBoard
from tests.support import wait_until


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
