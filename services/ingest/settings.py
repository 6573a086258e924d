"""Ingest settings (prefix INGEST_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.limits import MAX_BATCH_EVENTS, MAX_BODY_BYTES


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    ack_timeout_seconds: float = Field(5.0, gt=0, le=60, description="Deadline for Kafka's acknowledgement")
    max_batch_events: int = Field(MAX_BATCH_EVENTS, ge=1, le=10_000)
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1024)
    # posthog-python sends batches of up to 5 MiB (its BATCH_SIZE_LIMIT); the event count limit still holds.
    posthog_max_body_bytes: int = Field(5 * MAX_BODY_BYTES, ge=1024, description="PostHog capture bodies")
