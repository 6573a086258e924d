"""Test helpers: where Kafka and ClickHouse come from, and running the real services as processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deploy.kafka.broker import KafkaBroker, free_port

REPO = Path(__file__).resolve().parent.parent

INGEST_KEY = "test-ingest-key-0123456789"
READ_KEY = "test-read-key-0123456789ab"
ADMIN_KEY = "test-admin-key-0123456789a"
KEY_ENV = {
    "ANALYTICS_INGEST_KEYS": INGEST_KEY,
    "ANALYTICS_READ_KEYS": READ_KEY,
    "ANALYTICS_ADMIN_KEYS": ADMIN_KEY,
}


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def docker_answers() -> bool:
    """True when a Docker engine (not only the client) is reachable."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class ServiceProcess:
    """One `python -m services --target ...` process with its own port, env and log file."""

    targets: str
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"service-{self.targets.replace(',', '-')}-{self.port}.log"

    def start(self, timeout: float = 90.0, wait_ready: bool = True) -> ServiceProcess:
        env = {**os.environ, **self.env}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services", "--target", self.targets, "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for("/readyz" if wait_ready else "/healthz", timeout)
        return self

    def wait_for(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.url}{path} not ready in {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def terminate(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait for a clean exit."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def client(self, key: str | None = None, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=auth(key) if key else {}, timeout=timeout)


@dataclass
class Environment:
    """What a test's services share: Kafka, the topic prefix, and (for chDB) a data directory."""

    kafka: str
    clickhouse_url: str | None
    workdir: Path
    prefix: str = field(default_factory=unique_name)
    database: str = field(default_factory=lambda: unique_name("db_"))
    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: Any) -> dict[str, str]:
        values = {
            **KEY_ENV,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "ANALYTICS_TOPIC_PREFIX": self.prefix,
            "ANALYTICS_DATA_DIR": str(self.workdir / "data"),
            "CLICKHOUSE_DATABASE": self.database,
            "STREAM_FLUSH_SECONDS": "0.3",
            **self.extra,
        }
        if self.clickhouse_url:
            values["CLICKHOUSE_URL"] = self.clickhouse_url
        values.update({k: str(v) for k, v in overrides.items()})
        return values

    def service(self, targets: str = "all", **overrides: Any) -> ServiceProcess:
        return ServiceProcess(targets, self.env(**overrides), self.workdir)


def start_local_broker(workdir: Path) -> KafkaBroker:
    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    return broker
