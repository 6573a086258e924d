"""The query router in-process (same routes, keys and error handlers as the service), for fast HTTP
tests of validation and auth (of the saved-item routes too); the end-to-end tests use the real process
instead. The router's dependencies are overridden with real objects: the test's ClickHouse, keys and an
unlimited limiter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr

from services.query.routes import build_router
from services.query.settings import QuerySettings
from shared.auth import KeyRing
from shared.clickhouse import ClickHouse
from shared.deps import clickhouse_of, keyring_of, rate_limiter_of
from shared.http import install_error_handlers
from shared.ratelimit import RateLimiter
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, auth


@asynccontextmanager
async def query_client(
    clickhouse: ClickHouse,
    key: str | None = READ_KEY,
    settings: QuerySettings | None = None,
    *,
    router: APIRouter | None = None,
    read_keys: Sequence[str] = (READ_KEY,),
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the query routes (or another of the service's routers) over `clickhouse`,
    sending `key` (None: each request sends its own)."""
    app = FastAPI()
    install_error_handlers(app)
    keyring = KeyRing([SecretStr(INGEST_KEY)], [SecretStr(k) for k in read_keys], [SecretStr(ADMIN_KEY)])
    app.dependency_overrides[clickhouse_of] = lambda: clickhouse
    app.dependency_overrides[keyring_of] = lambda: keyring
    app.dependency_overrides[rate_limiter_of] = lambda: RateLimiter({})
    app.include_router(router or build_router(settings or QuerySettings()))
    transport = httpx.ASGITransport(app=app)
    headers = auth(key) if key else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://query", headers=headers) as client:
        yield client
