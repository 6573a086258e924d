"""The benchmarks' query data, generated inside embedded ClickHouse, with persons; and loading it as the
stream loader would (blocks of STREAM_BATCH_SIZE rows in arrival order).

Users u = 0..users-1 have the distinct id `user-u`. Every user signs up once at a random moment of a
60-day span, 55% complete onboarding within 3 days, 40% of those subscribe within 20 days (so some fall
outside the 14-day window); the rest is activity (page views, clicks, searches, feature uses) from a
skewed population (user k gets a share ~ 1/sqrt(k)), denser soon after signup. Properties are ~300
bytes of JSON; 0.5% of events arrive twice (same event_id), as retries would.

Persons (issue 13): 20% of the users start anonymous. Their anonymous id `anon-u` has 1-5 page views,
clicks or searches in the 3 days before signup, and the signup event carries both ids (user id `user-u`,
`linked_ids = ['anon-u']`: the link anon-u -> user-u). For half of them the onboarding event is sent
with the anonymous id only (a client that had not learnt the user id yet), so the person funnel
differs from the funnel over distinct ids, and a baseline that did not resolve persons would disagree.

Every row carries its distinct id's number (`did`), computed in SQL as a bulk load's numbers are
(services/stream/persons.py: BULK_NUMBERS, the top bit set): `user-u` is BULK + 2u + 1, `anon-u`
BULK + 2u + 2. `distinct_ids` and `person_links` are filled from the rows by INSERT ... SELECT (the rows
load_in_bulk would write), then a resolver round (Resolver.rebuild) writes person_overrides and reloads
the dictionary, as after any bulk load.
"""

from __future__ import annotations

import time
from typing import Any

from services.stream.persons import BULK_NUMBERS
from services.stream.resolver import Resolver
from shared.clickhouse import ClickHouse
from shared.contracts.storage import DISTINCT_IDS_TABLE, EVENTS_TABLE, LINKS_TABLE

SPAN_MS = 60 * 86_400_000
EVENTS_PER_USER = 25
ANONYMOUS_PERCENT = 20
ARRIVALS_TABLE = "bench_arrivals"  # every row to load, in arrival order (received_at, event_id)
COLUMNS = "event_id, event, user_id, timestamp, received_at, properties, source, linked_ids, did"

PROPERTIES = """concat(
    '{"plan":"', ['free', 'starter', 'pro', 'business', 'enterprise'][h % 5 + 1],
    '","path":"/app/', ['dashboard', 'settings', 'reports', 'billing', 'projects'][intDiv(h, 7) % 5 + 1],
    '/', toString(intDiv(h, 41) % 10000),
    '","referrer":"https://www.example.com/search?q=', hex(cityHash64(h)),
    '","browser":"', ['Chrome', 'Firefox', 'Safari', 'Edge'][intDiv(h, 13) % 4 + 1],
    '","os":"', ['Windows', 'macOS', 'Linux', 'iOS', 'Android'][intDiv(h, 17) % 5 + 1],
    '","screen":"1920x1080","locale":"en-US","session_id":"', toString(generateUUIDv4(2)),
    '","utm_source":"newsletter","utm_campaign":"spring_sale_2023","amount":',
    toString(intDiv(h, 3) % 100000 / 100), '}')"""
SIGNUP_AT = "toDateTime64('2023-01-01', 3, 'UTC') + toIntervalMillisecond(cityHash64({u}, 'signup') % {span})"
ANONYMOUS = f"(cityHash64({{u}}, 'anon') % 100 < {ANONYMOUS_PERCENT})"
USER_ID = "concat('user-', toString({u}))"
ANON_ID = "concat('anon-', toString({u}))"
USER_DID = f"toUInt64({BULK_NUMBERS}) + 2 * {{u}} + 1"
ANON_DID = f"toUInt64({BULK_NUMBERS}) + 2 * {{u}} + 2"

