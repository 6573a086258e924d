"""The one way in to what the runtime holds: FastAPI dependencies as `Annotated` aliases.

Routes declare `ClickHouseDep`, `ProducerDep`, `TopicsDep` and a role (`IngestKey`, `ReadKey`,
`AdminKey`); tests override the `*_of` functions with real objects (`app.dependency_overrides`).
The ingest hot path calls the same functions directly, without FastAPI's dependency machinery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from shared.auth import KeyRing, Role
from shared.clickhouse import ClickHouse
from shared.component import Resources
from shared.contracts.topics import Topics
from shared.errors import BrokerUnavailable, StorageUnavailable
from shared.kafka import DurableProducer
from shared.ratelimit import RateLimiter

RATE_SCOPE = {Role.INGEST: "ingest", Role.READ: "query", Role.ADMIN: "query"}


def resources_of(connection: HTTPConnection) -> Resources:
    resources: Resources = connection.app.state.resources
    return resources


def clickhouse_of(connection: HTTPConnection) -> ClickHouse:
    clickhouse = resources_of(connection).clickhouse
    if clickhouse is None:
        raise StorageUnavailable("the analytics store is not connected yet; retry shortly")
    return clickhouse


def producer_of(connection: HTTPConnection) -> DurableProducer:
    producer = resources_of(connection).producer
    if producer is None:
        raise BrokerUnavailable("the event broker is not reachable; retry later")
    return producer


def topics_of(connection: HTTPConnection) -> Topics:
    return resources_of(connection).topics


def keyring_of(connection: HTTPConnection) -> KeyRing:
    return resources_of(connection).keyring


def rate_limiter_of(connection: HTTPConnection) -> RateLimiter:
    return resources_of(connection).rate_limiter


def admit(keyring: KeyRing, limiter: RateLimiter, token: str | None, role: Role) -> Role:
    """Check the key for `role` (401/403), then its rate limit (429)."""
    kind = keyring.authorize(token, role)
    if token:
        limiter.check(token, RATE_SCOPE[role])
    return kind


def authorize(connection: HTTPConnection, token: str | None, role: Role) -> Role:
    """`admit` with this app's keys and limits, for callers outside FastAPI's dependencies (the ingest
    hot path, the key Segment sends in its body)."""
    return admit(keyring_of(connection), rate_limiter_of(connection), token, role)


bearer_scheme = HTTPBearer(auto_error=False, description="An ingest, read or admin access key")


def require(role: Role) -> Callable[..., Awaitable[Role]]:
    """A dependency that admits keys granting `role` (401 without a known key, 403 without the role)."""

    async def check(
        keyring: Annotated[KeyRing, Depends(keyring_of)],
        limiter: Annotated[RateLimiter, Depends(rate_limiter_of)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Role:
        return admit(keyring, limiter, credentials.credentials if credentials else None, role)

    check.__name__ = f"require_{role.value}"
    return check


ClickHouseDep = Annotated[ClickHouse, Depends(clickhouse_of)]
ProducerDep = Annotated[DurableProducer, Depends(producer_of)]
TopicsDep = Annotated[Topics, Depends(topics_of)]
IngestKey = Annotated[Role, Depends(require(Role.INGEST))]
ReadKey = Annotated[Role, Depends(require(Role.READ))]
AdminKey = Annotated[Role, Depends(require(Role.ADMIN))]
