"""How fast the stream processor empties a full events topic into ClickHouse, ingest out of the way.

    python -m bench.processor_drain [--events 500000] [--batch 100]

Fills the events topic of a private broker with the messages ingest produces for requests of `--batch`
events (1: one message per event, as a single-event POST sends; 100: one envelope per partition, about
25 events each with 4 partitions), built by ingest's own code. Then starts `--target stream,query` and
times until /stats counts every event. Prints the rate and the processor's CPU use (CPU seconds of the
process over the drain, and per thread name: the event loop's Python, chDB's query and merge pools, the
client's executor threads); add `--profile` for a py-spy profile of the processor (raw format, for flame
graphs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench import ingest as ingest_bench
from bench.pipeline import loaded_count
from deploy.kafka.broker import KafkaBroker, free_port
from deploy.processes import ServiceProcess
from services.ingest.intake import event_messages
from shared.contracts.events import IncomingEvent
from shared.contracts.topics import Topics
from shared.kafka_admin import ensure_topics

PREFIX = "drain"
READ_KEY = "drain-read-key-0123456789ab"


def request_messages(count: int, batch: int, partitions: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of the events-topic messages ingest sends for `count` events posted `batch` to a
    request: the same `IncomingEvent.accept` and `event_messages` as ingest's own path."""
    now = datetime.now(UTC)
    properties = orjson.loads(ingest_bench.PROPERTIES)
    accepted = [
        IncomingEvent(event="page_view", user_id=f"u{i % 50_000}", properties=properties).accept(now)
        for i in range(count)
    ]
    messages = []
    for start in range(0, count, batch):
        messages += event_messages(Topics(PREFIX).events, accepted[start : start + batch], partitions)
    return [(m.key or b"", m.value) for m in messages]


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> None:
    """Until the processor's group has committed every message of the topic (it commits only what it
    stored): asks the broker, so the wait costs the processor nothing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            offsets = await admin.list_consumer_group_offsets(group)
            done = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
            if all(done.get(p, -1) >= end for p, end in ends.items()):
                return
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread name of a process, from /proc: `main` for the event
    loop's thread, chDB's pools by the names they give their threads, `python` for the other Python
    threads (the ClickHouse client's executor, whose calls into chDB run part of each query)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        name = "main" if task.name == str(pid) else name.rstrip("0123456789_-") or name
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=100, help="events per request (1: single-event POSTs)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--profile", type=Path, help="write a py-spy profile of the processor here")
    parser.add_argument(
        "--wait",
        choices=("stats", "offsets"),
        default="stats",
        help="poll /stats until it counts every event (each poll is a query in the processor's process, "
        "~70 ms CPU at 150k events, so the CPU figure grows with the drain's wall time), or the group's "
        "committed offsets from the broker, then ask /stats once",
    )
    parser.add_argument(
        "--native", action="store_true", help="profile native frames too (chDB's), every thread"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    processor = None
    try:
        asyncio.run(ensure_topics(broker.bootstrap_servers, Topics(PREFIX).specs(args.partitions)))
        messages = request_messages(args.events, args.batch, args.partitions)
        rate = asyncio.run(
            ingest_bench.raw_producer_rate(broker.bootstrap_servers, Topics(PREFIX).events, messages)
        )
        topics = Topics(PREFIX)
        ends = asyncio.run(end_offsets(broker.bootstrap_servers, topics.events, args.partitions))
        print(f"filled the topic: {args.events:,} events in {len(messages):,} messages ({rate:,.0f} per s)")
        env = {
            "ANALYTICS_READ_KEYS": READ_KEY,
            "ANALYTICS_INGEST_KEYS": "drain-ingest-key-0123456789",
            "ANALYTICS_ADMIN_KEYS": "drain-admin-key-0123456789a",
            "ANALYTICS_DATA_DIR": str(workdir / "data"),
            "ANALYTICS_TOPIC_PREFIX": PREFIX,
            "ANALYTICS_TOPIC_PARTITIONS": str(args.partitions),
            "ANALYTICS_RATE_LIMIT_QUERY": "0",
            "ANALYTICS_LOG_LEVEL": "WARNING",
            "ETL_SCHEDULE_ENABLED": "false",
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        }
        processor = ServiceProcess("stream,query", env, workdir).start()
        cpu = psutil.Process(processor.pid)
        cpu_before, threads_before = cpu_seconds(cpu), thread_cpu(cpu.pid)
        started = time.monotonic()
        spy = None
        if args.profile:
            # Until the drain ends (SIGINT makes py-spy write what it has). Only the thread holding the
            # GIL is sampled, so threads waiting in chDB or on a lock are not counted as busy; with
            # --native, every thread with its native (chDB) frames instead.
            sampled = ["--native", "--threads"] if args.native else ["--gil"]
            command = ["py-spy", "record", *sampled, "-r", "50", "-f", "raw", "-o", str(args.profile)]
            spy = subprocess.Popen([*command, "-p", str(processor.pid)])
        today = datetime.now(UTC).date().isoformat()
        if args.wait == "offsets":
            asyncio.run(wait_committed(broker.bootstrap_servers, topics.loader_group, topics.events, ends))
        while loaded_count(processor, READ_KEY, today) < args.events:
            time.sleep(0.5)
        took = time.monotonic() - started
        used = cpu_seconds(cpu) - cpu_before
        print(
            f"drained {args.events:,} events in {took:.1f} s: {args.events / took:,.0f} events/s; "
            f"processor CPU {100 * used / took:.0f}% (100% = one core), {used:.1f} CPU s"
        )
        threads = thread_cpu(cpu.pid)
        spent = {name: seconds - threads_before.get(name, 0.0) for name, seconds in threads.items()}
        spent["ended threads"] = used - sum(spent.values())
        ranked = sorted(spent.items(), key=lambda item: -item[1])
        print("CPU s by thread: " + ", ".join(f"{name} {s:.1f}" for name, s in ranked if s >= 0.05))
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
    finally:
        if processor is not None:
            processor.terminate()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
