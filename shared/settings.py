"""Settings every service shares: where Kafka and ClickHouse are, the access keys, the topic prefix.

Only entry points build settings (from the environment); shared clients take explicit arguments.
Each service adds its own prefixed settings class beside its code (e.g. services/ingest/settings.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts import materialized

PLACEHOLDER_KEYS = {"changeme", "change-me", "secret", "password", "key", "test", "xxx", "todo"}
MIN_KEY_LENGTH = 16
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def split_keys(raw: str) -> tuple[SecretStr, ...]:
    return tuple(SecretStr(k.strip()) for k in raw.split(",") if k.strip())


class CommonSettings(BaseSettings):
    """Kafka, ClickHouse, keys and naming, read from unprefixed environment variables."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    clickhouse_url: str = Field(
        "", alias="CLICKHOUSE_URL", description="chdb:///path or http(s)://u:p@host:8123/db"
    )
    clickhouse_database: str = Field("analytics", alias="CLICKHOUSE_DATABASE")
    clickhouse_cluster: str = Field(
        "",
        alias="CLICKHOUSE_CLUSTER",
        description="A ClickHouse server cluster's name: create the cluster form of the schema",
    )
    materialized_properties_raw: str = Field(
        ",".join(materialized.DEFAULT_KEYS),
        alias="ANALYTICS_MATERIALIZED_PROPERTIES",
        description="Event property keys stored in a column of their own (comma-separated; '' for none)",
    )
    data_dir: Path = Field(Path("data"), alias="ANALYTICS_DATA_DIR")
    topic_prefix: str = Field("analytics", alias="ANALYTICS_TOPIC_PREFIX", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    topic_partitions: int = Field(4, alias="ANALYTICS_TOPIC_PARTITIONS", ge=1, le=256)
    topic_replication: int | None = Field(
        None,
        alias="ANALYTICS_TOPIC_REPLICATION",
        ge=1,
        le=16,
        description="Replicas of each topic; unset: min(3, brokers in the cluster metadata)",
    )
    ingest_keys_raw: str = Field("", alias="ANALYTICS_INGEST_KEYS")
    read_keys_raw: str = Field("", alias="ANALYTICS_READ_KEYS")
    admin_keys_raw: str = Field("", alias="ANALYTICS_ADMIN_KEYS")
    cors_origins_raw: str = Field("", alias="ANALYTICS_CORS_ORIGINS")
    log_level: str = Field("INFO", alias="ANALYTICS_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(
        "text", alias="ANALYTICS_LOG_FORMAT", description="text, or json: one JSON object per line"
    )
    metrics_token: SecretStr = Field(
        SecretStr(""),
        alias="ANALYTICS_METRICS_TOKEN",
        description="When set, GET /metrics answers only `Authorization: Bearer <token>`",
    )
    ws_compression: bool = Field(
        False,
        alias="ANALYTICS_WS_COMPRESSION",
        description="Accept permessage-deflate on WebSockets (costs CPU per client per message)",
    )
    rate_limit_ingest: float = Field(
        5000.0, alias="ANALYTICS_RATE_LIMIT_INGEST", ge=0, description="Ingest requests/s per key (0: off)"
    )
    rate_limit_query: float = Field(
        50.0, alias="ANALYTICS_RATE_LIMIT_QUERY", ge=0, description="Query/admin requests/s per key (0: off)"
    )

    @field_validator("ingest_keys_raw", "read_keys_raw", "admin_keys_raw")
    @classmethod
    def refuse_weak_keys(cls, raw: str) -> str:
        for key in split_keys(raw):
            value = key.get_secret_value()
            if value.lower() in PLACEHOLDER_KEYS or len(value) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"access keys must be at least {MIN_KEY_LENGTH} characters and not a placeholder"
                )
        return raw

    @field_validator("metrics_token")
    @classmethod
    def refuse_weak_token(cls, token: SecretStr) -> SecretStr:
        value = token.get_secret_value()
        if value and (value.lower() in PLACEHOLDER_KEYS or len(value) < MIN_KEY_LENGTH):
            raise ValueError(f"ANALYTICS_METRICS_TOKEN: at least {MIN_KEY_LENGTH} characters, no placeholder")
        return token

    @field_validator("clickhouse_database")
    @classmethod
    def database_is_identifier(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError("CLICKHOUSE_DATABASE must be a plain identifier")
        return value

    @field_validator("materialized_properties_raw")
    @classmethod
    def materialized_keys_are_valid(cls, raw: str) -> str:
        materialized.parse_keys(raw)
        return raw

    @field_validator("clickhouse_cluster")
    @classmethod
    def cluster_is_identifier(cls, value: str) -> str:
        if value and not IDENTIFIER.match(value):
            raise ValueError("CLICKHOUSE_CLUSTER must be a plain identifier")
        return value

    @property
    def materialized_properties(self) -> tuple[str, ...]:
        return materialized.parse_keys(self.materialized_properties_raw)

    @property
    def ingest_keys(self) -> tuple[SecretStr, ...]:
        return split_keys(self.ingest_keys_raw)

    @property
    def read_keys(self) -> tuple[SecretStr, ...]:
        return split_keys(self.read_keys_raw)

    @property
    def admin_keys(self) -> tuple[SecretStr, ...]:
        return split_keys(self.admin_keys_raw)

    @property
    def secrets(self) -> list[str]:
        """What must never reach a log line: the keys, the metrics token, ClickHouse's password."""
        keys = [k.get_secret_value() for k in (*self.ingest_keys, *self.read_keys, *self.admin_keys)]
        password = urlparse(self.clickhouse_url).password if self.clickhouse_url else None
        return [*keys, self.metrics_token.get_secret_value(), *([password] if password else [])]

    @property
    def has_keys(self) -> bool:
        return bool(self.ingest_keys or self.read_keys or self.admin_keys)

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins_raw.split(",") if o.strip()]

    @property
    def resolved_clickhouse_url(self) -> str:
        """The ClickHouse DSN; embedded chDB under data_dir unless CLICKHOUSE_URL says otherwise."""
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def resolved_database(self) -> str:
        """Database from the URL path (http) or `?database=` (chdb), else CLICKHOUSE_DATABASE."""
        parsed = urlparse(self.resolved_clickhouse_url)
        name = parse_qs(parsed.query).get("database", [""])[0]
        if not name and parsed.scheme.startswith("http"):
            name = parsed.path.strip("/")
        name = name or self.clickhouse_database
        if not IDENTIFIER.match(name):
            raise ValueError(f"invalid ClickHouse database name {name!r}")
        return name

    @property
    def embedded_clickhouse(self) -> bool:
        return self.resolved_clickhouse_url.startswith("chdb:")


class ServerSettings(BaseSettings):
    """What `python -m services` runs and where (its command-line flags take precedence)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    target: str = Field("all", alias="ANALYTICS_TARGET", description="all, or a comma-separated subset")
    host: str = Field("127.0.0.1", alias="ANALYTICS_HOST")
    port: int = Field(8000, alias="ANALYTICS_PORT", ge=1, le=65535)