FUNNEL_ROWS = f"""
INSERT INTO $table ({COLUMNS})
SELECT generateUUIDv4(1), step.1, if(step.3, {ANON_ID.format(u="u")}, {USER_ID.format(u="u")}),
       signed_up + toIntervalMillisecond(step.2), signed_up + toIntervalMillisecond(step.2 + 150),
       {PROPERTIES}, 'api', if(step.1 = 'signup' AND anonymous, [{ANON_ID.format(u="u")}], []),
       if(step.3, {ANON_DID.format(u="u")}, {USER_DID.format(u="u")})
FROM (
    SELECT number AS u, cityHash64(number, 'props') AS h,
           {SIGNUP_AT.format(u="number", span=SPAN_MS)} AS signed_up,
           {ANONYMOUS.format(u="number")} AS anonymous,
           anonymous AND cityHash64(number, 'device') % 2 = 0 AS onboards_anonymously,
           cityHash64(number, 'onboard') % 100 < 55 AS onboarded,
           cityHash64(number, 'subscribe') % 100 < 40 AS subscribed,
           cityHash64(number, 'd1') % (3 * 86400000) AS d1,
           d1 + cityHash64(number, 'd2') % (20 * 86400000) AS d2
    FROM numbers({{users:UInt64}}))
ARRAY JOIN arrayConcat([('signup', toUInt64(0), false)],
                       if(onboarded, [('onboarding_completed', d1, onboards_anonymously)], []),
                       if(onboarded AND subscribed, [('subscription_created', d2, false)], [])) AS step
"""
# The anonymous ids' browsing before signup: 1-5 events in the 3 days before it.
ANONYMOUS_ROWS = f"""
INSERT INTO $table ({COLUMNS})
SELECT generateUUIDv4(3), ['page_view', 'page_view', 'button_click', 'search'][h % 4 + 1],
       {ANON_ID.format(u="u")}, at, at + toIntervalMillisecond(h % 2000), {PROPERTIES}, 'api', [],
       {ANON_DID.format(u="u")}
FROM (
    SELECT u, cityHash64(u, 'before', k) AS h,
           {SIGNUP_AT.format(u="u", span=SPAN_MS)} - toIntervalMillisecond(1 + h % (3 * 86400000)) AS at
    FROM (SELECT number AS u FROM numbers({{users:UInt64}}) WHERE {ANONYMOUS.format(u="number")})
    ARRAY JOIN range(1 + cityHash64(u, 'visits') % 5) AS k)
"""
ACTIVITY_ROWS = f"""
INSERT INTO $table ({COLUMNS})
SELECT generateUUIDv4(1), ['page_view', 'page_view', 'page_view', 'button_click', 'search',
       'feature_used'][h % 6 + 1], {USER_ID.format(u="u")}, at, at + toIntervalMillisecond(h % 2000),
       {PROPERTIES}, 'api', [], {USER_DID.format(u="u")}
FROM (
    SELECT number, cityHash64(number) AS h,
           toUInt64({{users:UInt64}} * pow((cityHash64(number, 'user') % 1000003) / 1000003, 2)) AS u,
           {SIGNUP_AT.format(u="u", span=SPAN_MS)}
               + toIntervalMillisecond(toUInt64({SPAN_MS} * pow((h % 1000003) / 1000003, 2))) AS at
    FROM numbers({{count:UInt64}}))
"""
RETRIES = f"""
INSERT INTO $table ({COLUMNS})
SELECT event_id, event, user_id, timestamp, received_at + toIntervalSecond(1), properties, source,
       linked_ids, did
FROM $table WHERE cityHash64(event_id) % 200 = 0
"""
# 0.1% stored again with a later timestamp, as a client retry without a timestamp would be (the latest
# copy wins).
MOVED_COPIES = f"""
INSERT INTO $table ({COLUMNS})
SELECT event_id, event, user_id, timestamp + toIntervalMillisecond(1000 + cityHash64(event_id) % 600000),
       received_at + toIntervalSecond(30), properties, source, linked_ids, did
FROM $table WHERE cityHash64(event_id, 'moved') % 1000 = 0"""
DISTINCT_IDS = f"""
INSERT INTO {DISTINCT_IDS_TABLE} (distinct_id, did)
SELECT user_id, any(did) FROM $table GROUP BY user_id"""
LINKS = f"""
INSERT INTO {LINKS_TABLE} (from_id, to_id, event, event_id, timestamp, received_at)
SELECT arrayJoin(linked_ids), user_id, event, event_id, timestamp, received_at
FROM $table WHERE notEmpty(linked_ids)"""
ARRIVALS_SCHEMA = f"""
CREATE TABLE {ARRIVALS_TABLE} AS {EVENTS_TABLE}
ENGINE = MergeTree ORDER BY (received_at, event_id)"""
# The first (received_at, event_id) of every block of `size` rows in arrival order.
BLOCK_STARTS = f"""
SELECT received_at, event_id FROM (
    SELECT received_at, event_id, row_number() OVER (ORDER BY received_at, event_id) - 1 AS n
    FROM {ARRIVALS_TABLE})
WHERE n % {{size:UInt64}} = 0 ORDER BY received_at, event_id"""
LO, HI = "{lo_at:DateTime64(3, 'UTC')}", "{hi_at:DateTime64(3, 'UTC')}"
BLOCK = f"""
INSERT INTO {EVENTS_TABLE} ({COLUMNS})
SELECT {COLUMNS} FROM {ARRIVALS_TABLE}
WHERE received_at >= {LO} AND (received_at, event_id) >= ({LO}, {{lo_id:UUID}})
  AND ({{last:UInt8}} OR received_at <= {HI})
  AND ({{last:UInt8}} OR (received_at, event_id) < ({HI}, {{hi_id:UUID}}))"""
