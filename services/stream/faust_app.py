"""The faust-streaming app: built from explicit settings, started inside any running event loop.

faust-streaming has open issues about running inside another loop (#322, #448); we never call
`app.main()` or a Worker, only `await app.start()` / `await app.stop()` on the caller's loop, which is
what `tests/system/test_pipeline.py` exercises in the all-in-one process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from time import monotonic
from typing import Any

import faust
from faust.sensors.monitor import Monitor

from services.stream.settings import StreamSettings

QUIET_LOGGERS = ("faust", "mode", "aiokafka")


class LeanMonitor(Monitor):
    """faust's monitor without its per-message bookkeeping (a measurable share of the processor under
    load: docs/performance.md).

    We expose no faust web views to read those statistics from. Kept: the stream inbound time, which
    faust's consumer reads to log partitions whose stream stopped processing.
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


def build_faust_app(
    bootstrap_servers: str, group: str, settings: StreamSettings, data_dir: Path | None = None
) -> faust.App:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # faust keeps a small state directory; by default it is `<app id>-data` in the working directory.
    state_dir = (data_dir or Path("data")) / "faust" / group
    state_dir.mkdir(parents=True, exist_ok=True)
    brokers = [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]
    return faust.App(
        group,
        broker=brokers,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        store="memory://",
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.batch_size,
        broker_commit_interval=settings.commit_interval_seconds,
        stream_buffer_maxsize=max(4096, settings.batch_size * 2),
        stream_wait_empty=False,
        topic_disable_leader=True,
        producer_acks=-1,
        processing_guarantee="at_least_once",
        datadir=str(state_dir),
        monitor=LeanMonitor(),
    )
