"""Fan-out to WebSocket clients: a bounded queue per client, so a slow one only loses its own messages.

The feed hands each batch of new events to `Hub.publish`, which encodes every event once and gives each
client references to the shared text, within its subscription and its per-second budget. Nothing here
awaits a socket: each client has its own writer task, and a client whose writer is stuck (its TCP
buffer is full) keeps at most `client_queue_size` messages, counting the rest as dropped and saying so
when it can. A new_event that waited more than `max_delay_seconds` is dropped too (and counted): under
overload clients get fresh events or a notice, never a growing lag. Counts are not queued: a client
holds only the latest one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from fastapi import WebSocket

from services.live.messages import LiveEvent, active_users_text, dropped_text
from services.live.settings import LiveSettings

CONTROL_QUEUE_SIZE = 32  # replies to the client's own messages (errors, pong, subscribed)
Queued = tuple[float, str]  # (when the gateway received it, the new_event text), shared by every client


class Client:
    """One dashboard connection: what waits to be sent, its filter, its rate budget and its losses."""

    def __init__(self, socket: WebSocket, settings: LiveSettings, now: float) -> None:
        self.socket = socket
        self.settings = settings
        self.events: deque[Queued] = deque(maxlen=settings.client_queue_size)
        self.control: deque[str] = deque(maxlen=CONTROL_QUEUE_SIZE)
        self.count: int | None = None
        self.subscription: frozenset[str] | None = None  # None: every event
        self.capacity = max(1.0, settings.max_events_per_second)
        self.tokens = self.capacity
        self.refilled_at = now
        self.dropped = 0
        self.dropped_total = 0
        self.noticed_at = -math.inf
        self.wake = asyncio.Event()

    def offer_events(self, matching: list[Queued], now: float) -> None:
        """Queue what the rate budget allows; the rest, and what a full queue pushes out, count as dropped."""
        if not matching:
            return
        rate = self.settings.max_events_per_second
        self.tokens = min(self.capacity, self.tokens + (now - self.refilled_at) * rate)
        self.refilled_at = now
        allowed = min(len(matching), int(self.tokens))
        self.tokens -= allowed
        overflow = max(0, len(self.events) + allowed - self.settings.client_queue_size)
        self.lose(len(matching) - allowed + overflow)
        if allowed:
            self.events.extend(matching[:allowed])
            self.wake.set()

    def offer_count(self, count: int) -> None:
        self.count = count
        self.wake.set()

    def offer_control(self, text: str) -> None:
        self.control.append(text)
        self.wake.set()

    def lose(self, count: int) -> None:
        self.dropped += count
        self.dropped_total += count

    def notice_due(self, now: float) -> bool:
        return self.dropped > 0 and now - self.noticed_at >= self.settings.dropped_notice_seconds

    def next_message(self, now: float) -> str | None:
        """The next text to send: the latest count, replies, a loss notice when due, then events."""
        if self.count is not None:
            count, self.count = self.count, None
            return active_users_text(count)
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
                await self.socket.send_text(text)


class Hub:
    """The connected clients of this gateway replica."""

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        self.clients: set[Client] = set()
        self.count = 0
        self.count_sent_at = -math.inf
        self.events_published = 0
        self.dropped_by_departed = 0

    def connect(self, socket: WebSocket) -> Client:
        """Register a client; its first message is the current active-user count."""
        client = Client(socket, self.settings, time.monotonic())
        client.offer_count(self.count)
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.dropped_by_departed += client.dropped_total

    def publish(self, events: list[LiveEvent]) -> None:
        """Hand a batch of new events to every client (encoded once per batch, filtered per subscription)."""
        now = time.monotonic()
        named = [(e.event, (now, e.client_text())) for e in events]
        self.events_published += len(named)
        by_subscription: dict[frozenset[str] | None, list[Queued]] = {}
        for client in self.clients:
            wanted = client.subscription
            matching = by_subscription.get(wanted)
            if matching is None:
                matching = by_subscription[wanted] = [t for n, t in named if wanted is None or n in wanted]
            client.offer_events(matching, now)

    def refresh_count(self, count: int | None, now: float) -> None:
        """Send the count when it changed or the heartbeat is due; wake clients owed a loss notice."""
        count = count or 0
        if count != self.count or now - self.count_sent_at >= self.settings.heartbeat_seconds:
            self.count, self.count_sent_at = count, now
            for client in self.clients:
                client.offer_count(count)
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
