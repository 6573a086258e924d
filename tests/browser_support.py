"""A real browser for the tracker tests: Debian's headless Chromium driven by Selenium, and a tiny
HTTP server for the test pages, on another origin than the system under test (so every request the
trackers make is cross-origin and CORS is exercised). The page server serves the trackers' files
from tests/js/node_modules (installed by `npm ci`; no CDN).

Chromium runs with the flags this machine needs (no sandbox as root, no background networking: the
network is closed) and a fresh profile each time, and keeps the console log for the tests to read."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO

NODE_MODULES = REPO / "tests" / "js" / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TYPES = {".js": "application/javascript", ".html": "text/html; charset=utf-8", ".map": "application/json"}


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None (`make test` installs all of it)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return "Debian's chromium and chromium-driver are not installed (make test installs them)"
    if not NODE_MODULES.is_dir():
        return "tests/js/node_modules is missing (make test runs npm ci there)"
    return None


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
                path = self.path.split("?", 1)[0]
                body, kind = self.lookup(path)
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


def chromium(profile: Path) -> Any:
    """A headless Chromium with a fresh profile under `profile`, keeping every console message."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


@pytest.fixture(scope="module")
def page_server() -> Iterator[PageServer]:
    server = PageServer().start()
    yield server
    server.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium per test (skipped, saying why, where the browser is missing)."""
    reason = browser_missing()
    if reason and os.environ.get("CI"):
        pytest.fail(reason)  # CI runs `make test`, which installs them: missing there is a bug
    if reason:
        pytest.skip(reason)
    profile = tmp_path / "chromium-profile"
    driver = chromium(profile)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_log(driver: Any) -> list[dict[str, Any]]:
    """The console's messages since the last call (Chromium logs failed loads and CORS refusals as
    SEVERE, as it does the page's own console.error)."""
    return list(driver.get_log("browser"))


def errors_in(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in log if entry["level"] == "SEVERE"]
