"""Stream-processor settings (prefix STREAM_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.limits import MAX_MESSAGE_BYTES


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAM_", extra="ignore")

    batch_size: int = Field(10_000, ge=1, le=200_000, description="Rows per ClickHouse insert at most")
    flush_seconds: float = Field(
        1.0, gt=0, le=60, description="Insert at least this often when events arrive"
    )
    take_seconds: float = Field(
        0.05, gt=0, le=5, description="Hand new events to the live counts and the batch this often"
    )
    commit_interval_seconds: float = Field(1.0, gt=0, le=60)
    max_message_bytes: int = Field(MAX_MESSAGE_BYTES, ge=1024)
    retry_max_seconds: float = Field(30.0, gt=0, description="Longest pause between ClickHouse retries")
    live_enabled: bool = Field(True, description="Publish live counts to the live-updates topic")
    # Live counts (services/stream/live_counts.py); the gateway's own settings are LIVE_* in services/live.
    live_window_seconds: int = Field(300, ge=1, le=86_400, description="Active users: events this recent")
    live_heartbeat_seconds: float = Field(1.0, gt=0, le=10, description="Publish counts at least this often")
    live_max_event_age_seconds: float = Field(
        60.0, gt=0, description="Publish new_event only for events received this recently (no replay floods)"
    )
    live_max_pending_events: int = Field(10_000, ge=1, description="Events awaiting the live topic")
    # Persons (services/stream/persons.py, resolver.py).
    persons_sync_seconds: float = Field(
        1.0, gt=0, le=60, description="Read other replicas' links and carry out deletions this often"
    )
    known_ids_capacity: int = Field(
        1_000_000, ge=1000, description="Distinct-id numbers kept in memory (others are looked up)"
    )
