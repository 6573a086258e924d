"""What the dashboard's browser tests share: the system they run against (module-scoped, two read keys),
the events seeded through the public API, and small page helpers (navigation, sign-in, screenshots)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.keys import Keys

from deploy.processes import ServiceProcess
from tests.browser import DESKTOP, PHONE, Browser
from tests.pipeline import wait_for_count
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, module_all_in_one

OTHER_READ_KEY = "test-dashboard-second-read-key"
dashboard_system = module_all_in_one(
    "dashboard",
    {"ETL_SCHEDULE_ENABLED": "false", "ANALYTICS_READ_KEYS": f"{READ_KEY},{OTHER_READ_KEY}"},
)
NUMBER = re.compile(r"-?[\d,]*\.?\d+")


@dataclass(frozen=True)
class Seed:
    today: date
    events: int


def api(system: ServiceProcess, key: str = READ_KEY) -> httpx.Client:
    return system.client(key)


def seed_events(today: date) -> list[dict[str, Any]]:
    """24 users over the 20 days before today: signup, most view an item, some buy; half return a week on."""
    events = []

    def add(name: str, user: str, day: date, hour: int, **properties: Any) -> None:
        stamp = f"{day.isoformat()}T{hour:02d}:00:00Z"
        events.append(
            {
                "event": name,
                "user_id": user,
                "timestamp": stamp,
                "properties": properties,
                "event_id": str(uuid.uuid4()),
            }
        )

    for k in range(24):
        user, first = f"user-{k}", today - timedelta(days=1 + k % 20)
        plan = "pro" if k % 2 else "free"
        add("signup", user, first, 9, plan=plan)
        if k % 4 != 3:
            add("view_item", user, first, 10, plan=plan)
            if k % 3 == 0:
                add("purchase", user, first, 11, plan=plan, amount=10.0 + k)
        if k % 2 == 0 and first + timedelta(days=7) < today:
            add("view_item", user, first + timedelta(days=7), 12)
    return events


@pytest.fixture(scope="module")
def seeded(dashboard_system: ServiceProcess) -> Seed:
    """The events posted (explicit ids and times), stored, and the ETL run for the days they cover."""
    today = datetime.now(UTC).date()
    events = seed_events(today)
    with dashboard_system.client(INGEST_KEY) as ingest:
        assert ingest.post("/api/v1/events", json={"events": events}).json()["accepted"] == len(events)
    start, end = (today - timedelta(days=30)).isoformat(), today.isoformat()
    stored = wait_for_count(dashboard_system.url, len(events), timeout=60, start=start, end=end)
    assert stored.get("events") == len(events), f"seeded events not stored within 60 s: {stored}"
    days = {
        "start_date": (today - timedelta(days=21)).isoformat(),
        "end_date": (today - timedelta(days=1)).isoformat(),
    }
    with dashboard_system.client(ADMIN_KEY, timeout=300) as admin:
        assert admin.post("/api/v1/analytics/etl/run", json=days).status_code == 200
    return Seed(today, len(events))


@pytest.fixture(scope="module")
def page(browser: Browser, dashboard_system: ServiceProcess, seeded: Seed) -> Iterator[Browser]:
    """The browser at desktop size, its logs emptied; each test ends with no page failure."""
    browser.resize(*DESKTOP)
    browser.failures()
    yield browser


def go(page: Browser, system: ServiceProcess, path: str) -> None:
    page.get(system.url + path)
    page.wait_for("main h1")


def sign_in(page: Browser, system: ServiceProcess, key: str = READ_KEY) -> None:
    page.get(system.url + "/")
    field = page.wait_for("#signin-key")
    field.clear()
    field.send_keys(key, Keys.ENTER)  # the keyboard alone signs in
    page.wait(lambda: page.css("body").get_attribute("data-signed-in") == "true", what="signed in")


def number(text: str) -> float:
    """The first number in a text as shown ("1,234.5 users" -> 1234.5)."""
    match = NUMBER.search(text.replace("−", "-"))
    assert match, f"no number in {text!r}"
    return float(match.group().replace(",", ""))


def no_failures(page: Browser, where: str) -> None:
    failures = page.failures()
    assert not failures, f"{where}: {failures}"


def shoot(
    page: Browser, system: ServiceProcess, path: str, name: str, ready: str, *, live_events: int = 0
) -> None:
    """Screenshots of a page at desktop and phone width, each after `ready` is on the page (and, for the
    live views, after `live_events` new events arrived: they show only what came since they opened)."""
    for size, mobile, label in ((DESKTOP, False, "desktop"), (PHONE, True, "phone")):
        page.resize(*size, mobile=mobile)
        go(page, system, path)
        page.wait_for(ready)
        if live_events:
            page.wait(lambda: page.text(".live-status") == "Connected", what="connected")
            post_live_events(system, live_events)
            page.wait(
                lambda: (
                    page.all("#live-list .live-event")
                    or (page.all(".chart-note") and "No events yet" not in page.text(".chart-note"))
                ),
                timeout=30,
                what="live events on the page",
            )
        time.sleep(1.2 if live_events else 0.4)  # charts draw on the next frames; live bars each second
        page.screenshot(f"{name}-{label}")
    page.resize(*DESKTOP)
    no_failures(page, f"screenshots of {path}")


def post_live_events(system: ServiceProcess, count: int) -> None:
    now = datetime.now(UTC)
    events = [
        {
            "event": ["view_item", "purchase", "signup"][k % 3],
            "user_id": f"visitor-{k}",
            "timestamp": (now - timedelta(seconds=k)).isoformat(),
            "properties": {"amount": 12.5} if k % 3 == 1 else {},
        }
        for k in range(count)
    ]
    with system.client(INGEST_KEY) as ingest:
        assert ingest.post("/api/v1/events", json={"events": events}).status_code == 202


def weeks_touching(start: date, end: date) -> int:
    monday = lambda d: d - timedelta(days=d.weekday())  # noqa: E731
    return (monday(end) - monday(start)).days // 7 + 1
