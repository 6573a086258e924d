"""The dashboard in a real browser (headless Chromium) against the real all-in-one system, seeded through
the public API: each page shows what the API answers for the same query (read from the DOM), the live
page moves with a new event, saved insights survive a restart, wrong keys are refused, and no page logs
a console error or a failed request. Screenshots of every page land in tests/output/screenshots/."""

# ruff: noqa: F811 - the fixtures imported below are, as pytest means it, redefined as test arguments
from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from deploy.processes import ServiceProcess
from tests.browser import Browser, browser  # noqa: F401 - a fixture
from tests.support import INGEST_KEY, READ_KEY
from tests.system.dashboard import (  # noqa: F401 - dashboard_system, seeded, persons and page are fixtures
    OTHER_READ_KEY,
    Seed,
    api,
    dashboard_system,
    go,
    no_failures,
    number,
    page,
    persons,
    seeded,
    shoot,
    sign_in,
    weeks_touching,
)


def test_a_wrong_key_is_refused_in_words(page: Browser, dashboard_system: ServiceProcess) -> None:
    page.get(dashboard_system.url + "/")
    page.run("sessionStorage.clear()")
    for key, says in (
        ("not-a-key-of-this-system-0123", "not known to the server"),
        (INGEST_KEY, "ingest key"),
    ):
        page.get(dashboard_system.url + "/")
        page.wait_for("#signin-key").send_keys(key, Keys.ENTER)
        page.wait(lambda says=says: says in page.text("#signin-error"), what=says)
        assert page.css("body").get_attribute("data-signed-in") == "false"
        assert page.run("return sessionStorage.length") == 0
    refused = page.failures()  # the two refusals themselves, and nothing else
    assert refused and all("401" in f.text or "403" in f.text for f in refused), refused
    page.screenshot("signin-refused-desktop")


