"""The stream processor's metrics (shared/metrics.py): batches, inserts, dead letters and the persons
figures, updated per batch (never per event); consumer lag and the resolver's graph, read when
scraped."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import faust
from prometheus_client.core import GaugeMetricFamily, Metric

from shared.metrics import counter, histogram

if TYPE_CHECKING:
    from services.stream.resolver import Resolver

BATCH_EVENTS = histogram(
    "stream_batch_events",
    "Events per batch stored in ClickHouse",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000),
)
INSERT_SECONDS = histogram("stream_insert_seconds", "One insert of a batch's events into analytics_events")
LOADED = counter("stream_events_loaded_total", "Events stored in ClickHouse (copies of a replay included)")
INSERT_FAILURES = counter(
    "stream_store_failures_total", "Failed attempts to store a batch or send its dead letters (retried)"
)
DEAD_LETTERS = counter(
    "stream_dead_letters_total",
    "Messages or events sent to the dead-letter topic by the processor, by reason: too_large (or "
    "empty), not_json, wrong_schema",
    ["reason"],
)
DELETED_SKIPPED = counter(
    "stream_deleted_events_skipped_total", "Events of deleted persons received before the deletion"
)
OVERRIDES_WRITTEN = counter(
    "persons_overrides_written_total", "person_overrides rows the resolver wrote (ids whose person changed)"
)
DELETIONS = counter("persons_deletions_total", "Person deletions carried out by this processor")


def dead_letter_reason(reason: str) -> str:
    """The fixed label of a dead letter's free-text reason (services/stream/loader.py, envelope.py)."""
    text = reason.split(": ", 1)[1] if reason.startswith("events[") else reason
    if text.startswith("undecodable"):
        return "not_json"
    if text.startswith("wrong schema"):
        return "wrong_schema"
    return "too_large"


def consumer_lag(app: faust.App, topic: str) -> Metric:
    """Per assigned partition of `topic`: the end offset as last fetched minus the committed offset,
    both as faust's monitor tracks them (what is in Kafka and not yet stored in ClickHouse)."""
    lag = GaugeMetricFamily(
        "analytics_stream_consumer_lag",
        "Messages of the events topic not yet stored and committed, per partition this processor owns",
        labels=["partition"],
    )
    monitor = app.monitor
    try:
        assigned = sorted(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - no consumer between a rebalance's stop and start: no samples
        assigned = []
    for tp in assigned:
        if tp.topic == topic:
            end = monitor.tp_end_offsets.get(tp)
            committed = monitor.tp_committed_offsets.get(tp)
            if end is not None:
                lag.add_metric([str(tp.partition)], max(0, end - (committed or 0)))
    return lag


def resolver_figures(resolver: Resolver) -> Iterable[Metric]:
    progress = resolver.progress()
    for name, key, text in (
        ("analytics_persons_links", "links", "Links in this processor's link graph"),
        ("analytics_persons_linked_ids", "linked_ids", "Distinct ids in this processor's link graph"),
        (
            "analytics_persons_unnumbered_ids",
            "unnumbered_ids",
            "Linked distinct ids with no number yet (no event of their own stored)",
        ),
    ):
        yield GaugeMetricFamily(name, text, value=progress[key])
