"""`make run`: start the local Kafka broker, then every service in one process, in the foreground.

Ctrl-C / SIGTERM stops the services first (uvicorn drains requests, the stream processor stops and
commits only what it stored, the producer flushes), then the broker, so nothing acknowledged is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from deploy.kafka.broker import REPO, KafkaBroker
from shared.settings import CommonSettings


def main() -> int:
    settings = CommonSettings()
    data = (REPO / settings.data_dir).resolve()  # an absolute data_dir stays as it is
    host, _, port = settings.kafka_bootstrap_servers.split(",")[0].partition(":")
    broker = KafkaBroker(data / "kafka", host=host, port=int(port or 9092))
    print(f"starting Kafka on {broker.bootstrap_servers} (log: {broker.log_path})", flush=True)
    broker.start()
    services = subprocess.Popen(
        [sys.executable, "-m", "services", "--generate-keys", *sys.argv[1:]],
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
