"""WS /ws/analytics/live: admit a read or admin key, then write updates and answer client messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from services.live.hub import Client, Hub
from services.live.settings import LiveSettings
from shared.auth import Role, bearer_token
from shared.contracts.live import PONG_TEXT, ClientMessage, Ping, error_text, subscribed_text
from shared.deps import keyring_of
from shared.errors import Forbidden, Unauthorized
from shared.http import error_response, status_of
from shared.validation import problems

if TYPE_CHECKING:
    from services.live import LiveComponent

log = logging.getLogger(__name__)

LIVE_PATH = "/ws/analytics/live"
DENIAL_EXTENSION = "websocket.http.response"
TRY_AGAIN_LATER = 1013


def build_router(component: LiveComponent) -> APIRouter:
    router = APIRouter(tags=["live"])

    @router.websocket(LIVE_PATH)
    async def live_updates(websocket: WebSocket) -> None:
        """Active-user counts and new events as they happen (protocol: services/live/__init__.py)."""
        if not await admit(websocket):
            return
        hub = component.hub
        if hub is None:
            await websocket.close(code=TRY_AGAIN_LATER)
            return
        await websocket.accept()
        client = hub.connect(websocket)
        try:
            await serve(websocket, hub, client, component.settings)
        finally:
            hub.disconnect(client)

    return router


def presented_key(websocket: WebSocket) -> str | None:
    """`?token=` (browsers cannot set headers on a WebSocket) or `Authorization: Bearer`."""
    return websocket.query_params.get("token") or bearer_token(websocket.headers.get("authorization"))


async def admit(websocket: WebSocket) -> bool:
    """True for a read or admin key; otherwise refuse the handshake (401/403, or close 1008)."""
    try:
        keyring_of(websocket).authorize(presented_key(websocket), Role.READ)
        return True
    except (Unauthorized, Forbidden) as exc:
        if DENIAL_EXTENSION in websocket.scope.get("extensions", {}):
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
            await websocket.send_denial_response(
                error_response(status_of(exc), exc.code, exc.message, headers=headers)
            )
        else:
            await websocket.close(code=1008, reason=exc.message[:120])
        return False


async def serve(websocket: WebSocket, hub: Hub, client: Client, settings: LiveSettings) -> None:
    """Run the client's writer and reader until either ends (disconnect, or a failed send)."""
    tasks = {
        asyncio.create_task(client.write_forever(), name="live-writer"),
        asyncio.create_task(read_forever(websocket, hub, client, settings), name="live-reader"),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None and not is_disconnect(exc):
            log.warning("live client ended with %r", exc)


def is_disconnect(exc: BaseException) -> bool:
    """A send to a peer that is gone: nothing to report."""
    return isinstance(exc, WebSocketDisconnect | WebSocketDisconnected | OSError)


async def read_forever(websocket: WebSocket, hub: Hub, client: Client, settings: LiveSettings) -> None:
    """Answer every client message; bad ones get an error reply, never a crash."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        client.offer_control(answer(message, hub, client, settings))


def answer(message: Mapping[str, Any], hub: Hub, client: Client, settings: LiveSettings) -> str:
    """The reply to one client message (and the subscription change it asks for)."""
    text = message.get("text")
    if text is None:
        return error_text("unsupported_message", "send JSON text messages, not binary ones")
    if len(text) > settings.max_client_message_bytes:
        limit = settings.max_client_message_bytes
        return error_text("message_too_large", f"messages are at most {limit} bytes")
    try:
        parsed = ClientMessage.validate_json(text)
    except ValidationError as exc:
        return invalid(exc)
    if isinstance(parsed, Ping):
        return PONG_TEXT
    hub.subscribe(client, None if parsed.events is None else frozenset(parsed.events))
    return subscribed_text(client.subscription)


def invalid(exc: ValidationError) -> str:
    found = problems(exc)
    if found[0].type == "json_invalid":
        return error_text("invalid_json", "messages must be JSON objects")
    details = [{"loc": p.where, "msg": p.message} for p in found[:5]]
    return error_text(
        "invalid_message",
        'expected {"type": "subscribe", "events": [names] | null} or {"type": "ping"}',
        details,
    )
