"""The dashboard's files as served (services/query/web.py, in-process): every page path answers
index.html, files are versioned, cached, gzipped and under a strict CSP; nothing inline or third-party;
the vendored chart library is the one its VERSION.txt names."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.__main__ import dashboard_banner
from services.query import web
from shared.http import install_error_handlers

STATIC = web.STATIC_DIR
VENDOR = STATIC / "vendor" / "uplot"
OUR_FILES = [p for p in STATIC.rglob("*") if p.is_file() and "vendor" not in p.parts]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(web.build_router())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash") as c:
        yield c


def asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)


async def test_every_page_path_serves_the_index_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    for path in ["/", "/funnel", "/retention", "/live", "/insights", "/dashboards", "/dashboards/abc"]:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    missing = await client.get("/no-such-page")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_the_index_is_revalidated_and_files_are_cached_for_good(client: httpx.AsyncClient) -> None:
    index = await client.get("/")
    again = await client.get("/", headers={"If-None-Match": index.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    urls = asset_urls(index.text)
    assert len(urls) >= 5 and all(u.startswith(web.Bundle(STATIC).prefix) for u in urls)
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale = await client.get(urls[-1].replace(web.Bundle(STATIC).version, "0" * 16))
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    assert (await client.get(f"{web.Bundle(STATIC).prefix}/js/nothing.js")).status_code == 404


async def test_files_are_gzipped_when_the_client_accepts_it(client: httpx.AsyncClient) -> None:
    url = f"{web.Bundle(STATIC).prefix}/vendor/uplot/uPlot.esm.js"
    original = (VENDOR / "uPlot.esm.js").read_bytes()
    zipped = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["content-type"] == "text/javascript; charset=utf-8"
    assert int(zipped.headers["content-length"]) < len(original) / 3
    assert zipped.content == original  # httpx decodes the gzip body
    plain = await client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == original
    refused = await client.get(url, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    assert gzip.decompress(web.Bundle(STATIC).files["vendor/uplot/uPlot.esm.js"].gzipped) == original


def test_nothing_inline_and_nothing_from_another_origin() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "<style" not in html and " style=" not in html and " on" + "click=" not in html
    for path in OUR_FILES:
        text = path.read_text()
        without_svg_namespace = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"https?://", without_svg_namespace), f"{path.name} names another origin"
        if path.suffix == ".js":
            for forbidden in ("innerHTML", "outerHTML", "eval(", "new Function", 'setAttribute("style"'):
                assert forbidden not in text, f"{path.name} uses {forbidden}"


def test_the_page_list_matches_the_client_router() -> None:
    client_paths = set(re.findall(r'path: "(/[a-z]*)"', (STATIC / "js" / "pages.js").read_text()))
    server_paths = {p for p in web.PAGE_PATHS if "{" not in p}
    assert client_paths == server_paths


def test_the_vendored_chart_library_is_the_pinned_release() -> None:
    version = (VENDOR / "VERSION.txt").read_text()
    assert "uPlot 1.6.32" in version and (VENDOR / "LICENSE.txt").read_text().startswith("The MIT License")
    pinned = dict(
        (name, digest) for digest, name in re.findall(r"^\s+([0-9a-f]{64})\s+(\S+)$", version, re.MULTILINE)
    )
    assert set(pinned) == {"uPlot.esm.js", "uPlot.min.css", "LICENSE.txt"}
    for name, digest in pinned.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_the_start_banner_names_the_dashboard_and_its_key() -> None:
    generated = dashboard_banner("0.0.0.0", 8000, "generated-read-key-0123")
    assert (
        generated == "dashboard: http://127.0.0.1:8000/  (sign in with the read key generated-read-key-0123)"
    )
    assert "key" in dashboard_banner("127.0.0.1", 8001, None) and "8001/" in dashboard_banner(
        "127.0.0.1", 8001, None
    )
