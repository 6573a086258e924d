"""Query-service settings (prefix QUERY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class QuerySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUERY_", extra="ignore")

    timeout_seconds: float = Field(30.0, gt=0, le=600, description="ClickHouse max_execution_time per query")
    max_range_days: int = Field(366, ge=1, le=3660)
