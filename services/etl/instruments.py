"""The ETL's metrics (shared/metrics.py): each run's duration and outcome, and per daily metric the
rows written, the time its query took and the time of its last stored run."""

from __future__ import annotations

from shared.metrics import counter, gauge, histogram

RUN_SECONDS = histogram(
    "etl_run_seconds",
    "One ETL run over a range of days, every metric computed and stored",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
RUNS = counter("etl_runs_total", "ETL runs by outcome (ok, failed)", ["outcome"])
METRIC_SECONDS = histogram(
    "etl_metric_seconds",
    "The query computing one daily metric for a run's days",
    ["metric"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ROWS = counter("etl_rows_total", "Snapshot rows (one per day) stored, per daily metric", ["metric"])
LAST_SUCCESS = gauge(
    "etl_last_success_timestamp_seconds",
    "Unix time at which a run that stored the metric finished",
    ["metric"],
)
