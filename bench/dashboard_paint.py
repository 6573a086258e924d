"""`make bench-query`, dashboard section (issue 17): the overview's first useful paint on 10M events, in
Debian's headless Chromium (the browser test's options, tests/browser.py) against the real query and ETL
service.

    python -m bench --only dashboard [--scale 1.0]

1. bench/dashboard_data.py generates N = 10M x scale events of 1M x scale users (the query section's
   shape) in the section's own data directory, in its own process (chDB: one process per directory).
2. One `python -m services --target query,etl` process opens it, and POST /api/v1/analytics/etl/run
   (admin key) computes the daily metrics of the last 31 days of the data, what the overview shows.
   No live gateway: the overview's live counter must not hold the cards back (it shows the WebSocket as
   disconnected), and no Kafka broker (the ETL's reader of the live topic retries in the background).
3. A tab signed in with the read key (in sessionStorage, where the dashboard keeps it) loads the
   overview LOADS times with the HTTP cache emptied before each, then LOADS times with it warm. A load's
   first useful paint is the page's mark 'overview-ready' (the metric cards are on screen), as the
   browser test reads it, beside first contentful paint; once every chart is drawn, the page's resource
   timing entries give the API requests each chart made.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from bench.report import Figure
from deploy.kafka.broker import REPO, free_port
from deploy.processes import ServiceProcess, stop_all
from tests.browser import CHROMEDRIVER, Browser, chromium_options

EVENTS, USERS = 10_000_000, 1_000_000
LOADS = 5
OVERVIEW_DAYS = 30  # the sparklines span 30 days ending on the last; one more day gives the first change
TARGET_MS = 1000
READ_KEY = "bench-dashboard-read-key-0123"
ADMIN_KEY = "bench-dashboard-admin-key-012"
INGEST_KEY = "bench-dashboard-ingest-key-01"
SESSION_KEY = "analytics.key"  # services/query/static/js/session.js
MARK = "return performance.getEntriesByName(arguments[0])[0]?.startTime ?? null"
API_PATHS = """
return performance.getEntriesByType('resource')
  .map((e) => new URL(e.name)).filter((u) => u.pathname.startsWith('/api/')).map((u) => u.pathname)"""
# Every chart is drawn (or says why not): no sparkline still loading, the top events table or its state.
DRAWN = """
const sparks = [...document.querySelectorAll('.card .spark')];
return sparks.length > 0 && sparks.every((s) => !s.getAttribute('aria-label').includes(': loading'))
  && document.querySelector('.top table.top-events, .top .state:not(.loading)') !== null"""
METRICS = "/api/v1/analytics/metrics"
Add = Callable[[Figure], None]


@dataclass
class Load:
    """One load of the overview: its paints (ms since navigation) and its API requests by chart."""

    useful_ms: float
    contentful_ms: float
    requests: dict[str, int]


def run(scale: float, runs: int, workdir: Path, add: Add) -> None:
    """Prepare the data, start the services, compute the metrics, measure; each figure to `add`."""
    workdir.mkdir(parents=True, exist_ok=True)
    events, users = max(10_000, int(EVENTS * scale)), max(400, int(USERS * scale))
    env = {
        "ANALYTICS_INGEST_KEYS": INGEST_KEY,
        "ANALYTICS_READ_KEYS": READ_KEY,
        "ANALYTICS_ADMIN_KEYS": ADMIN_KEY,
        "ANALYTICS_DATA_DIR": str(workdir / "data"),
        "ANALYTICS_TOPIC_PREFIX": "bench-dashboard",
        "ANALYTICS_RATE_LIMIT_QUERY": "0",
        "ETL_SCHEDULE_ENABLED": "false",
        "ANALYTICS_LOG_LEVEL": "WARNING",
        # No broker listens there: the ETL's live-count reader must not find another's (`make run`'s).
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }
    made = prepare(env, events, users)
    add(data_figure(made))
    service = ServiceProcess("query,etl", env, workdir)
    try:
        started = time.perf_counter()
        service.start(timeout=300)
        add(Figure("dashboard data: start the query,etl service on it", "s", [time.perf_counter() - started]))
        add(etl_figure(service, date.fromisoformat(made["first_day"]), date.fromisoformat(made["last_day"])))
        for figure in measure(service, made, max(runs, LOADS)):
            add(figure)
    finally:
        stop_all([service])


def prepare(env: dict[str, str], events: int, users: int) -> dict[str, Any]:
    """bench/dashboard_data.py in its own process; what it made."""
    print(f"  generating {events:,} events of {users:,} users for the dashboard", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.dashboard_data", str(events), str(users)],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.dashboard_data failed:\n{done.stderr[-4000:]}")
    made: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    made["total_s"] = time.perf_counter() - started
    return made


def data_figure(made: dict[str, Any]) -> Figure:
    return Figure(
        f"dashboard data: generate {made['events']:,} events, persons, OPTIMIZE FINAL",
        "s",
        [made["total_s"]],
        note=f"{made['events']:,} events ({made['rows']:,} rows with the retried copies) of "
        f"{made['users']:,} users, {made['first_day']} to {made['last_day']} (moved by whole days to "
        "end yesterday); "
        f"generate {made['generate_s']:.0f} s, persons {made['persons_s']:.0f} s, OPTIMIZE FINAL "
        f"{made['optimize_s']:.0f} s, the rest the process's start",
    )


def etl_figure(service: ServiceProcess, first: date, last: date) -> Figure:
    """POST /api/v1/analytics/etl/run over the days the overview shows (its 30-day sparklines and the
    day before their first, for the change), timed: every day of the data took 217 s at scale 1."""
    first = max(first, last - timedelta(days=OVERVIEW_DAYS))
    days = {"start_date": first.isoformat(), "end_date": last.isoformat()}
    print(f"  computing the daily metrics {first} .. {last}", flush=True)
    started = time.perf_counter()
    with service.client(ADMIN_KEY, timeout=3600) as admin:
        answer = admin.post("/api/v1/analytics/etl/run", json=days)
    seconds = time.perf_counter() - started
    answer.raise_for_status()
    stored = answer.json()
    return Figure(
        f"dashboard data: ETL run over the overview's {len(stored['days'])} days",
        "s",
        [seconds],
        note=f"POST /api/v1/analytics/etl/run: {len(stored['metrics'])} metrics, "
        f"{stored['rows']:,} snapshot rows",
    )


def measure(service: ServiceProcess, made: dict[str, Any], loads: int) -> list[Figure]:
    """The overview loaded `loads` times with an empty HTTP cache, then `loads` times warm."""
    expected = expected_cards(service, made["last_day"])
    load_average = os.getloadavg()[0]
    profile = Path(tempfile.mkdtemp(prefix="bench-chromium-"))
    page = open_browser(profile)
    try:
        sign_in(page, service.url)
        cold = [load_overview(page, service.url, expected, empty_cache=True) for _ in range(loads)]
        warm = [load_overview(page, service.url, expected, empty_cache=False) for _ in range(loads)]
    finally:
        page.driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return paint_figures(cold, warm, made["events"], load_average)


def expected_cards(service: ServiceProcess, last_day: str) -> int:
    """How many metric cards the overview must show; refuses an overview not on the data's last day."""
    with service.client(READ_KEY) as reader:
        overview = reader.get("/api/v1/analytics/overview").json()
        known = reader.get(METRICS).json()["metrics"]
    if overview["date"] != last_day:
        raise RuntimeError(f"the overview is for {overview['date']}, not the data's last day {last_day}")
    return len(known)


