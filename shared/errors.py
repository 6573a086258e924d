"""Root exception and the user-safe error kinds. HTTP status codes are chosen at the edge (shared.http)."""

from __future__ import annotations

from typing import Any


class AnalyticsError(Exception):
    """Root of every error this project raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(AnalyticsError):
    code = "invalid_request"


class MalformedBody(AnalyticsError):
    """The body is not JSON (or not valid gzip)."""

    code = "malformed_body"


class NotFound(AnalyticsError):
    code = "not_found"


class PayloadTooLarge(AnalyticsError):
    code = "payload_too_large"


class Unauthorized(AnalyticsError):
    code = "unauthorized"


class Forbidden(AnalyticsError):
    code = "forbidden"


class RateLimited(AnalyticsError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerUnavailable(AnalyticsError):
    """Kafka did not acknowledge in time; the client should retry."""

    code = "broker_unavailable"


class StorageUnavailable(AnalyticsError):
    """ClickHouse could not be reached or failed; the client should retry."""

    code = "storage_unavailable"


class QueryTimeout(AnalyticsError):
    code = "query_timeout"


class QueryFailed(AnalyticsError):
    """ClickHouse rejected a query we built: a bug on our side, reported without internals."""

    code = "query_failed"
