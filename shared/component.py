"""What a service is to the runtime that runs it: the `Component` protocol, and the `Resources` the
runtime builds once and hands to every component it starts (and that routes reach through deps.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter
from starlette.middleware import Middleware

from shared.auth import KeyRing
from shared.clickhouse import ClickHouse
from shared.contracts.topics import Topics
from shared.kafka import DurableProducer
from shared.kafka_admin import TopicsReport, ensure_topics
from shared.ratelimit import RateLimiter
from shared.retry import Backoff, retry_forever
from shared.settings import CommonSettings

log = logging.getLogger(__name__)


@dataclass
class Resources:
    """What the running components share: settings, keys, topics and the clients built at start-up
    (`clickhouse` and `producer` are None in a process whose components do not use them)."""

    settings: CommonSettings
    keyring: KeyRing
    rate_limiter: RateLimiter
    clickhouse: ClickHouse | None = None
    producer: DurableProducer | None = None
    # What the last topic check found (the replication wanted, topics replicated less); /readyz shows it.
    topic_report: TopicsReport | None = None

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.topic_prefix)

    async def ensure_topics(self) -> None:
        """Create the topics (replicated as shared/kafka_admin.py says), retrying until Kafka answers (it
        may start after us); a refusal of the creation itself is retried too, and logged each time."""
        specs = self.topics.specs(self.settings.topic_partitions)

        def not_yet(exc: BaseException, delay: float) -> None:
            log.warning("kafka not ready for topic creation (%s); retrying in %.1fs", exc, delay)

        self.topic_report = await retry_forever(
            lambda: ensure_topics(
                self.settings.kafka_bootstrap_servers, specs, replication=self.settings.topic_replication
            ),
            retry_on=(Exception,),
            backoff=Backoff(),
            on_failure=not_yet,
        )


class Component(Protocol):
    """A service: its routes and middleware, the clients it needs, its start/stop hooks, its health."""

    name: str
    uses_clickhouse: bool
    uses_producer: bool

    @property
    def producer_ack_timeout(self) -> float | None:
        """The deadline for Kafka's acknowledgements this component needs (None: no preference)."""
        ...

    def routers(self) -> list[APIRouter]: ...

    def middleware(self) -> list[Middleware]: ...

    def server_options(self) -> dict[str, Any]:
        """uvicorn options this component needs from the server it runs in."""
        ...

    async def start(self, resources: Resources) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """Detail for /readyz; a `ready` entry, when present, is one of its checks."""
        ...


@dataclass
class BaseComponent:
    """Defaults every component starts from: nothing to serve, start or stop."""

    name: str = "base"
    uses_clickhouse: bool = False
    uses_producer: bool = False

    @property
    def producer_ack_timeout(self) -> float | None:
        return None

    def routers(self) -> list[APIRouter]:
        return []

    def middleware(self) -> list[Middleware]:
        return []

    def server_options(self) -> dict[str, Any]:
        return {}

    async def start(self, resources: Resources) -> None:
        return None

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {}