def open_browser(profile: Path) -> Browser:
    driver = webdriver.Chrome(options=chromium_options(profile), service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    return Browser(driver)


def sign_in(page: Browser, url: str) -> None:
    """Keep the read key for the tab, as the sign-in form does, and check the dashboard takes it."""
    page.get(url + "/")
    page.run("sessionStorage.setItem(arguments[0], arguments[1])", SESSION_KEY, READ_KEY)
    page.get(url + "/")
    page.wait(lambda: page.css("body").get_attribute("data-signed-in") == "true", what="signed in")


def load_overview(page: Browser, url: str, cards: int, *, empty_cache: bool) -> Load:
    """One navigation to the overview: its paints, and once every chart is drawn, its API requests."""
    if empty_cache:
        page.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    page.get(url + "/")
    useful = page.wait(lambda: page.run(MARK, "overview-ready"), timeout=60, what="overview-ready")
    shown = len(page.all(".card[data-metric] .value"))
    if shown != cards:
        raise RuntimeError(f"overview-ready with {shown} metric cards on screen, not {cards}")
    page.wait(lambda: page.run(DRAWN), timeout=120, what="every chart of the overview drawn")
    contentful = page.run(MARK, "first-contentful-paint")
    return Load(float(useful), float(contentful), by_chart(page.run(API_PATHS)))


def by_chart(paths: list[str]) -> dict[str, int]:
    """API requests by what the overview draws with them."""
    charts: Counter[str] = Counter()
    for path in paths:
        if path.startswith(METRICS + "/"):
            charts["sparkline " + path.removeprefix(METRICS + "/")] += 1
        elif path in (METRICS, "/api/v1/analytics/overview"):
            charts["metric cards"] += 1
        elif path == "/api/v1/analytics/stats":
            charts["top events"] += 1
        else:
            charts[path] += 1
    return dict(charts)


def paint_figures(cold: list[Load], warm: list[Load], events: int, load_average: float) -> list[Figure]:
    useful = [load.useful_ms for load in cold]
    charts = [load.requests for load in cold + warm]
    most = [max(n for chart, n in requests.items() if chart != "metric cards") for requests in charts]
    cards = max(requests.get("metric cards", 0) for requests in charts)
    sparklines = {chart for requests in charts for chart in requests if chart.startswith("sparkline ")}
    others = sorted({chart for requests in charts for chart in requests} - sparklines - {"metric cards"})
    return [
        Figure(
            f"dashboard: overview first useful paint ({events:,} events)",
            "ms",
            useful,
            f"<= {TARGET_MS:,}",
            statistics.median(useful) <= TARGET_MS,
            note="performance mark 'overview-ready' (the metric cards on screen) of a fresh load of the "
            "signed-in overview, HTTP cache emptied before each; headless Chromium at 1280x800; load "
            f"average {load_average:.1f} on the {os.cpu_count()} cores when the loads began",
        ),
        Figure("dashboard: overview first contentful paint", "ms", [load.contentful_ms for load in cold]),
        Figure(
            "dashboard: overview first useful paint, HTTP cache warm",
            "ms",
            [load.useful_ms for load in warm],
            note="the browser test's reading: a reload of the signed-in overview",
        ),
        Figure(
            "dashboard: overview API requests per chart (most of any chart)",
            "requests",
            [float(n) for n in most],
            "1",
            all(n == 1 for n in most),
            note=f"the most API requests any chart made in a load, from the page's resource timing "
            f"entries of all {len(charts)} loads; the charts: {len(sparklines)} sparklines, "
            f"{', '.join(others)}; the metric cards (not a chart) take {cards}: GET /overview (the "
            "values) and GET /metrics (names and units), in parallel",
        ),
    ]
