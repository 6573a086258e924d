"""The dashboard's pages and files, served by the query service: plain HTML, CSS and ES modules from
services/query/static (no build step), under a strict Content-Security-Policy.

Every page path answers the same index.html (the page's modules read the path and query); it names
its files under /assets/<version>/, where the version is a digest of every static file, so files may
be cached for a year (`immutable`) and a changed file gets a new URL. index.html itself is revalidated
on every load (ETag). Files are read and gzipped once, at start-up.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

from shared.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_FILE = "index.html"
ASSETS_PLACEHOLDER = "{{assets}}"
# The client-side pages (services/query/static/js/pages.js has the same list).
PAGE_PATHS = (
    "/",
    "/trends",
    "/funnel",
    "/retention",
    "/live",
    "/persons",
    "/insights",
    "/dashboards",
    "/dashboards/{dashboard_id}",
)
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
# Nothing inline, nothing from another origin; 'self' covers the same-origin WebSocket (CSP level 3).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CACHE_FOREVER = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes
    media_type: str


def static_file(body: bytes, suffix: str) -> StaticFile:
    return StaticFile(body, gzip.compress(body, compresslevel=9, mtime=0), MEDIA_TYPES[suffix])


class Bundle:
    """Every static file in memory, gzipped, with the digest that versions their URLs."""

    def __init__(self, root: Path) -> None:
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in MEDIA_TYPES)
        digest = hashlib.sha256()
        for path in paths:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
        self.version = digest.hexdigest()[:16]
        self.prefix = f"/assets/{self.version}"
        self.files = {
            path.relative_to(root).as_posix(): static_file(path.read_bytes(), path.suffix)
            for path in paths
            if path.name != INDEX_FILE
        }
        index = (root / INDEX_FILE).read_text().replace(ASSETS_PLACEHOLDER, self.prefix)
        self.index = static_file(index.encode(), ".html")


def accepts_gzip(accept_encoding: str) -> bool:
    """True when the client lists gzip (or *) without q=0."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def respond(request: Request, file: StaticFile, cache_control: str, etag: str) -> Response:
    """The file, gzipped when the client accepts it; 304 when the client holds this version."""
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control, "ETag": etag, "Vary": "Accept-Encoding"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = file.body
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        body = file.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=file.media_type, headers=headers)


def build_router(root: Path = STATIC_DIR) -> APIRouter:
    """The page routes and the versioned file route (not in the API schema: they are not API)."""
    bundle = Bundle(root)
    router = APIRouter(include_in_schema=False)

    async def page(request: Request) -> Response:
        return respond(request, bundle.index, REVALIDATE, f'W/"{bundle.version}"')

    for path in PAGE_PATHS:
        router.add_api_route(path, page, methods=["GET"], include_in_schema=False)

    @router.get("/assets/{version}/{name:path}")
    async def asset(request: Request, version: str, name: str) -> Response:
        file = bundle.files.get(name)
        if file is None:
            raise NotFound(f"no dashboard file {name!r}")
        if version != bundle.version:  # a page loaded before an upgrade: today's file, not cached
            return respond(request, file, REVALIDATE, f'W/"{bundle.version}"')
        return respond(request, file, CACHE_FOREVER, f'W/"{bundle.version}"')

    return router
