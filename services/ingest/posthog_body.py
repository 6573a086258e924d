"""What a PostHog client posted, decoded: the encodings PostHog's capture accepts, in one place.

A body is JSON, gzip (posthog-js drops `?compression=gzip-js` when it gzips natively, so gzip is
recognised by its magic bytes, as PostHog's capture does), base64 of JSON (`?compression=base64`, or
undeclared), or a form `data=<base64 or JSON>` (posthog-js' sendBeacon); a GET carries the same in
`?data=`. `Content-Encoding: gzip` is undone first by `read_body`. lz64 (old posthog-js
versions' compression) is refused with a clear error rather than guessed at.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import Request

from services.ingest.body import gunzip, read_body
from shared.errors import MalformedBody, PayloadTooLarge

GZIP_MAGIC = b"\x1f\x8b\x08"
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass
class PostHogPayload:
    """The decoded JSON of a request, and the form or query fields that travel beside it."""

    data: Any
    fields: dict[str, str] = field(default_factory=dict)


async def read_payload(request: Request, max_bytes: int) -> PostHogPayload:
    """Decode a PostHog request (body for POST, `?data=` for GET); 400 for what cannot be read."""
    query = {k: v for k, v in request.query_params.items() if v}
    if request.method == "GET":
        raw = query.get("data", "").encode()
        if len(raw) > max_bytes:
            raise PayloadTooLarge(f"data is larger than {max_bytes} bytes")
        return PostHogPayload(decode(raw, query.get("compression", ""), max_bytes), query)
    body = await read_body(request, max_bytes)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == FORM_TYPE or body.startswith(b"data="):
        form = form_fields(body)
        fields = {**query, **form}
        data = decode(form.get("data", "").encode(), fields.get("compression", ""), max_bytes)
        return PostHogPayload(data, fields)
    return PostHogPayload(decode(body, query.get("compression", ""), max_bytes), query)


def form_fields(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody("form body is not UTF-8") from exc
    return {name: values[0] for name, values in parse_qs(text, keep_blank_values=False).items()}


def decode(raw: bytes, compression: str, max_bytes: int) -> Any:
    """The JSON value of `raw`, undoing gzip and base64 as PostHog's capture does."""
    compression = compression.strip().lower()
    if compression == "lz64":
        raise MalformedBody("lz64 compression is not supported; send gzip-js, base64 or plain JSON")
    if raw.startswith(GZIP_MAGIC):
        raw = gunzip(raw, max_bytes)
    elif compression in ("gzip", "gzip-js") and raw.strip():
        raise MalformedBody(f"compression={compression} but the body is not gzip")
    if not raw.strip():
        raise MalformedBody("No data found. Send the event as the body of a POST, or as ?data= of a GET.")
    # JSON first, then base64 of JSON; the other way round when base64 is declared (PostHog tries both).
    readers = (base64_json, bytes) if compression == "base64" else (bytes, base64_json)
    failures: dict[object, ValueError] = {}
    for read in readers:
        try:
            return orjson.loads(read(raw))
        except ValueError as exc:  # orjson's JSONDecodeError too
            failures[read] = exc
    json_error = failures[bytes]
    raise MalformedBody(
        f"Malformed request data: Invalid JSON ({json_error}), and not base64 of JSON"
    ) from json_error


def base64_json(raw: bytes) -> bytes:
    """Standard base64 as posthog-js writes it; a form's `+` may arrive as a space."""
    text = raw.strip().replace(b" ", b"+")
    text += b"=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc
