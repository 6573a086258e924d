"""The trackers people already ship, unchanged, against the real system: posthog-python (PyPI),
posthog-node (npm), and posthog-js and Segment's analytics.js (analytics-next) in headless Chromium on
a page served from another origin. Each event arrives once with the right ids and properties (read
from the events topic, which is the ClickHouse row, and counted through /stats, each event_id once),
the browser shows no console error or failed request, and the ids merge into one person:
- posthog-python / posthog-node: the anonymous id and the user id are one person (the key: the user
  id) whose properties are the $set and $set_once values; the alias (`<user>-crm`) resolves to it;
- posthog-js: the anonymous distinct_id before identify() is the identified user's person, with the
  email of identify()'s $set, and the page view and clicks before identify() are that person's events;
- analytics.js: the anonymousId's page view and the userId's events are one person with identify()'s
  traits, and /stats' unique_users counts that visitor once.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from posthog import Posthog

from deploy.processes import ServiceProcess
from tests import browser as chromium
from tests.browser import Browser
from tests.pipeline import stats
from tests.support import INGEST_KEY, REPO, module_all_in_one, unique_name
from tests.system import pages
from tests.system.pages import PageServer, require_trackers
from tests.trackers import counts_by_event, days_around_now, person_events, person_of, stored

tracker_system = module_all_in_one("trackers", {"ETL_SCHEDULE_ENABLED": "false"})
browser = chromium.browser
page_server = pages.page_server
NODE_SCRIPT = REPO / "tests" / "js" / "posthog_node.mjs"


def by_event(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rows by event name, after checking that no event (event_id) arrived twice."""
    ids = [row["event_id"] for row in rows]
    assert len(ids) == len(set(ids)), f"an event arrived twice: {sorted(ids)}"
    names = [row["event"] for row in rows]
    assert len(names) == len(set(names)), f"unexpected repeats: {sorted(names)}"
    return {row["event"]: row for row in rows}


def test_posthog_python(tracker_system: ServiceProcess) -> None:
    errors: list[Exception] = []
    client = Posthog(
        INGEST_KEY,
        host=tracker_system.url,
        sync_mode=True,
        gzip=True,
        on_error=lambda error, _: errors.append(error),
    )
    anon, user, purchase = unique_name("py-anon-"), unique_name("py-user-"), str(uuid.uuid4())
    moment = datetime(2023, 6, 1, 12, tzinfo=UTC)
    client.capture("py_viewed_pricing", distinct_id=anon, properties={"page": "/pricing"}, timestamp=moment)
    client.capture(
        "$identify",
        distinct_id=user,
        properties={"$anon_distinct_id": anon, "$set": {"email": "py@example.com"}},
        timestamp=moment,
    )
    client.alias(previous_id=user, distinct_id=f"{user}-crm", timestamp=moment)
    client.set(distinct_id=user, properties={"plan": "pro"}, timestamp=moment)
    client.set_once(distinct_id=user, properties={"first_plan": "free"}, timestamp=moment)
    client.capture(
        "py_purchased", distinct_id=user, properties={"amount": 9.5}, uuid=purchase, timestamp=moment
    )
    client.shutdown()
    assert errors == []

    rows = by_event(stored(tracker_system, {anon, user}, 6))
    assert set(rows) == {
        "py_viewed_pricing",
        "$identify",
        "$create_alias",
        "$set",
        "$set_once",
        "py_purchased",
    }
    assert rows["py_viewed_pricing"]["user_id"] == anon
    assert all(rows[name]["user_id"] == user for name in set(rows) - {"py_viewed_pricing"})
    assert rows["$identify"]["properties"]["$anon_distinct_id"] == anon
    assert rows["$identify"]["properties"]["$set"] == {"email": "py@example.com"}
    assert rows["$create_alias"]["properties"]["alias"] == f"{user}-crm"
    assert rows["$set"]["properties"]["$set"]["plan"] == "pro"
    assert rows["$set_once"]["properties"]["$set_once"]["first_plan"] == "free"
    assert rows["py_purchased"]["event_id"] == purchase
    assert rows["py_purchased"]["properties"]["$lib"] == "posthog-python"
    # sent_at corrects the clock: the stored time is the given one plus the request's transit time.
    stored_at = datetime.fromisoformat(rows["py_purchased"]["timestamp"])
    assert moment <= stored_at < moment + timedelta(seconds=5)
    names = {"py_viewed_pricing", "py_purchased"}
    assert counts_by_event(tracker_system, names, 2, ("2023-06-01", "2023-06-01")) == dict.fromkeys(names, 1)

    # Anonymous, then identified: one person, the user's, with the $set and $set_once values.
    person = person_of(tracker_system, anon, user, events=6)
    assert sorted(person["distinct_ids"]) == sorted([user, anon, f"{user}-crm"])
    assert person["properties"] == {"email": "py@example.com", "plan": "pro", "first_plan": "free"}
    assert person_of(tracker_system, f"{user}-crm", user) == person  # the alias resolves to it


