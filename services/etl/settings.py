"""ETL-service settings (prefix ETL_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EtlSettings(BaseSettings):
    """How and when the daily snapshots are computed."""

    model_config = SettingsConfigDict(env_prefix="ETL_", extra="ignore")

    schedule_enabled: bool = Field(
        True, description="Run the nightly job (00:00 UTC) and the catch-up at start"
    )
    backfill_days: int = Field(
        90, ge=0, le=366, description="How many days back the catch-up at start may reach"
    )
    recompute_days: int = Field(
        7,
        ge=0,
        le=366,
        description="The nightly run also recomputes this many days before it, so late merges settle",
    )
    deletions_check_seconds: float = Field(
        2.0, gt=0, le=600, description="How often finished person deletions get their days recomputed"
    )
    max_run_days: int = Field(366, ge=1, le=3660, description="Longest range one run (or one read) may cover")
    query_timeout_seconds: float = Field(
        300.0, gt=0, le=3600, description="ClickHouse max_execution_time per metric"
    )
    misfire_grace_seconds: int = Field(
        6 * 3600,
        ge=1,
        description="A nightly run delayed by at most this much (e.g. a paused process) still runs",
    )
