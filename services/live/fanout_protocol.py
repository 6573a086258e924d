"""Writing one message to a thousand WebSockets without a thousand awaits.

uvicorn serves our WebSockets with websockets' Sans-I/O protocol (`websockets-sansio`). Through ASGI a
message to one client is a task wake-up, four `send` wrappers (starlette, its exception handlers,
uvicorn), a frame built in Python and a socket write; profiled with a thousand clients, those layers
and the wake-ups cost as much as the writes themselves (docs/performance.md). `FanoutWebSocketProtocol`
is uvicorn's protocol plus one ASGI scope extension, `websocket.send_nowait`: a plain function that
writes a text message at once and returns True, or returns False when it cannot (handshake not done,
closing, or the socket's write buffer above uvicorn's high-water mark), and the caller then awaits the
ordinary ASGI send, which waits for the buffer to drain. A `FramedText` carries its frame, built once
for every client; a connection that negotiated permessage-deflate frames (and compresses) it itself.

It relies on uvicorn's attribute names (pinned in pyproject.toml); the tests under tests/live run every
client through it, and a server without the extension falls back to the ASGI send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

SEND_NOWAIT = "websocket.send_nowait"
SendNowait = Callable[[str], bool]


class FramedText(str):
    """A server -> client message: its text, and its unmasked, uncompressed WebSocket frame.

    A `str` everywhere (starlette's send_text, comparisons); orjson alone refuses str subclasses."""

    frame: bytes

    def __new__(cls, text: str) -> FramedText:
        framed = super().__new__(cls, text)
        framed.frame = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
        return framed


class FanoutWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, offering `websocket.send_nowait` to the application."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)  # None: the handshake was refused
        if scope is not None:
            scope["extensions"][SEND_NOWAIT] = {"send": self.send_nowait}

    def send_nowait(self, text: str) -> bool:
        """Write `text` now if the connection is open and its buffer has room; False otherwise."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.transport.is_closing()
            or self.conn.state is not State.OPEN
        ):
            return False
        frame = getattr(text, "frame", None)
        if frame is not None and not self.conn.extensions:
            self.transport.write(frame)
        else:
            self.conn.send_text(text.encode())
            self.transport.write(b"".join(self.conn.data_to_send()))
        return True


def send_nowait_of(socket: WebSocket | None) -> SendNowait | None:
    """The connection's synchronous send, when the server offers one."""
    extension = socket.scope.get("extensions", {}).get(SEND_NOWAIT) if socket is not None else None
    return extension["send"] if extension else None
