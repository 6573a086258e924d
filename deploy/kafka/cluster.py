"""Run N KRaft nodes on this machine as one Kafka cluster (3 by default): each node is broker and
controller, the controllers form an N-voter quorum, and the internal topics (consumer offsets,
transaction state) are replicated min(3, N) times with min.insync.replicas one less.

Used by `make run-cluster` and by tests/system/test_kafka_cluster.py. Each node is a `KafkaBroker` of
deploy/kafka/broker.py with its own ports and data directory under `data_dir/node-<id>`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.kafka.broker import REPO, KafkaBroker, free_port, new_cluster_id

DEFAULT_NODES = 3


@dataclass
class KafkaCluster:
    """`nodes` KRaft brokers sharing one cluster id; node ids are 1..nodes."""

    data_dir: Path
    nodes: int = DEFAULT_NODES
    host: str = "127.0.0.1"
    ports: list[int] | None = None  # client ports, one per node; free ports when None
    heap: str = "384m"
    brokers: list[KafkaBroker] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = self.ports or [free_port() for _ in range(self.nodes)]
        controller_ports = self._controller_ports()
        voters = ",".join(f"{i + 1}@{self.host}:{p}" for i, p in enumerate(controller_ports))
        cluster_id = self._cluster_id()
        self.brokers = [
            KafkaBroker(
                self.data_dir / f"node-{i + 1}",
                port=ports[i],
                controller_port=controller_ports[i],
                host=self.host,
                heap=self.heap,
                node_id=i + 1,
                quorum_voters=voters,
                cluster_id=cluster_id,
                internal_replication=min(3, self.nodes),
            )
            for i in range(self.nodes)
        ]

    def _cluster_id(self) -> str:
        """Kept in the data directory: restarted nodes must present the id their logs were formatted with."""
        path = self.data_dir / "cluster.id"
        if not path.exists():
            path.write_text(new_cluster_id())
        return path.read_text().strip()

    def _controller_ports(self) -> list[int]:
        """Controller ports are in every node's config (the voter list), so they are kept too."""
        path = self.data_dir / "controller.ports"
        if path.exists():
            ports = [int(p) for p in path.read_text().split(",")]
            if len(ports) == self.nodes:
                return ports
        ports = [free_port() for _ in range(self.nodes)]
        path.write_text(",".join(map(str, ports)))
        return ports

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(b.bootstrap_servers for b in self.brokers)

    def broker(self, node_id: int) -> KafkaBroker:
        return self.brokers[node_id - 1]

    def start(self, timeout: float = 120.0) -> None:
        """Start every node at once (a controller waits for a quorum), then wait for all to register."""
        for broker in self.brokers:
            broker.launch()
        for broker in self.brokers:
            broker.wait_ready(timeout)
        self.wait_registered(self.nodes, timeout)

    def wait_registered(self, count: int, timeout: float = 60.0) -> None:
        """Wait until the cluster metadata lists `count` live brokers."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            seen = asyncio.run(live_broker_count(self.bootstrap_servers))
            if seen >= count:
                return
            time.sleep(0.5)
        raise TimeoutError(f"{seen} of {count} brokers registered after {timeout}s; see {self.data_dir}")

    def stop(self) -> None:
        """SIGTERM every node at once: stopped one by one, the last would wait for a quorum that is gone."""
        for broker in self.brokers:
            if broker.process is not None and broker.process.poll() is None:
                broker.process.send_signal(signal.SIGTERM)
        for broker in self.brokers:
            broker.stop()

    def kill(self) -> None:
        for broker in self.brokers:
            broker.kill()


async def live_broker_count(bootstrap_servers: str) -> int:
    """Brokers in the cluster metadata (0 when nobody answers)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        cluster = await admin.describe_cluster()
        return len(cluster["brokers"])
    except Exception:  # noqa: BLE001 - "not yet"
        return 0
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a local N-node Kafka cluster (KRaft) in the foreground."
    )
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "kafka-cluster")
    parser.add_argument("--nodes", type=int, default=DEFAULT_NODES)
    parser.add_argument("--first-port", type=int, default=9092, help="client ports first..first+nodes-1")
    args = parser.parse_args(argv)
    ports = [args.first_port + i for i in range(args.nodes)]
    cluster = KafkaCluster(args.data_dir, nodes=args.nodes, ports=ports)
    cluster.start()
    print(f"kafka cluster ready on {cluster.bootstrap_servers} (logs under {cluster.data_dir})", flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(b.process is not None and b.process.poll() is None for b in cluster.brokers):
        time.sleep(0.5)
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