def test_posthog_node(tracker_system: ServiceProcess) -> None:
    require_trackers()
    anon, user, purchase = unique_name("node-anon-"), unique_name("node-user-"), str(uuid.uuid4())
    run = subprocess.run(
        ["node", str(NODE_SCRIPT), tracker_system.url, INGEST_KEY, anon, user, purchase],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    rows = by_event(stored(tracker_system, {anon, user}, 5))
    assert set(rows) == {"node_viewed_pricing", "$identify", "$create_alias", "$set", "node_purchased"}
    assert rows["node_viewed_pricing"]["user_id"] == anon
    assert rows["$identify"]["user_id"] == user
    assert rows["$identify"]["properties"]["$anon_distinct_id"] == anon
    assert rows["$identify"]["properties"]["$set"] == {"email": "node@example.com"}
    assert rows["$create_alias"]["properties"]["alias"] == f"{user}-crm"
    assert rows["$set"]["properties"]["$set"] == {"plan": "team"}
    assert rows["node_purchased"]["event_id"] == purchase
    assert rows["node_purchased"]["properties"]["$lib"] == "posthog-node"
    names = {"node_viewed_pricing", "node_purchased"}
    assert counts_by_event(tracker_system, names, 2, days_around_now()) == dict.fromkeys(names, 1)

    person = person_of(tracker_system, anon, user, events=5)
    assert sorted(person["distinct_ids"]) == sorted([user, anon, f"{user}-crm"])
    assert person["properties"] == {"email": "node@example.com", "plan": "team"}
    assert person_of(tracker_system, f"{user}-crm", user) == person


POSTHOG_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>posthog-js</title><link rel="icon" href="data:,">
<script src="/lib/posthog-js/dist/array.js"></script></head>
<body><button id="buy">Buy</button>
<script>
  // posthog-js drops events of browsers that look automated (navigator.webdriver, as here);
  // PostHog's documented switch for end-to-end tests turns that client-side filter off.
  posthog.init(KEY, {api_host: SYSTEM, opt_out_useragent_filter: true,
                     loaded: function () { window.trackerLoaded = true; }});
</script></body></html>
"""

SEGMENT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>analytics.js</title><link rel="icon" href="data:,">
<script src="/lib/@segment/analytics-next/dist/umd/index.js"></script></head>
<body>
<script>
  window.analytics = AnalyticsNext.AnalyticsBrowser.load({writeKey: KEY, cdnURL: SYSTEM});
  analytics.ready(function () { window.trackerLoaded = true; });
</script></body></html>
"""


def page(template: str, system: ServiceProcess) -> str:
    return template.replace("KEY", orjson.dumps(INGEST_KEY).decode()).replace(
        "SYSTEM", orjson.dumps(system.url).decode()
    )


def open_page(browser: Browser, server: PageServer, path: str, html: str) -> None:
    """Load `html` from the page server and wait for its tracker; what came before is not this test's."""
    browser.failures()
    server.pages[path] = html
    browser.driver.set_script_timeout(60)
    browser.get(server.url + path)
    browser.wait(lambda: browser.run("return window.trackerLoaded === true"), 30, "the tracker to load")


SEGMENT_DAY = "2023-06-02"


@pytest.fixture
def run_id() -> Iterator[str]:
    yield uuid.uuid4().hex[:8]


def test_posthog_js_in_chromium(
    tracker_system: ServiceProcess, page_server: PageServer, browser: Browser, run_id: str
) -> None:
    open_page(browser, page_server, f"/posthog-{run_id}.html", page(POSTHOG_PAGE, tracker_system))
    anon = browser.run("return posthog.get_distinct_id()")
    user = f"js-user-{run_id}"
    browser.css("#buy").click()
    custom, after, beacon = f"js_custom_{run_id}", f"js_after_identify_{run_id}", f"js_beacon_{run_id}"
    browser.run(
        "posthog.capture(arguments[0], {plan: 'pro'});"
        "posthog.identify(arguments[1], {email: 'js@example.com'});"
        "posthog.capture(arguments[2]);"
        "posthog.capture(arguments[3], {}, {transport: 'sendBeacon'});",
        custom,
        user,
        after,
        beacon,
    )
    rows = by_event(stored(tracker_system, {anon, user}, 6))
    assert set(rows) == {"$pageview", "$autocapture", custom, "$identify", after, beacon}, sorted(rows)
    assert all(rows[name]["user_id"] == anon for name in ("$pageview", "$autocapture", custom))
    assert all(rows[name]["user_id"] == user for name in ("$identify", after, beacon))
    assert rows["$identify"]["properties"]["$anon_distinct_id"] == anon
    assert rows["$identify"]["properties"]["$set"]["email"] == "js@example.com"
    assert rows[custom]["properties"]["plan"] == "pro" and rows[custom]["properties"]["$lib"] == "web"
    assert rows["$pageview"]["properties"]["$current_url"].startswith(page_server.url)
    assert all("token" not in row["properties"] for row in rows.values())
    names = {custom, after, beacon}
    assert counts_by_event(tracker_system, names, 3, days_around_now()) == dict.fromkeys(names, 1)

    # The visitor before identify() is the identified user, with identify()'s email; their page view
    # and clicks before it are the person's events.
    person = person_of(tracker_system, anon, user, events=6)
    assert sorted(person["distinct_ids"]) == sorted([user, anon])
    assert person["properties"]["email"] == "js@example.com"
    history = {(e["event"], e["distinct_id"]) for e in person_events(tracker_system, user)}
    assert {("$pageview", anon), ("$autocapture", anon), (custom, anon), (after, user)} <= history
    assert browser.failures() == []
    assert any(path.startswith("/lib/posthog-js/") for path in page_server.requests)


def test_analytics_js_in_chromium(
    tracker_system: ServiceProcess, page_server: PageServer, browser: Browser, run_id: str
) -> None:
    open_page(browser, page_server, f"/segment-{run_id}.html", page(SEGMENT_PAGE, tracker_system))
    user = f"ajs-user-{run_id}"
    clicked, after = f"ajs_clicked_{run_id}", f"ajs_after_identify_{run_id}"
    # Every call dated on a day no other test of the module uses, so /stats of that day is this visitor's.
    anon = browser.driver.execute_async_script(
        "const [name, user, after, moment, done] = arguments;"
        "const at = {timestamp: new Date(moment)};"
        "(async () => {"
        "  await analytics.page('Home', {section: 'landing'}, at);"
        "  await analytics.track(name, {plan: 'pro'}, at);"
        "  await analytics.identify(user, {email: 'ajs@example.com'}, at);"
        "  await analytics.track(after, {}, at);"
        "  const [instance] = await analytics;"
        "  done(instance.user().anonymousId());"
        "})().catch((error) => done('error: ' + error));",
        clicked,
        user,
        after,
        f"{SEGMENT_DAY}T12:00:00Z",
    )
    assert not anon.startswith("error"), anon
    rows = by_event(stored(tracker_system, {anon, user}, 4))
    assert set(rows) == {"$page", clicked, "$identify", after}, sorted(rows)
    assert rows["$page"]["user_id"] == anon and rows[clicked]["user_id"] == anon
    assert rows["$page"]["properties"]["name"] == "Home"
    assert (
        rows["$identify"]["user_id"] == user and rows["$identify"]["properties"]["email"] == "ajs@example.com"
    )
    assert rows[after]["user_id"] == user
    assert rows[clicked]["properties"]["$context"]["library"]["name"] == "analytics.js"
    assert rows[after]["timestamp"].startswith(f"{SEGMENT_DAY}T12:00:00")
    names = {clicked, after}
    assert counts_by_event(tracker_system, names, 2, (SEGMENT_DAY, SEGMENT_DAY)) == dict.fromkeys(names, 1)

    # The anonymousId's page view and the userId's events: one person, counted once.
    person = person_of(tracker_system, anon, user, events=4)
    assert sorted(person["distinct_ids"]) == sorted([user, anon])
    assert person["properties"] == {"email": "ajs@example.com"}
    day = stats(tracker_system.url, SEGMENT_DAY, SEGMENT_DAY)
    assert (day["events"], day["unique_users"]) == (4, 1), day
    assert browser.failures() == []
