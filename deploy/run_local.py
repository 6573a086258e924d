"""`make run`: start the local Kafka broker, then every service in one process, in the foreground.
`make run-cluster` (`--kafka-nodes 3`): the same against a local 3-broker Kafka cluster
(deploy/kafka/cluster.py), ports 9092-9094, state under data/kafka-cluster.

Ctrl-C / SIGTERM stops the services first (uvicorn drains requests, the stream processor stops and
commits only what it stored, the producer flushes), then the broker, so nothing acknowledged is lost.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from deploy.kafka.broker import REPO, KafkaBroker
from deploy.kafka.cluster import KafkaCluster
from shared.settings import CommonSettings


def main() -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--kafka-nodes", type=int, default=1)
    args, service_args = parser.parse_known_args()
    settings = CommonSettings()
    data = (REPO / settings.data_dir).resolve()  # an absolute data_dir stays as it is
    host, _, port = settings.kafka_bootstrap_servers.split(",")[0].partition(":")
    broker: KafkaBroker | KafkaCluster
    if args.kafka_nodes > 1:
        ports = [int(port or 9092) + i for i in range(args.kafka_nodes)]
        broker = KafkaCluster(data / "kafka-cluster", nodes=args.kafka_nodes, host=host, ports=ports)
        where = broker.data_dir
    else:
        broker = KafkaBroker(data / "kafka", host=host, port=int(port or 9092))
        where = broker.log_path
    print(f"starting Kafka on {broker.bootstrap_servers} (log: {where})", flush=True)
    broker.start()
    services = subprocess.Popen(
        [sys.executable, "-m", "services", "--generate-keys", *service_args],
        env={
            **os.environ,
            "ANALYTICS_DATA_DIR": str(data),
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        },
        cwd=REPO,
    )

    def forward(signum: int, _frame: object) -> None:
        if services.poll() is None:
            services.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        code = services.wait()
    finally:
        if services.poll() is None:
            services.kill()
        print("stopping Kafka", flush=True)
        broker.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
