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

Each replica reads the whole live topic without a consumer group and holds no ClickHouse connection;
`runtime.extras["active_users_now"]` gives the combined count to other components in its process
(the ETL overview). Settings: LIVE_* (services/live/settings.py); the window is STREAM_LIVE_WINDOW_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from services.component import BaseComponent
from services.live.feed import LiveFeed
from services.live.hub import Hub
from services.live.routes import build_router
from services.live.settings import LiveSettings

if TYPE_CHECKING:
    from services.runtime import Runtime

ACTIVE_USERS_EXTRA = "active_users_now"


@dataclass
class LiveComponent(BaseComponent):
    settings: LiveSettings = field(default_factory=LiveSettings)
    name: str = "live"
    hub: Hub | None = None
    feed: LiveFeed | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def routers(self) -> list[APIRouter]:
        return [build_router(self)]

    async def start(self, runtime: Runtime) -> None:
        """Follow the live topic, tick the counts, and offer the count to the ETL overview."""
        self.hub = Hub(self.settings)
        self.feed = LiveFeed(
            runtime.settings.kafka_bootstrap_servers, runtime.live_topic, self.settings, self.hub.publish
        )
        runtime.extras[ACTIVE_USERS_EXTRA] = self.feed.active_users
        self.tasks = [
            asyncio.create_task(self.follow_live_topic(runtime), name="live-feed"),
            asyncio.create_task(self.hub.tick_forever(self.feed.active_users), name="live-ticker"),
        ]

    async def follow_live_topic(self, runtime: Runtime) -> None:
        """Create the topics if needed (Kafka may come up after us), then consume forever."""
        assert self.feed is not None
        await runtime.ensure_topics()
        await self.feed.run_forever()

    async def stop(self) -> None:
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
            "events_published": self.hub.events_published,
            "dropped": self.hub.dropped_total,
        }


def component() -> LiveComponent:
    return LiveComponent()