ACTIVE_PARTS = f"""
SELECT partition, count() FROM system.parts
WHERE database = {{db:String}} AND table = '{EVENTS_TABLE}' AND active
GROUP BY partition ORDER BY partition"""


def into(template: str, table: str) -> str:
    """A statement of this module for `table` (the properties' JSON braces rule out str.format)."""
    return template.replace("$table", table)


async def generate(
    clickhouse: ClickHouse, events: int, users: int | None = None, table: str = EVENTS_TABLE
) -> dict[str, Any]:
    """Fill `table` (empty, with the events table's columns) with about `events` synthetic events of
    `users` users (default one per EVENTS_PER_USER events), the retried and moved copies included;
    returns what was made."""
    started = time.perf_counter()
    users = users or max(100, events // EVENTS_PER_USER)
    await clickhouse.command(into(FUNNEL_ROWS, table), {"users": users})
    await clickhouse.command(into(ANONYMOUS_ROWS, table), {"users": users})
    (made,) = (await clickhouse.query(f"SELECT count() FROM {table}"))[0]
    activity = {"users": users, "count": max(0, events - made)}
    await clickhouse.command(into(ACTIVITY_ROWS, table), activity)
    await clickhouse.command(into(RETRIES, table))
    await clickhouse.command(into(MOVED_COPIES, table))
    rows, size, avg_properties, ids = (
        await clickhouse.query(
            f"SELECT count(), sum(length(properties)), avg(length(properties)), uniqExact(user_id) "
            f"FROM {table}"
        )
    )[0]
    return {
        "rows": rows,
        "users": users,
        "distinct_ids": ids,
        "properties_bytes_avg": round(avg_properties),
        "raw_properties_mb": round(size / 1e6),
        "seconds": round(time.perf_counter() - started, 1),
    }


async def record_persons(clickhouse: ClickHouse, table: str = EVENTS_TABLE) -> dict[str, float]:
    """distinct_ids and person_links from the rows of `table` (what the loader stores with each batch),
    then a resolver round over every link; the seconds each took, and how many overrides it wrote."""
    started = time.perf_counter()
    await clickhouse.command(into(DISTINCT_IDS, table))
    await clickhouse.command(into(LINKS, table))
    stored = time.perf_counter()
    written = await Resolver(clickhouse).rebuild()
    return {"store_s": stored - started, "resolve_s": time.perf_counter() - stored, "overrides": written}


async def generate_arrivals(clickhouse: ClickHouse, events: int, users: int) -> dict[str, Any]:
    """The rows to load, in ARRIVALS_TABLE (sorted by arrival), and their persons' tables."""
    await clickhouse.command(f"DROP TABLE IF EXISTS {ARRIVALS_TABLE}")
    await clickhouse.command(ARRIVALS_SCHEMA)
    made = await generate(clickhouse, events, users, ARRIVALS_TABLE)
    made.update(await record_persons(clickhouse, ARRIVALS_TABLE))
    return made


async def load_as_streamed(clickhouse: ClickHouse, block_rows: int) -> dict[str, Any]:
    """Insert ARRIVALS_TABLE's rows into the events table as the stream loader does: blocks of
    `block_rows` rows in arrival order, one after another, background merges running."""
    starts = await clickhouse.query(BLOCK_STARTS, {"size": block_rows})
    started = time.perf_counter()
    for k, (lo_at, lo_id) in enumerate(starts):
        last = k == len(starts) - 1
        hi_at, hi_id = starts[k] if last else starts[k + 1]
        params = {"lo_at": lo_at, "lo_id": lo_id, "hi_at": hi_at, "hi_id": hi_id, "last": int(last)}
        await clickhouse.command(BLOCK, params)
    seconds = time.perf_counter() - started
    await clickhouse.command(f"DROP TABLE {ARRIVALS_TABLE}")
    return {"blocks": len(starts), "seconds": seconds}


async def active_parts(clickhouse: ClickHouse) -> dict[str, int]:
    """Active parts of the events table per partition (month)."""
    rows = await clickhouse.query(ACTIVE_PARTS, {"db": clickhouse.database})
    return {str(partition): int(parts) for partition, parts in rows}
