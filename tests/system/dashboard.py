"""What the dashboard's browser tests share: the system they run against (module-scoped, two read keys),
the events and persons seeded through the public API, and small page helpers (navigation, sign-in,
screenshots)."""

from __future__ import annotations

import asyncio
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
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, module_all_in_one, wait_until

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


# The seeded persons: user id -> (anonymous id, email).
PERSONS = {"ada": ("anon-ada", "ada@example.com"), "bob": ("anon-bob", "bob@example.com")}


def person_events(first: date) -> list[dict[str, Any]]:
    """Ada browses as anon-ada (12 page views, the first setting her referrer once), signs up with both
    ids, then comes back the next day as ada (20 events, a purchase setting her plan); Bob views two
    pages as anon-bob and signs up with both ids. Their identify calls come on top."""
    events = []

    def add(
        name: str, day: date, minute: int, *, user: str | None, anon: str | None, **properties: Any
    ) -> None:
        event: dict[str, Any] = {
            "event": name,
            "timestamp": f"{day.isoformat()}T{10 + minute // 60:02d}:{minute % 60:02d}:00Z",
            "properties": properties,
            "event_id": str(uuid.uuid4()),
        }
        event.update({k: v for k, v in (("user_id", user), ("anonymous_id", anon)) if v})
        events.append(event)

    for k in range(12):
        extra = {"$set_once": {"first_referrer": "news"}} if k == 0 else {}
        add("page_view", first, k, user=None, anon="anon-ada", path=f"/docs/{k}", **extra)
    add("signup", first, 30, user="ada", anon="anon-ada", plan="free")
    for k in range(20):
        name = "purchase" if k % 5 == 4 else "view_item"
        extra = {"amount": 9.5, "$set": {"plan": "pro"}} if name == "purchase" else {"item": f"sku-{k}"}
        add(name, first + timedelta(days=1), k * 3, user="ada", anon=None, **extra)
    add("page_view", first, 5, user=None, anon="anon-bob", path="/")
    add("page_view", first, 6, user=None, anon="anon-bob", path="/pricing")
    add("signup", first, 7, user="bob", anon="anon-bob", plan="team")
    return events


@pytest.fixture(scope="module")
def persons(dashboard_system: ServiceProcess, seeded: Seed) -> dict[str, int]:
    """Ada and Bob, identified through POST /api/v1/identify and with events carrying their anonymous
    id, both ids or their user id; ready once the persons API resolves both ids to each of them with
    every event. Answers each person's number of events."""
    first = seeded.today - timedelta(days=3)
    events = person_events(first)
    with dashboard_system.client(INGEST_KEY) as ingest:
        for user, (anon, email) in PERSONS.items():
            identify = {
                "anonymous_id": anon,
                "user_id": user,
                "timestamp": f"{first.isoformat()}T09:00:00Z",
                "properties": {"email": email, "plan": "free"},
            }
            assert ingest.post("/api/v1/identify", json=identify).status_code == 202
        assert ingest.post("/api/v1/events", json={"events": events}).status_code == 202
    # An event's distinct id is its user id, else its anonymous id; the identify call is one more event.
    ids = [e.get("user_id") or e["anonymous_id"] for e in events]
    expected = {user: 1 + sum(i in (user, anon) for i in ids) for user, (anon, _) in PERSONS.items()}
    answers: dict[str, Any] = {}

    def resolved(reader: httpx.Client) -> bool:
        for user, (anon, _) in PERSONS.items():
            answers[anon] = reader.get(f"/api/v1/persons/{anon}").json()
            if answers[anon].get("person_id") != user or answers[anon].get("events") != expected[user]:
                return False
        return True

    with api(dashboard_system) as reader:
        asyncio.run(wait_until(lambda: resolved(reader), timeout=90, interval=0.3, state=lambda: answers))
    return expected


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
