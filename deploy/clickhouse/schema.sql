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
CREATE TABLE IF NOT EXISTS {database}.analytics_events
(
    event_id    UUID,
    event       LowCardinality(String),
    user_id     String,
    timestamp   DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    properties  String CODEC(ZSTD(1)),
    source      LowCardinality(String) DEFAULT 'api'
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (event, user_id, event_id);

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
