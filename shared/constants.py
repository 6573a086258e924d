"""Names used across services: topics, tables, limits. One place, so producers and consumers agree."""

from __future__ import annotations

EVENTS_TABLE = "analytics_events"
SNAPSHOTS_TABLE = "metrics_snapshots"

# Topic names are derived from a prefix so tests (and tenants) can run side by side on one broker.
EVENTS_TOPIC_SUFFIX = "events"
DEAD_LETTER_TOPIC_SUFFIX = "events.dlq"
LIVE_TOPIC_SUFFIX = "live"


def events_topic(prefix: str) -> str:
    return f"{prefix}.{EVENTS_TOPIC_SUFFIX}"


def dead_letter_topic(prefix: str) -> str:
    return f"{prefix}.{DEAD_LETTER_TOPIC_SUFFIX}"


def live_topic(prefix: str) -> str:
    return f"{prefix}.{LIVE_TOPIC_SUFFIX}"


def loader_group(prefix: str) -> str:
    """Consumer group (faust app id) of the ClickHouse loader."""
    return f"{prefix}-stream"


MAX_EVENT_NAME_LENGTH = 200
MAX_PROPERTIES_BYTES = 32 * 1024
MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 1024 * 1024
# A message on the events topic larger than this is never loaded (it could not have passed ingest).
MAX_MESSAGE_BYTES = 64 * 1024
# An envelope of events on the events topic (shared/events.py), under Kafka's 1 MiB default message size.
MAX_ENVELOPE_BYTES = 512 * 1024

SEGMENT_MAX_EVENT_BYTES = 32 * 1024
SEGMENT_MAX_BATCH_BYTES = 500 * 1024
