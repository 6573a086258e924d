"""Sizes and bounds that more than one service checks, so producers and consumers agree."""

from __future__ import annotations

from datetime import UTC, datetime

MAX_EVENT_NAME_LENGTH = 200
MAX_ID_LENGTH = 200
# Distinct ids one event may link to its own (an anonymous id, an alias's previous id, ...).
MAX_LINKED_IDS = 8
MAX_PROPERTIES_BYTES = 32 * 1024
MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 1024 * 1024
# A message on the events topic larger than this is never loaded (it could not have passed ingest).
MAX_MESSAGE_BYTES = 64 * 1024
# An envelope of events on the events topic (envelope.py), under Kafka's 1 MiB default message size.
MAX_ENVELOPE_BYTES = 512 * 1024

SEGMENT_MAX_EVENT_BYTES = 32 * 1024
SEGMENT_MAX_BATCH_BYTES = 500 * 1024

# Events exist only in [MIN_TIMESTAMP, MAX_TIMESTAMP): ingest refuses others, the stream refuses them too.
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)
