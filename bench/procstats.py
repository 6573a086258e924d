"""What the benches read of a running process: its resident memory, its CPU time, the process behind a
port, and the peak memory of several processes over a run."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import psutil


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of a process in MiB (None when unknown or gone)."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20 if pid else None
    except psutil.Error:
        return None


def rss_of(pids: Mapping[str, int | None]) -> dict[str, float]:
    """Resident memory in MiB of each named process that is still there."""
    return {name: rss for name, pid in pids.items() if (rss := rss_mib(pid)) is not None}


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU seconds a process has used so far."""
    try:
        times = psutil.Process(pid).cpu_times() if pid else None
    except psutil.Error:
        return None
    return None if times is None else times.user + times.system


def listening_pid(url: str) -> int | None:
    """The process listening on the URL's port (to find the gateway when only its URL is known)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


class PeakRss(threading.Thread):
    """Samples the named processes' RSS every 0.2 s until `stopping` is set; `peak` holds each one's
    highest (MiB)."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        super().__init__(daemon=True)
        self.pids = dict(pids)
        self.peak = rss_of(self.pids)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            for name, rss in rss_of(self.pids).items():
                self.peak[name] = max(self.peak.get(name, 0.0), rss)