def test_overview_shows_the_apis_numbers(
    page: Browser, dashboard_system: ServiceProcess, seeded: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_in(page, dashboard_system)
    page.wait_for(".card[data-metric='dau'] .value")
    with api(dashboard_system) as client:
        overview = client.get("/api/v1/analytics/overview").json()
        units = {m["name"]: m["unit"] for m in client.get("/api/v1/analytics/metrics").json()["metrics"]}
        week = {
            "start_date": (seeded.today - timedelta(days=6)).isoformat(),
            "end_date": seeded.today.isoformat(),
        }
        stats = client.get("/api/v1/analytics/stats", params=week).json()
    assert overview["date"] == (seeded.today - timedelta(days=1)).isoformat()
    for name, figures in overview["metrics"].items():
        shown = page.text(f".card[data-metric='{name}'] .value")
        expected = figures["value"] * (100 if units[name] == "ratio" else 1)
        assert abs(number(shown) - expected) <= 0.005, (name, shown, figures)
        change = page.text(f".card[data-metric='{name}'] .change")
        if figures["change_pct"] is None:
            assert change.startswith("–"), (name, change)
        elif figures["change_pct"] == 0:
            assert change.startswith("no change"), (name, change)
        else:
            assert abs(number(change.lstrip("▲▼ ")) - figures["change_pct"]) < 0.05, (name, change, figures)
    page.wait_for("table.top-events")
    rows = [
        [c.text for c in row.find_elements("css selector", "th, td")]
        for row in page.all("table.top-events tbody tr")
    ]
    assert rows == [[e["event"], f"{e['count']:,}", f"{e['unique_users']:,}"] for e in stats["by_event"][:10]]
    assert number(page.text(".top .total-events")) == stats["events"]
    page.wait(
        lambda: len(page.all(".card .spark canvas")) == len(overview["metrics"]), what="every sparkline"
    )

    page.get(dashboard_system.url + "/")  # a fresh load, signed in: how soon are the cards on screen?
    ready = page.wait(lambda: page.run("return performance.getEntriesByName('overview-ready')[0]?.startTime"))
    paint = page.run("return performance.getEntriesByName('first-contentful-paint')[0]?.startTime")
    with capsys.disabled():
        print(
            f"\noverview: first useful paint (metric cards shown) {ready:.0f} ms,"
            f" first contentful paint {paint:.0f} ms"
        )
    no_failures(page, "overview")
    assert READ_KEY not in page.driver.current_url and page.run("return localStorage.length") == 0


def test_funnel_page_shows_the_apis_funnel_and_keeps_it_in_the_url(
    page: Browser, dashboard_system: ServiceProcess, seeded: Seed, tmp_path: Path
) -> None:
    go(page, dashboard_system, "/funnel")
    page.wait_for(".funnel-results .state.empty")
    inputs = page.all(".step-inputs input")
    inputs[0].send_keys("signup")
    inputs[1].send_keys("view_item")
    page.css(".funnel-form form > button.button.quiet").click()  # Add step
    page.all(".step-inputs input")[2].send_keys("purchase")
    page.css("#funnel-breakdown").send_keys("plan")
    page.css(".funnel-form button[type=submit]").click()
    page.wait_for("table.funnel-table")

    query = parse_qs(urlparse(page.driver.current_url).query)
    assert query == {"step": ["signup", "view_item", "purchase"], "breakdown": ["plan"]}
    body = {
        "steps": ["signup", "view_item", "purchase"],
        "breakdown": "plan",
        "start_date": (seeded.today - timedelta(days=29)).isoformat(),
        "end_date": seeded.today.isoformat(),
    }
    with api(dashboard_system) as client:
        expected = client.post("/api/v1/analytics/funnel", json=body).json()

    def shown_steps() -> list[list[str]]:
        return [
            [c.text for c in r.find_elements("css selector", "th, td")]
            for r in page.all("table.funnel-table tbody tr")
        ]

    assert shown_steps() == [
        [
            f"{k + 1}. {s['step']}",
            f"{s['count']:,}",
            f"{s['conversion_rate']:g}%",
            "–" if k == 0 else f"{s['drop_off']:,}",
        ]
        for k, s in enumerate(expected["funnel"])
    ]
    assert number(page.text(".overall-conversion")) == expected["overall_conversion"]
    buckets = [r.find_element("css selector", "th").text for r in page.all("table.breakdown-table tbody tr")]
    assert buckets == [b["value"] for b in expected["breakdown"]]
    entered = [
        number(r.find_elements("css selector", "td")[0].text)
        for r in page.all("table.breakdown-table tbody tr")
    ]
    assert entered == [b["total_entries"] for b in expected["breakdown"]]

    page.download_to(tmp_path)
    page.css(".funnel-results button.csv").click()
    csv_file = page.wait(lambda: next(iter(tmp_path.glob("*.csv")), None), what="the CSV download")
    lines = page.wait(lambda: csv_file.read_text().splitlines(), what="the CSV's content")
    assert lines[0] == "breakdown,step_number,step,users,conversion_rate,drop_off"
    assert lines[1:4] == [
        f"all,{k + 1},{s['step']},{s['count']},{s['conversion_rate']:g},{s['drop_off']}"
        for k, s in enumerate(expected["funnel"])
    ]

    page.driver.refresh()  # the URL alone brings it back
    page.wait(lambda: shown_steps() == shown_steps() and len(shown_steps()) == 3, what="funnel after reload")
    page.driver.back()
    page.wait_for(".funnel-results .state.empty")
    page.driver.forward()
    page.wait_for("table.funnel-table")
    assert [r[1] for r in shown_steps()] == [f"{s['count']:,}" for s in expected["funnel"]]
    no_failures(page, "funnel")


def test_retention_page_shows_the_apis_cohorts(
    page: Browser, dashboard_system: ServiceProcess, seeded: Seed
) -> None:
    go(page, dashboard_system, "/retention")
    page.wait_for("table.heatmap")
    params = {
        "period_type": "weekly",
        "periods": weeks_touching(seeded.today - timedelta(days=29), seeded.today),
        "end_date": seeded.today.isoformat(),
    }
    with api(dashboard_system) as client:
        expected = client.get("/api/v1/analytics/cohort", params=params).json()
    rows = page.all("table.heatmap tbody tr")
    assert [r.find_element("css selector", "th").text for r in rows] == [
        c["cohort_date"] for c in expected["cohorts"]
    ]
    for row, cohort in zip(rows, expected["cohorts"], strict=True):
        assert number(row.find_elements("css selector", "td")[0].text) == cohort["users"]
        cells = row.find_elements("css selector", "td.cell:not(.future)")
        shown = [
            (
                number(c.find_element("css selector", ".pct").text),
                number(c.find_element("css selector", ".count").text),
            )
            for c in cells
        ]
        assert shown == [(p["percentage"], p["count"]) for p in cohort["data"]], cohort["cohort_date"]
        assert all(re.search(r"\bheat-(\d|none)\b", c.get_attribute("class")) for c in cells)

    page.css("#retention-period").send_keys("Days")  # keyboard choice of the select
    page.css(".retention-form button[type=submit]").click()
    page.wait(lambda: "period=daily" in page.driver.current_url, what="daily in the URL")
    page.wait(lambda: page.all("table.heatmap thead th")[2].text == "Day 0", what="daily cohorts")
    assert len(page.all("table.heatmap tbody tr")) == 30
    no_failures(page, "retention")


def test_live_page_moves_with_a_new_event(page: Browser, dashboard_system: ServiceProcess) -> None:
    go(page, dashboard_system, "/live")
    page.wait(lambda: page.text("#live-status") == "Connected", what="connected")
    before = page.wait(
        lambda: page.text("#live-active-users") != "–" and number(page.text("#live-active-users")) + 1
    )
    user = f"live-{uuid.uuid4().hex[:8]}"
    event = {
        "event": "live_check",
        "user_id": user,
        "timestamp": datetime.now(UTC).isoformat(),
        "event_id": str(uuid.uuid4()),
    }
    with dashboard_system.client(INGEST_KEY) as ingest:
        assert ingest.post("/api/v1/events", json=event).status_code == 202
    row = page.wait(
        lambda: [r for r in page.all("#live-list .live-event") if user in r.text],
        timeout=30,
        what="the event in the list",
    )[0]
    assert row.find_element("css selector", ".event").text == "live_check"
    page.wait(
        lambda: number(page.text("#live-active-users")) >= before, timeout=30, what="the counter to move"
    )

    page.css("#live-filter").send_keys("purchase", Keys.ENTER)  # only purchases from now on
    page.wait(lambda: "event=purchase" in page.driver.current_url, what="the filter in the URL")
    other = {**event, "user_id": f"{user}-2", "event_id": str(uuid.uuid4())}
    bought = {
        **event,
        "event": "purchase",
        "user_id": f"{user}-3",
        "event_id": str(uuid.uuid4()),
        "properties": {"amount": 5},
    }
    with dashboard_system.client(INGEST_KEY) as ingest:
        ingest.post("/api/v1/events", json={"events": [other, bought]})
    page.wait(
        lambda: any(f"{user}-3" in r.text for r in page.all("#live-list .live-event")),
        timeout=30,
        what="the purchase",
    )
    assert not any(f"{user}-2" in r.text for r in page.all("#live-list .live-event"))

    burst = [{**bought, "user_id": f"{user}-b{k}", "event_id": str(uuid.uuid4())} for k in range(200)]
    with dashboard_system.client(INGEST_KEY) as ingest:  # ten times what a tab may get in a second
        ingest.post("/api/v1/events", json={"events": burst})
    page.wait(lambda: "not shown" in page.text("#live-dropped"), timeout=30, what="dropped events reported")
    assert number(page.text("#live-dropped")) > 0
    no_failures(page, "live")


def test_a_saved_insight_and_dashboard_survive_a_restart(
    page: Browser, dashboard_system: ServiceProcess, seeded: Seed
) -> None:
    go(page, dashboard_system, "/funnel?step=signup&step=purchase")
    page.wait_for("table.funnel-table")
    page.css(".funnel-results button.save").click()
    name = page.wait_for("#save-form input[name=name]")
    name.clear()
    name.send_keys("Signup to purchase", Keys.ENTER)
    page.wait(lambda: "Saved “Signup to purchase”" in page.text(".notices"), what="the saved notice")

    go(page, dashboard_system, "/dashboards")
    page.css("#new-dashboard-name").send_keys("Growth", Keys.ENTER)
    page.wait(lambda: "/dashboards/" in page.driver.current_url, what="the new dashboard")
    dashboard_url = page.driver.current_url
    page.wait_for("#add-tile button[type=submit]").click()
    page.wait_for(".tile .funnel-bars")
    with api(dashboard_system) as client:
        body = {
            "steps": ["signup", "purchase"],
            "start_date": (seeded.today - timedelta(days=29)).isoformat(),
            "end_date": seeded.today.isoformat(),
        }
        expected = client.post("/api/v1/analytics/funnel", json=body).json()
    counts = [number(f.text) for f in page.all(".tile .step-figures strong")]
    assert counts == [s["count"] for s in expected["funnel"]]
    no_failures(page, "saving")

    go(page, dashboard_system, "/live")
    page.wait(lambda: page.text("#live-status") == "Connected", what="connected")
    dashboard_system.terminate()  # a restart, as Ctrl-C and `make run` again would do it
    page.wait(lambda: page.text("#live-status").startswith("Disconnected"), what="the page to say so")
    dashboard_system.start()
    page.wait(lambda: page.text("#live-status") == "Connected", timeout=60, what="reconnected by itself")
    page.get(dashboard_url)  # the tab keeps its key; the system is a new process
    page.wait_for(".tile .funnel-bars")
    assert page.text("main h1") == "Growth"
    assert [number(f.text) for f in page.all(".tile .step-figures strong")] == counts
    go(page, dashboard_system, "/insights")
    page.wait_for("table.insights-table")
    assert [a.text for a in page.all(".insight-link")] == ["Signup to purchase"]
    page.failures()  # the live socket's reconnection attempts while the process was down

    page.css("#sign-out").click()
    sign_in(page, dashboard_system, OTHER_READ_KEY)
    page.get(dashboard_url)  # the shared link, with another read key: it opens, but is not theirs to change
    page.wait_for(".tile .funnel-bars")
    assert not page.all("#add-tile") and not page.all(".tile .danger")
    no_failures(page, "a shared dashboard")
    page.css("#sign-out").click()
    sign_in(page, dashboard_system)


def person_shown(page: Browser) -> dict[str, Any]:
    """The person's page as the DOM shows it, in the API's terms."""
    return {
        "person_id": page.text("#person-id"),
        "distinct_ids": [li.get_attribute("data-id") for li in page.all("#person-distinct-ids li")],
        "properties": {
            row.find_element("css selector", "th").text: json.loads(
                row.find_element("css selector", "td").get_attribute("data-json")
            )
            for row in page.all("table.person-properties tbody tr")
        },
        "first_seen": page.css("#person-first-seen time").get_attribute("datetime"),
        "last_seen": page.css("#person-last-seen time").get_attribute("datetime"),
        "events": int(page.css("#person-events-count").get_attribute("data-value")),
    }


def timeline_shown(page: Browser) -> list[tuple[str, str, str, str]]:
    """(event_id, event, distinct id, time) of every event the timeline shows, top to bottom."""
    return [
        (
            item.get_attribute("data-event-id"),
            item.find_element("css selector", ".event").text,
            item.find_element("css selector", ".distinct-id")
            .get_attribute("textContent")
            .removeprefix("as "),
            item.find_element("css selector", "time").get_attribute("datetime"),
        )
        for item in page.all("#person-events .timeline-event")
    ]


def test_persons_page_finds_a_person_and_shows_what_the_api_answers(
    page: Browser, dashboard_system: ServiceProcess, persons: dict[str, int]
) -> None:
    go(page, dashboard_system, "/persons")
    page.wait_for("table.persons-table")
    with api(dashboard_system) as client:
        everyone = client.get("/api/v1/persons", params={"search": "", "limit": 25}).json()["persons"]
    assert [a.text for a in page.all(".person-link")] == [p["person_id"] for p in everyone]

    search = page.css("#person-search")  # the keyboard alone searches
    search.send_keys("ada@", Keys.ENTER)
    page.wait(
        lambda: parse_qs(urlparse(page.driver.current_url).query) == {"q": ["ada@"]}, what="q in the URL"
    )
    page.wait(lambda: [a.text for a in page.all(".person-link")] == ["ada"], what="Ada found by her email")
    assert page.text("table.persons-table tbody td:last-child") == "ada@example.com"
    page.css(".person-link").click()
    page.wait(lambda: "person=ada" in page.driver.current_url, what="the person in the URL")
    page.wait_for("#person-events .timeline-event")

    with api(dashboard_system) as client:
        ada = client.get("/api/v1/persons/ada").json()
        first = client.get("/api/v1/persons/ada/events", params={"limit": 25}).json()
        older = client.get("/api/v1/persons/ada/events", params={"limit": 25, "before": first["next"]}).json()
    assert ada["events"] == persons["ada"] and sorted(ada["distinct_ids"]) == ["ada", "anon-ada"]
    assert ada["properties"] == {"email": "ada@example.com", "first_referrer": "news", "plan": "pro"}
    page.wait(lambda: person_shown(page) == ada, what="the person as the API answers")
    expected = [
        (e["event_id"], e["event"], e["distinct_id"], e["timestamp"])
        for e in first["events"] + older["events"]
    ]
    assert timeline_shown(page) == expected[:25]
    days = [d.get_attribute("data-day") for d in page.all("#person-events .timeline-day")]
    assert days == sorted({e[3][:10] for e in expected[:25]}, reverse=True)
    assert older["next"] is None and len(expected) == persons["ada"]

    page.css("#person-older").click()  # the next page, through the cursor
    page.wait(lambda: len(timeline_shown(page)) == len(expected), what="the older events")
    assert timeline_shown(page) == expected
    assert not page.css("#person-older").is_displayed()
    assert page.text("#person-events-status") == f"All {len(expected)} events."
    focused = page.run("return document.activeElement.dataset.eventId")
    assert focused == older["events"][0]["event_id"]  # the reader carries on from the first older event

    page.driver.refresh()  # the URL alone brings the person back; back goes to the search
    page.wait(lambda: page.all("#person-events .timeline-event") and person_shown(page) == ada, what="reload")
    page.driver.back()
    page.wait(lambda: [a.text for a in page.all(".person-link")] == ["ada"], what="the search again")
    assert page.css("#person-search").get_attribute("value") == "ada@"

    go(page, dashboard_system, "/persons?person=anon-bob")  # by an anonymous id: the same person
    page.wait(lambda: page.all("#person-id") and page.text("#person-id") == "bob", what="Bob by anon-bob")
    page.wait_for("#person-events .timeline-event")
    with api(dashboard_system) as client:
        assert person_shown(page) == client.get("/api/v1/persons/anon-bob").json()
    assert "anon-bob" in page.text("#person-found-by")
    page.css("#person-search").send_keys("anon-b", Keys.ENTER)  # a distinct id's start finds him too
    page.wait(lambda: [a.text for a in page.all(".person-link")] == ["bob"], what="Bob by his id")

    go(page, dashboard_system, "/persons?q=nobody-")
    page.wait(lambda: "No person has" in page.text(".person-results .state.empty"), what="the empty state")
    no_failures(page, "persons")

    go(page, dashboard_system, "/persons?person=nobody-at-all")
    page.wait(
        lambda: "no person has the distinct id" in page.text("#person .state.error").lower(), what="404"
    )
    assert page.css("#person .state.error button").text == "Try again"
    refused = page.failures()  # the person and their events, both 404, and nothing else
    assert refused and all("404" in f.text for f in refused), refused


def test_every_page_at_desktop_and_phone_width(
    page: Browser, dashboard_system: ServiceProcess, persons: dict[str, int]
) -> None:
    with api(dashboard_system) as client:
        board = client.get("/api/v1/dashboards").json()["dashboards"][0]["id"]
    pages = [
        ("/", "overview", ".card .spark canvas"),
        ("/funnel?step=signup&step=view_item&step=purchase&breakdown=plan", "funnel", "table.funnel-table"),
        ("/retention", "retention", "table.heatmap"),
        ("/live", "live", "#live-status"),
        ("/insights", "insights", "table.insights-table"),
        ("/dashboards", "dashboards", "table.dashboards-table"),
        (f"/dashboards/{board}", "dashboard", ".tile .funnel-bars"),
        ("/trends", "trends", "main .state"),
        ("/persons", "persons", "table.persons-table"),
        ("/persons?q=ada%40&person=ada", "person", "#person-events .timeline-event"),
    ]
    for path, name, ready in pages:
        shoot(page, dashboard_system, path, name, ready, live_events=6 if name in ("overview", "live") else 0)
    # Keyboard: from the top of the page, Tab reaches the skip link, the navigation and the range presets.
    go(page, dashboard_system, "/")
    page.wait_for(".card .value")
    reached = []
    for _ in range(14):
        ActionChains(page.driver).send_keys(Keys.TAB).perform()
        reached.append(page.run("return document.activeElement.textContent.trim()"))
    assert reached[0] == "Skip to content" and "Funnel" in reached and "30 days" in reached, reached
