-- ClickHouse schema, applied at start-up by every service that touches ClickHouse (idempotent).
-- `{database}` is replaced by the configured database name (a validated identifier).

-- Raw events. One row per event_id after deduplication:
--   * ReplacingMergeTree keyed by (event, user_id, event_id) collapses copies of an event_id that a
--     retried POST or a replay after a crash inserted twice; the latest received_at wins.
--   * Readers use FINAL, so a count is right before the background merge has happened;
--     do_not_merge_across_partitions_select_final lets each month be deduplicated on its own.
--     `make bench` measures the funnel with and without FINAL on the same data.
--   * Insert deduplication tokens were rejected: they only catch a byte-identical block, and a replay
--     after a crash forms different batches.
--   * The timestamp is not in the key: a retry without an explicit timestamp gets a new one, and
--     must still collapse. Partitions are months of `timestamp`, so a retry that crosses a month
--     boundary would not collapse (documented in docs/reliability.md).
-- The key starts with `event` so a funnel reads only the granules of its steps, then `user_id` so
-- per-user aggregation (windowFunnel, retention) reads rows in user order.
-- `inserted_at` (MATERIALIZED: stamped by ClickHouse, left out of SELECT * and of inserts) tells which
-- users changed since the user_active_days summary below was built; its minmax index skips old parts.
-- `did` is the number of the event's distinct id (distinct_ids below) and `linked_ids` the ids the event
-- links to its own (persons: shared/contracts/persons.py). Neither is in the key: a retry collapses
-- with its first copy whatever links changed in between, because the distinct id (so its number)
-- never changes. Readers count people by the person of `did` (storage.PERSON), an integer, which
-- groups faster than the String user_id.
CREATE TABLE IF NOT EXISTS {database}.analytics_events
(
    event_id    UUID,
    event       LowCardinality(String),
    user_id     String,
    timestamp   DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    properties  String CODEC(ZSTD(1)),
    source      LowCardinality(String) DEFAULT 'api',
    linked_ids  Array(String) DEFAULT [],
    did         UInt64 DEFAULT 0,
    inserted_at DateTime MATERIALIZED now(),
    INDEX inserted_at_minmax inserted_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (event, user_id, event_id);

-- Tables created before `inserted_at` existed get it here. Their old rows read it as now() until
-- `ALTER TABLE analytics_events MATERIALIZE COLUMN inserted_at` has run, so every user counts as changed
-- and cohorts take the exact scan path: slower, never wrong.
ALTER TABLE {database}.analytics_events ADD COLUMN IF NOT EXISTS inserted_at DateTime MATERIALIZED now();
ALTER TABLE {database}.analytics_events
    ADD INDEX IF NOT EXISTS inserted_at_minmax inserted_at TYPE minmax GRANULARITY 1;
ALTER TABLE {database}.analytics_events ADD COLUMN IF NOT EXISTS linked_ids Array(String) DEFAULT [];
ALTER TABLE {database}.analytics_events ADD COLUMN IF NOT EXISTS did UInt64 DEFAULT 0;

-- Persons (shared/contracts/persons.py has the rules; services/stream/persons.py writes these tables).
-- Every distinct id with an event of its own, and its number: assigned by the stream processor owning
-- the id's partition from the position of the message that first brought it, so a replay writes the
-- same row again (and ReplacingMergeTree keeps one). Ordered by the id: the processor looks ids up by it.
CREATE TABLE IF NOT EXISTS {database}.distinct_ids
(
    distinct_id String,
    did         UInt64,
    inserted_at DateTime64(6, 'UTC') MATERIALIZED now64(6),
    INDEX inserted_at_minmax inserted_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
ORDER BY distinct_id;

-- Every link `from_id -> to_id`, one row per event that made it. Copies of an event collapse as they do
-- in analytics_events (same key parts, the latest received_at wins), so a link's time is its event's.
-- Not partitioned: links are few (at most one per identify), and resolution reads them all.
CREATE TABLE IF NOT EXISTS {database}.person_links
(
    from_id     String,
    to_id       String,
    event       LowCardinality(String),
    event_id    UUID,
    timestamp   DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    inserted_at DateTime64(6, 'UTC') MATERIALIZED now64(6),
    INDEX inserted_at_minmax inserted_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (from_id, to_id, event, event_id);

-- The resolution's answer for every distinct id that is not its own person: its person's key and
-- number (`person` 0 while the key has no number yet; `did` 0 while the id has none). Written by every
-- stream replica's resolver from the links it has read; `version` is the newest link or number the
-- writer had seen, so the fresher view wins whatever order writes land in. An id that becomes its own
-- person again gets a row with person_key = distinct_id.
CREATE TABLE IF NOT EXISTS {database}.person_overrides
(
    distinct_id String,
    did         UInt64,
    person_key  String,
    person      UInt64,
    version     DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY distinct_id;

-- did -> person number, for every id in a merged person (the key itself included, mapping to itself, so
-- dictHas tells a merged person's row from a singleton's). Read by storage.PERSON on every event row:
-- a hashed dictionary answers it from memory; a JOIN would build the same hash table in every query.
-- The resolver reloads it after each write; the lifetime (checked against the table's newest version)
-- is the fallback for writes of other replicas.
CREATE DICTIONARY IF NOT EXISTS {database}.person_numbers
(
    did    UInt64,
    person UInt64
)
PRIMARY KEY did
SOURCE(CLICKHOUSE(QUERY '
    SELECT did, person FROM {database}.person_overrides FINAL WHERE did != 0 AND person != 0 AND person != did
    UNION ALL
    SELECT DISTINCT person, person FROM {database}.person_overrides FINAL
    WHERE person != 0 AND person != did'
    INVALIDATE_QUERY 'SELECT max(version), count() FROM {database}.person_overrides'))
LAYOUT(HASHED())
LIFETIME(MIN 1 MAX 5);

-- What events said about their person's properties, one row per (event, property): `$set` (once = 0)
-- and `$set_once` (once = 1). Copies of an event collapse as in analytics_events.
CREATE TABLE IF NOT EXISTS {database}.person_property_updates
(
    distinct_id String,
    did         UInt64,
    key         String,
    value       String,
    once        UInt8,
    timestamp   DateTime64(3, 'UTC'),
    event_id    UUID,
    received_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (distinct_id, key, once, event_id);

-- Every person's properties (the updates above, merged over the person's ids by the rules of
-- shared/contracts/persons.py), written by the stream processors whenever an update or a merge changes
-- a person; the durable copy of the index below, from which it is rebuilt.
CREATE TABLE IF NOT EXISTS {database}.person_properties
(
    person      UInt64,
    person_key  String,
    properties  String,
    version     DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY person;

-- The same, in memory, for storage.PERSON_PROPERTIES (joinGet by person number, per event row when a
-- filter or breakdown names a person property). A Join table takes each write as it comes (the newest
-- row of a person replaces the older), where a dictionary would reload every person at each change.
CREATE TABLE IF NOT EXISTS {database}.person_properties_index
(
    person     UInt64,
    properties String
)
ENGINE = Join(ANY, LEFT, person)
SETTINGS join_any_take_last_row = 1;

-- Person deletions (DELETE /api/v1/persons/{id}) and their progress: `pending` (asked), `events_deleted`
-- (the stream processor deleted every row of the ids; `days` are the days those events were on), `done`
-- (the ETL recomputed those days' snapshots). The latest row of a deletion is its state.
CREATE TABLE IF NOT EXISTS {database}.person_deletions
(
    deletion_id  UUID,
    person_key   String,
    distinct_ids Array(String),
    requested_at DateTime64(3, 'UTC'),
    status       LowCardinality(String),
    days         Array(Date),
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY deletion_id;

-- Tombstones: events of these ids received before `deleted_at` are never loaded again (a replay, or an
-- event still in Kafka); later ones are a new person.
CREATE TABLE IF NOT EXISTS {database}.deleted_distinct_ids
(
    distinct_id String,
    deleted_at  DateTime64(3, 'UTC'),
    deletion_id UUID
)
ENGINE = ReplacingMergeTree(deleted_at)
ORDER BY distinct_id;

-- Every user's UTC days with at least one event (day numbers since 1970-01-01, sorted), rebuilt from
-- `analytics_events FINAL` by the refreshable view below; each rebuild replaces the table atomically.
-- Cohorts over any event read it (services/query/cohort_sql.py) instead of grouping every event by user:
--   * exact under duplicates: the rebuild reads FINAL, and users with rows inserted since `built_at`
--     (a retry or replay that moved an event to another day, a new event) are recomputed from
--     `analytics_events FINAL` at query time; a summary older than every stored row (the table was
--     truncated) is ignored. A person deletion deletes the person's rows here too.
--   * one row per distinct id, with its number (`did`), not per person: a merge of two ids changes no
--     row here (cohorts group the rows of a merged person at query time), so the summary stays exact
--     whatever links arrive, and no merge has anything to invalidate.
--   * a rebuild reads all events. Between rebuilds the users active in the last 10 minutes are
--     recomputed, and finding their events reads every user_id (more while fresh parts are unmerged):
--     the summary pays off fully right after a rebuild (costs measured: docs/performance.md).
CREATE TABLE IF NOT EXISTS {database}.user_active_days
(
    user_id  String,
    did      UInt64 DEFAULT 0,
    days     Array(Int32),
    built_at DateTime
)
ENGINE = MergeTree
ORDER BY user_id;
ALTER TABLE {database}.user_active_days ADD COLUMN IF NOT EXISTS did UInt64 DEFAULT 0 AFTER user_id;

-- The view that rebuilt the summary before it carried `did` is replaced by this one.
DROP VIEW IF EXISTS {database}.user_active_days_refresh;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.user_active_days_rebuild
REFRESH EVERY 10 MINUTE TO {database}.user_active_days AS
SELECT user_id,
       any(did) AS did,
       arraySort(groupUniqArray(toInt32(intDiv(toUnixTimestamp64Milli(timestamp), 86400000)))) AS days,
       now() AS built_at
FROM {database}.analytics_events FINAL
GROUP BY user_id
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- Daily metric snapshots, written and read only by the ETL service (services/etl/snapshots.py).
--   * A run writes all its (date, metric) rows in ONE insert block with ONE computed_at (the moment it
--     began reading events). The table has no partitions, so that block becomes one part: a reader sees
--     the whole run or none of it, never a half-written day.
--   * ReplacingMergeTree(computed_at), read with FINAL, keeps per (metric, date) the row of the run that
--     read the events last, whatever order runs finish in: running a day again replaces it, and ETL
--     replicas running the same day at once only write the same values twice (idempotent).
--   * A few thousand rows a year: partitioning would buy nothing and would split a run across parts.
CREATE TABLE IF NOT EXISTS {database}.metrics_snapshots
(
    date        Date,
    metric      LowCardinality(String),
    value       Float64,
    computed_at DateTime64(6, 'UTC'),
    run_id      UUID
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (metric, date);

-- Saved insights and dashboards (services/query/saved_store.py): a few thousand rows at most, each
-- written when someone saves, renames, arranges or deletes one, and read whole.
--   * Every change inserts the item's complete new row; ReplacingMergeTree(updated_at, deleted) read
--     with FINAL keeps the latest row of each (kind, id) and hides an id whose latest row is a
--     tombstone (deleted = 1). An edit is one small insert, visible to the next read at once.
--   * ALTER TABLE ... UPDATE / DELETE mutations lost: they rewrite whole parts asynchronously and are
--     meant for rare bulk corrections, not for a click; lightweight DELETE is a mutation too. A plain
--     MergeTree with argMax() on read would be the same idea with the rule repeated in every reader.
--   * One table for both kinds (`kind` leads the key): they share a life cycle and an access rule,
--     and a dashboard is read together with the insights its tiles name.
--   * owner_key_hash is the SHA-256 of the key that created the item, never the key itself: enough to
--     recognise the creator (who, like an admin key, may change or delete it), useless to a reader.
--   * No partitions: the table stays tiny, and one part per insert is merged away in the background.
CREATE TABLE IF NOT EXISTS {database}.saved_items
(
    kind           LowCardinality(String),
    id             UUID,
    name           String,
    body           String,
    owner_key_hash String,
    created_at     DateTime64(6, 'UTC'),
    updated_at     DateTime64(6, 'UTC'),
    deleted        UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, deleted)
ORDER BY (kind, id);
