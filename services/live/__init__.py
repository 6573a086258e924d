"""Live gateway: live-updates topic -> WebSocket dashboards, on the same port as the HTTP API.

Protocol of WS /ws/analytics/live:
- Auth: `?token=<read or admin key>` or `Authorization: Bearer <key>`; otherwise the handshake is
  refused with HTTP 401 (no or unknown key) or 403 (an ingest key).
- Server -> client: `{"type": "active_users", "count": N}` at once, then when N changes (at most 4 a
  second) and at least every 5 s; `{"type": "new_event", "event", "user_id", "timestamp", "amount"?}`
  for each new event; `{"type": "dropped", "count": k}` (at most once a second) after new_event messages
  were lost to the per-client rate limit, a full queue, or waiting longer than LIVE_MAX_DELAY_SECONDS;
  `{"type": "subscribed", "events": [...] | null}`, `{"type": "pong"}` and
  `{"type": "error", "error": code, "message": ...}` in reply to the client's messages.
- Client -> server: `{"type": "subscribe", "events": ["purchase"]}` (`[]`: counts only; `null`: all),
  `{"type": "ping"}`. Dead peers are dropped by the server's WebSocket ping/pong (uvicorn keepalive).

Each replica reads the whole live topic without a consumer group (shared/live_topic.py) and holds no
ClickHouse connection. Settings: LIVE_* (services/live/settings.py); the window is
STREAM_LIVE_WINDOW_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from services.live import instruments
from services.live.fanout_protocol import FanoutWebSocketProtocol
from services.live.hub import Hub
from services.live.routes import build_router
from services.live.settings import LiveSettings
from shared.component import BaseComponent, Resources
from shared.live_topic import LiveTopicReader, ReaderOptions
from shared.metrics import Readings


@dataclass
class LiveComponent(BaseComponent):
    settings: LiveSettings = field(default_factory=LiveSettings)
    name: str = "live"
    hub: Hub | None = None
    feed: LiveTopicReader | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    readings: Readings | None = None

    def routers(self) -> list[APIRouter]:
        return [build_router(self)]

    def server_options(self) -> dict[str, Any]:
        """uvicorn's websockets-sansio protocol plus a synchronous send, for the fan-out."""
        return {"ws": FanoutWebSocketProtocol}

    async def start(self, resources: Resources) -> None:
        """Follow the live topic and tick the counts."""
        self.hub = hub = Hub(self.settings)
        self.readings = Readings(lambda: instruments.hub_figures(hub)).start()
        options = ReaderOptions(
            presence_ttl_seconds=self.settings.presence_ttl_seconds,
            history_messages=self.settings.history_messages,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            client_id="live-gateway",
        )
        self.feed = LiveTopicReader(
            resources.settings.kafka_bootstrap_servers, resources.topics.live, options, self.hub.publish
        )
        self.tasks = [
            asyncio.create_task(self.follow_live_topic(resources), name="live-feed"),
            asyncio.create_task(self.hub.tick_forever(self.feed.active_users), name="live-ticker"),
        ]

    async def follow_live_topic(self, resources: Resources) -> None:
        """Create the topics if needed (Kafka may come up after us), then consume forever."""
        assert self.feed is not None
        await resources.ensure_topics()
        await self.feed.run_forever()

    async def stop(self) -> None:
        if self.readings is not None:
            self.readings.stop()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def health(self) -> dict[str, Any]:
        """Ready once the live topic is assigned; plus clients, the count and losses."""
        if self.hub is None or self.feed is None:
            return {"ready": False}
        return {
            "ready": self.feed.connected,
            "clients": len(self.hub.clients),
            "active_users": self.feed.active_users(),
            "events_received": self.hub.events_received,
            "dropped": self.hub.dropped_total,
        }


def component() -> LiveComponent:
    return LiveComponent()
