"""Reading request bodies safely: size limits before and after gzip, JSON parsing with clear errors."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request

from shared.errors import MalformedBody, PayloadTooLarge


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, decompressed if gzip; 413 past `max_bytes` (compressed or not), 400 for bad gzip."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        return gunzip(body, max_bytes)
    if encoding not in ("identity", ""):
        raise MalformedBody(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    return body


def gunzip(body: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedBody("body is not valid gzip") from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body is larger than {max_bytes} bytes")
    if not inflater.eof:
        raise MalformedBody("gzip body is truncated")
    return data


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise MalformedBody("request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from exc
