"""Fan-out to WebSocket clients: a bounded queue per client, so a slow one only loses its own messages.

The feed hands each batch of new events to `Hub.publish`, which validates and encodes once each event
that some client subscribed to (the others cost a dict lookup) and gives the clients of each distinct
subscription references to the shared text, within each client's per-second budget. Nothing here
awaits a socket: each client has its own writer task, and a client whose writer is stuck (its TCP
buffer is full) keeps at most `client_queue_size` messages, counting the rest as dropped and saying so
when it can. A new_event that waited more than `max_delay_seconds` is dropped too (and counted): under
overload clients get fresh events or a notice, never a growing lag. Counts are not queued: a client
holds only the latest one.

A client with nothing waiting is written to at once (`websocket.send_nowait`, fanout_protocol.py),
without waking its writer task; a message that cannot be written at once (the socket's buffer is
full, or messages are already waiting) goes through the queue above, so the order and the bounds hold.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import WebSocket

from services.live.fanout_protocol import FramedText, send_nowait_of
from services.live.settings import LiveSettings
from shared.contracts.live import active_users_text, dropped_text, new_event_text

CONTROL_QUEUE_SIZE = 32  # replies to the client's own messages (errors, pong, subscribed)
Queued = tuple[float, str]  # (when the gateway received it, the new_event text), shared by every client
Subscription = frozenset[str] | None  # None: every event

log = logging.getLogger(__name__)


class Client:
    """One dashboard connection: what waits to be sent, its filter, its rate budget and its losses."""

    def __init__(self, socket: WebSocket, settings: LiveSettings, now: float) -> None:
        self.socket = socket
        self.settings = settings
        self.events: deque[Queued] = deque(maxlen=settings.client_queue_size)
        self.control: deque[str] = deque(maxlen=CONTROL_QUEUE_SIZE)
        self.count: str | None = None  # the latest active_users text not yet sent
        self.subscription: Subscription = None  # changed through Hub.subscribe
        self.capacity = max(1.0, settings.max_events_per_second)
        self.tokens = self.capacity
        self.refilled_at = now
        self.dropped = 0
        self.dropped_total = 0
        self.sent = 0  # messages written to the socket (plain counts: read by /metrics, shared/metrics.py)
        self.noticed_at = -math.inf
        self.wake = asyncio.Event()
        self.send_nowait = send_nowait_of(socket)
        self.sending = False  # the writer task is awaiting a send

    def offer_events(self, matching: list[Queued], now: float) -> None:
        """Send or queue what the rate budget allows; the rest, and what a full queue pushes out, are lost."""
        if not matching:
            return
        rate = self.settings.max_events_per_second
        self.tokens = min(self.capacity, self.tokens + (now - self.refilled_at) * rate)
        self.refilled_at = now
        allowed = min(len(matching), int(self.tokens))
        self.tokens -= allowed
        self.lose(len(matching) - allowed)
        waiting = matching[:allowed]
        if waiting and self.idle(now):
            waiting = waiting[self.write_now(text for _, text in waiting) :]
        if waiting:
            self.lose(max(0, len(self.events) + len(waiting) - self.settings.client_queue_size))
            self.events.extend(waiting)
            self.wake.set()

    def offer_count(self, text: str, now: float) -> None:
        """The latest active_users message: sent at once when nothing waits, else replacing a queued one."""
        if self.idle(now) and self.write_now((text,)):
            self.count = None
            return
        self.count = text
        self.wake.set()

    def offer_control(self, text: str) -> None:
        self.control.append(text)
        self.wake.set()

    def lose(self, count: int) -> None:
        self.dropped += count
        self.dropped_total += count

    def notice_due(self, now: float) -> bool:
        return self.dropped > 0 and now - self.noticed_at >= self.settings.dropped_notice_seconds

    def idle(self, now: float) -> bool:
        """Nothing waits to be sent, so a new message may be written at once without overtaking any."""
        return (
            self.send_nowait is not None
            and not self.sending
            and self.count is None
            and not self.control
            and not self.events
            and not self.notice_due(now)
        )

    def write_now(self, texts: Iterable[str]) -> int:
        """Write texts at once, in order, until one cannot be; how many were written."""
        assert self.send_nowait is not None
        written = 0
        try:
            for text in texts:
                if not self.send_nowait(text):
                    break
                written += 1
        except Exception:  # noqa: BLE001 - a broken connection: its writer's ASGI send will tell
            pass
        self.sent += written
        return written

    def next_message(self, now: float) -> str | None:
        """The next text to send: the latest count, replies, a loss notice when due, then events."""
        if self.count is not None:
            text, self.count = self.count, None
            return text
        if self.control:
            return self.control.popleft()
        if self.notice_due(now):
            dropped, self.dropped, self.noticed_at = self.dropped, 0, now
            return dropped_text(dropped)
        while self.events:
            queued_at, text = self.events.popleft()
            if now - queued_at <= self.settings.max_delay_seconds:
                return text
            self.lose(1)  # stale: live data is worthless late
        return None

    async def write_forever(self) -> None:
        """Send whatever is waiting; only this client waits when its socket is slow."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while (text := self.next_message(time.monotonic())) is not None:
                if self.send_nowait is not None and self.write_now((text,)):
                    continue
                self.sending = True
                try:
                    await self.socket.send_text(text)
                    self.sent += 1
                finally:
                    self.sending = False


