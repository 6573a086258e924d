"""The test pages the browser tracker tests load: a tiny HTTP server on another origin than the system
under test (so every request a tracker makes is cross-origin and CORS is exercised), serving the pages
a test puts in it and, under /lib/, the trackers' files from tests/js/node_modules (installed by
`npm ci`, `make tracker-tools`; no CDN). The browser is tests/browser.py's."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support import REPO

NODE_MODULES = REPO / "tests" / "js" / "node_modules"
TYPES = {".js": "application/javascript", ".html": "text/html; charset=utf-8", ".map": "application/json"}


def trackers_missing() -> str | None:
    """Why the npm trackers cannot run here, or None (`make test` installs them)."""
    if not NODE_MODULES.is_dir():
        return "tests/js/node_modules is missing (make tracker-tools runs npm ci there)"
    return None


def require_trackers() -> None:
    """Skip (fail in CI, where `make test` installs them) when the npm trackers are missing."""
    reason = trackers_missing()
    if reason and os.environ.get("CI"):
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


@dataclass
class PageServer:
    """Serves `pages` (path -> HTML) and, under /lib/, files of tests/js/node_modules; records requests."""

    pages: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> PageServer:
        pages, seen = self.pages, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                seen.append(self.path)
                body, kind = self.lookup(self.path.split("?", 1)[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def lookup(self, path: str) -> tuple[bytes | None, str]:
                if path in pages:
                    return pages[path].encode(), TYPES[".html"]
                if path.startswith("/lib/"):
                    file = (NODE_MODULES / path.removeprefix("/lib/")).resolve()
                    if file.is_relative_to(NODE_MODULES.resolve()) and file.is_file():
                        return file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream")
                return None, ""

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(scope="module")
def page_server() -> Iterator[PageServer]:
    require_trackers()
    server = PageServer().start()
    yield server
    server.stop()
