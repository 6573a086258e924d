"""Run `python -m services --target ...` as a child process: used by the tests and by `make bench`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.kafka.broker import REPO, KafkaBroker, free_port


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
        """An HTTP client for this process, sending `key` as a bearer token."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


def stop_all(processes: Iterable[ServiceProcess], broker: KafkaBroker | None = None) -> None:
    """Stop every process, then the broker, even when one of them had to be killed; that one's
    TimeoutExpired is raised at the end, so a service that cannot stop cleanly is still reported."""
    failures: list[subprocess.TimeoutExpired] = []
    for process in processes:
        try:
            process.terminate()
        except subprocess.TimeoutExpired as exc:
            failures.append(exc)
    if broker is not None:
        broker.stop()
    if failures:
        raise failures[0]
