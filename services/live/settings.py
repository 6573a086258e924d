"""Live gateway settings (prefix LIVE_). The active-user window itself is computed by the stream
processors (STREAM_LIVE_WINDOW_SECONDS)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LiveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVE_", extra="ignore")

    max_events_per_second: float = Field(20.0, gt=0, le=1e6, description="new_event per client, per s")
    client_queue_size: int = Field(256, ge=1, le=100_000, description="Messages queued per client")
    count_interval_seconds: float = Field(0.25, ge=0.25, le=5, description="Count check interval")
    heartbeat_seconds: float = Field(4.0, gt=0, le=5, description="Send the count at least this often")
    max_delay_seconds: float = Field(2.0, gt=0, le=60, description="Drop new_event older than this")
    dropped_notice_seconds: float = Field(1.0, gt=0, le=60, description="Loss notice interval")
    presence_ttl_seconds: float = Field(10.0, gt=0, description="Count expiry without reports")
    history_messages: int = Field(200, ge=0, le=100_000, description="Live-topic messages read back at start")
    max_client_message_bytes: int = Field(4096, ge=64, description="Longer client messages get an error")
    fetch_max_wait_ms: int = Field(100, ge=1, le=5000, description="Kafka long-poll wait")