class Hub:
    """The connected clients of this gateway replica, indexed by subscription."""

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        self.clients: set[Client] = set()
        self.subscribers: dict[Subscription, set[Client]] = {}
        self.wanted: set[str] | None = set()  # every name some client subscribed to; None: all events
        self.count = 0
        self.count_sent_at = -math.inf
        self.events_received = 0
        self.invalid_events = 0
        self.dropped_by_departed = 0
        self.sent_by_departed = 0

    def connect(self, socket: WebSocket) -> Client:
        """Register a client (subscribed to every event); its first message is the active-user count."""
        now = time.monotonic()
        client = Client(socket, self.settings, now)
        client.offer_count(FramedText(active_users_text(self.count)), now)
        self.clients.add(client)
        self.subscribers.setdefault(client.subscription, set()).add(client)
        self.wanted = None
        return client

    def subscribe(self, client: Client, subscription: Subscription) -> None:
        """From now on `client` gets only these event names (None: every event)."""
        self.unindex(client)
        client.subscription = subscription
        self.subscribers.setdefault(subscription, set()).add(client)
        self.wanted = self.names_wanted()

    def disconnect(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.unindex(client)
            self.wanted = self.names_wanted()
            self.dropped_by_departed += client.dropped_total
            self.sent_by_departed += client.sent

    def unindex(self, client: Client) -> None:
        group = self.subscribers.get(client.subscription)
        if group is not None:
            group.discard(client)
            if not group:
                del self.subscribers[client.subscription]

    def names_wanted(self) -> set[str] | None:
        if None in self.subscribers:
            return None
        return {name for subscription in self.subscribers if subscription for name in subscription}

    def publish(self, events: list[Any]) -> None:
        """Hand a batch of new events (parsed live-topic JSON) to the clients subscribed to them."""
        now, wanted = time.monotonic(), self.wanted
        named: list[tuple[str, Queued]] = []
        for raw in events:
            name = raw.get("event") if isinstance(raw, dict) else None
            if not isinstance(name, str) or (wanted is not None and name not in wanted):
                continue
            text = new_event_text(raw)
            if text is None:
                self.invalid_events += 1
                log.warning("ignoring an invalid new event from the live topic: %.200r", raw)
                continue
            named.append((name, (now, FramedText(text))))
        self.events_received += len(events)
        if not named:
            return
        for subscription, clients in self.subscribers.items():
            matching = [t for n, t in named if subscription is None or n in subscription]
            if matching:
                for client in clients:
                    client.offer_events(matching, now)

    def refresh_count(self, count: int | None, now: float) -> None:
        """Send the count when it changed or the heartbeat is due; wake clients owed a loss notice."""
        count = count or 0
        if count != self.count or now - self.count_sent_at >= self.settings.heartbeat_seconds:
            self.count, self.count_sent_at = count, now
            text = FramedText(active_users_text(count))
            for client in self.clients:
                client.offer_count(text, now)
        for client in self.clients:
            if client.notice_due(now):
                client.wake.set()

    async def tick_forever(self, active_users: Callable[[], int | None]) -> None:
        """Every `count_interval_seconds` (at least 0.25 s, so at most 4 count updates a second)."""
        while True:
            self.refresh_count(active_users(), time.monotonic())
            await asyncio.sleep(self.settings.count_interval_seconds)

    @property
    def dropped_total(self) -> int:
        return self.dropped_by_departed + sum(c.dropped_total for c in self.clients)

    @property
    def sent_total(self) -> int:
        return self.sent_by_departed + sum(c.sent for c in self.clients)
