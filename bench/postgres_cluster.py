"""A private PostgreSQL 15 cluster for a baseline: initdb + pg_ctl under a directory, unix socket only.

initdb refuses to run as root, so when we are root the server runs as the `postgres` user in a directory
it owns. The settings favour the baseline's query speed over durability (it holds a copy of generated
data): no fsync, minimal WAL, generous memory, parallel workers on every core.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psutil
import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "'8GB'",
    "shared_buffers": "'2GB'",
    "work_mem": "'512MB'",
    "maintenance_work_mem": "'2GB'",
    "effective_cache_size": "'8GB'",
    "random_page_cost": "1.1",
    "max_parallel_workers_per_gather": str(os.cpu_count() or 2),
    "max_parallel_maintenance_workers": str(os.cpu_count() or 2),
    "jit": "off",
}


class PostgresCluster:
    """initdb, start, connect, stop; everything lives under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.socket_dir = directory / "socket"
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, text=True)

    def start(self) -> PostgresCluster:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.socket_dir.mkdir(parents=True)
        if self.run_as:
            shutil.chown(self.directory, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        options = " ".join(f"-c {name}={value}" for name, value in SETTINGS.items())
        options += f" -c unix_socket_directories='{self.socket_dir}'"
        log = self.directory / "server.log"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-o", options, "-w", "start")
        return self

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(host=str(self.socket_dir), user="postgres", dbname="postgres", autocommit=True)

    def cpu_seconds(self) -> float:
        """CPU seconds of the postmaster, its live children and the children it has reaped (parallel
        workers exit after each query)."""
        root = psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children():
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += child_times.user + child_times.system
        return total

    def set_priority(self, nice: int, idle_io: bool) -> None:
        """CPU niceness and IO class of the server and every backend (new backends inherit the
        postmaster's): a load at nice 19 and idle IO takes only what the rest of the machine leaves."""
        root = psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))
        io_class = psutil.IOPRIO_CLASS_IDLE if idle_io else psutil.IOPRIO_CLASS_BE
        for process in (root, *root.children(recursive=True)):
            try:
                process.nice(nice)
                process.ionice(io_class)
            except psutil.NoSuchProcess:
                continue

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
