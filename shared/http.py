"""The HTTP edge shared by every service: error bodies and status codes (dependencies: deps.py).

HTTP status codes are decided here and only here: services raise `shared.errors` kinds.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import errors
from shared.validation import problems_of

log = logging.getLogger(__name__)

STATUS: dict[type[errors.AnalyticsError], int] = {
    errors.InvalidRequest: 422,
    errors.MalformedBody: 400,
    errors.NotFound: 404,
    errors.PayloadTooLarge: 413,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.RateLimited: 429,
    errors.BrokerUnavailable: 503,
    errors.StorageUnavailable: 503,
    errors.QueryTimeout: 504,
    errors.QueryFailed: 500,
}
RETRY_AFTER_SECONDS = {errors.BrokerUnavailable: 2, errors.StorageUnavailable: 5, errors.QueryTimeout: 10}


class ErrorBody(BaseModel):
    """Every error answer: a machine-readable code, a sentence for people, optional details."""

    error: str
    message: str
    details: Any = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (401, "Missing or unknown key"),
        (403, "Key lacks the role"),
        (422, "Invalid input"),
        (429, "Rate limit exceeded for this key (see Retry-After)"),
    ]
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=code, message=message, details=details).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(exc: errors.AnalyticsError) -> int:
    for kind in type(exc).__mro__:
        if issubclass(kind, errors.AnalyticsError) and kind in STATUS:
            return STATUS[kind]
    return 500


def analytics_error_response(exc: errors.AnalyticsError) -> JSONResponse:
    """The answer to one of our error kinds: its status, JSON body and Retry-After where it helps."""
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    for kind, seconds in RETRY_AFTER_SECONDS.items():
        if isinstance(exc, kind):
            headers["Retry-After"] = str(seconds)
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(status_of(exc), exc.code, exc.message, exc.details, headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error kind to its status and a JSON body; nothing leaks a stack trace."""

    @app.exception_handler(errors.AnalyticsError)
    async def analytics_error(_: Request, exc: errors.AnalyticsError) -> JSONResponse:
        return analytics_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        found = problems_of(exc.errors())
        details = [{"loc": list(p.loc), "msg": p.message, "type": p.type} for p in found]
        fields = sorted({".".join(str(part) for part in p.loc[1:]) or str(p.loc[0]) for p in found if p.loc})
        message = f"invalid {', '.join(fields)}" if fields else "invalid request"
        return error_response(422, "validation_error", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), None, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error: %r", exc)
        return error_response(500, "internal_error", "unexpected error; it has been logged")
