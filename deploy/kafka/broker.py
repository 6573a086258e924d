"""Run a single-node Apache Kafka broker (KRaft, combined broker+controller) from Maven-fetched jars.

Used by `make run` and by the test suite. The jars come from `deploy/kafka/pom.xml`
(`make kafka-jars`); this module only writes a config, formats storage once and starts the JVM.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_LIBS = REPO / ".cache" / "kafka-libs"
DEFAULT_HEAP = "512m"


@dataclass
class KafkaBroker:
    """One KRaft broker process whose state lives under `data_dir`."""

    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    host: str = "127.0.0.1"
    libs_dir: Path = DEFAULT_LIBS
    heap: str = DEFAULT_HEAP
    partitions: int = 4
    # A node of a cluster (deploy/kafka/cluster.py) gets its id, the quorum's voters, the cluster id
    # every node is formatted with, and the replication of the internal topics; the defaults are one node.
    node_id: int = 1
    quorum_voters: str | None = None
    cluster_id: str | None = None
    internal_replication: int = 1
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        replication = str(self.internal_replication)
        min_isr = str(max(1, self.internal_replication - 1))
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.quorum_voters
            or f"{self.node_id}@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(logs),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": replication,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            # Topics created by a client without a replication factor (auto-created, faust's own).
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "168",
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def _java(self, main_class: str, *args: str) -> list[str]:
        if not any(self.libs_dir.glob("kafka_2.13-*.jar")):
            raise RuntimeError(f"Kafka jars missing in {self.libs_dir}: run `make kafka-jars`")
        return [
            os.environ.get("JAVA", "java"),
            f"-Xmx{self.heap}",
            f"-Xms{min_heap(self.heap)}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def format_storage(self) -> None:
        """Format KRaft storage once; a formatted directory keeps its cluster id."""
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        cmd = self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_path))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker in the background and wait until it accepts connections."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the JVM without waiting (a cluster's nodes must start together to form a quorum)."""
        self.write_config()
        self.format_storage()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.config_path)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.process.returncode}; see {self.log_path}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.2)
        raise TimeoutError(f"Kafka did not open {self.bootstrap_servers} in {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully (SIGTERM: the broker flushes and closes its logs)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, for fault tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def new_cluster_id() -> str:
    cluster_id = "-"
    while cluster_id.startswith("-"):  # a leading '-' would be read as an option by StorageTool
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


def min_heap(heap: str) -> str:
    return "128m" if heap.endswith("m") and int(heap[:-1]) > 128 else heap


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local single-node Kafka (KRaft) in the foreground.")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "kafka")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    args = parser.parse_args(argv)
    broker = KafkaBroker(args.data_dir, port=args.port, controller_port=args.controller_port)
    broker.start()
    print(f"kafka ready on {broker.bootstrap_servers} (logs: {broker.log_path})", flush=True)
    stop = lambda *_: broker.stop()  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    assert broker.process is not None
    return broker.process.wait()


if __name__ == "__main__":
    sys.exit(main())
