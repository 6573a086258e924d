"""Process lifecycle: graceful SIGTERM keeps every acknowledged event; one chDB directory per process."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import time

import httpx

from tests.pipeline import make_events, stats, wait_for_count
from tests.support import INGEST_KEY, REPO, Environment, ServiceProcess, auth


def test_sigterm_during_load_keeps_every_acknowledged_event(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    system = environment.service("all")
    services.append(system)
    system.start()
    acknowledged = 0

    def send(batch: list[dict[str, object]]) -> int:
        try:
            response = httpx.post(
                f"{system.url}/api/v1/events", json={"events": batch}, headers=auth(INGEST_KEY), timeout=30
            )
        except httpx.HTTPError:
            return 0
        return response.json()["accepted"] if response.status_code == 202 else 0

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(send, make_events(500)) for _ in range(40)]
        time.sleep(1.0)
        # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean exit too.
        assert system.terminate(timeout=60) in (0, -signal.SIGTERM), system.tail()
        assert "stopping query" in system.tail(), "the shutdown hooks did not run"
        acknowledged = sum(f.result() for f in futures)
    assert acknowledged > 0
    system.start()
    result = wait_for_count(system.url, acknowledged, timeout=120)
    time.sleep(1.5)
    assert stats(system.url)["events"] == acknowledged, result


def test_a_second_process_cannot_open_the_same_embedded_clickhouse(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    if environment.clickhouse_url:
        return  # only embedded ClickHouse has this constraint
    first = environment.service("query")
    second = environment.service("query")
    services.extend([first, second])
    first.start()
    try:
        second.start(timeout=30)
    except RuntimeError as exc:
        assert "in use by pid" in str(exc) and "CLICKHOUSE_URL" in str(exc)
    else:
        raise AssertionError("a second process opened the same chDB directory")


def test_unknown_target_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services", "--target", "ingest,nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown target" in result.stderr


def start_ingest_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start `--target ingest` with exactly `env` (plus PATH) and wait for it to exit."""
    return subprocess.run(
        [sys.executable, "-m", "services", "--target", "ingest"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_keys_refuses_to_start(tmp_path) -> None:
    result = start_ingest_with({"ANALYTICS_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "no access keys configured" in result.stderr + result.stdout


def test_weak_keys_are_refused(tmp_path) -> None:
    result = start_ingest_with({"ANALYTICS_DATA_DIR": str(tmp_path), "ANALYTICS_READ_KEYS": "changeme"})
    assert result.returncode != 0
    assert "at least 16 characters" in result.stderr + result.stdout


def test_generated_keys_are_kept_and_reused(tmp_path) -> None:
    from services.__main__ import generated_keys

    first = generated_keys(tmp_path)
    assert set(first) == {"ANALYTICS_INGEST_KEYS", "ANALYTICS_READ_KEYS", "ANALYTICS_ADMIN_KEYS"}
    assert all(len(v) >= 16 for v in first.values())
    assert generated_keys(tmp_path) == first
    assert (tmp_path / "keys.env").stat().st_mode & 0o777 == 0o600
