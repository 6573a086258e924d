"""Kafka helpers: the partitioner and a durable producer that answers within a deadline (topics:
shared/kafka_admin.py).

`DurableProducer.send_all` returns only when Kafka acknowledged every message (acks=all, idempotent
producer) and raises `BrokerUnavailable` when that did not happen within the deadline, so the HTTP
edge never answers 202 for something Kafka did not take, and never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import murmur2

from shared.contracts.events import user_key
from shared.contracts.topics import OutgoingMessage
from shared.errors import BrokerUnavailable
from shared.metrics import counter, histogram
from shared.retry import Backoff

log = logging.getLogger(__name__)

LINGER_MS = 5
ACK_SECONDS = histogram(
    "kafka_ack_seconds",
    "From handing a request's messages to the producer to Kafka's acknowledgement of all of them",
)
ACK_MISSED = counter(
    "kafka_ack_missed_total", "Sends Kafka did not acknowledge by the deadline (or refused): each a 503"
)


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), as the Java client and aiokafka compute it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@functools.lru_cache(maxsize=65_536)
def partition_of_user(user_id: str, partitions: int) -> int:
    """`partition_of` an event's key, cached by the user id itself: aiokafka's murmur2 is pure Python,
    the same users come back again and again, and a hit encodes no key (docs/performance.md)."""
    return partition_of(user_key(user_id), partitions)


class DurableProducer:
    """An idempotent acks=all producer that (re)connects in the background."""

    def __init__(
        self, bootstrap_servers: str, *, ack_timeout: float = 5.0, client_id: str = "analytics"
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.ack_timeout = ack_timeout
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._producer is not None

    def _build(self) -> AIOKafkaProducer:
        # Batches that cannot be delivered expire after request_timeout_ms, shorter than the HTTP
        # deadline, so a message we answered 503 for is not delivered later by a background retry.
        expiry_ms = max(1000, int(self.ack_timeout * 1000) - 500)
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            # Under batch load a linger packs more requests' envelopes into one produce request
            # (docs/performance.md has the A/B).
            linger_ms=LINGER_MS,
            max_batch_size=512 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=expiry_ms,
            retry_backoff_ms=100,
        )

    async def start(self) -> None:
        """Connect now if Kafka answers; otherwise keep trying in the background."""
        if not await self._try_connect():
            self._connecting = asyncio.create_task(self._connect_forever())

    async def _try_connect(self) -> bool:
        producer = self._build()
        try:
            await asyncio.wait_for(producer.start(), self.ack_timeout * 2)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("kafka producer not connected yet: %s", exc)
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        self._producer = producer
        return True

    async def _connect_forever(self) -> None:
        backoff = Backoff()
        while not await self._try_connect():
            await backoff.wait()

    def partition_count(self, topic: str) -> int | None:
        """How many partitions `topic` has, from the metadata the producer already holds (None: unknown)."""
        producer = self._producer
        if producer is None:
            return None
        partitions = producer.client.cluster.partitions_for_topic(topic)
        return len(partitions) if partitions else None

    async def send_all(self, messages: Iterable[OutgoingMessage]) -> None:
        """Send and wait for every acknowledgement, or raise BrokerUnavailable by the deadline."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("the event broker is not reachable; retry later")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.ack_timeout):
                futures = [
                    await producer.send(m.topic, m.value, key=m.key, partition=m.partition) for m in messages
                ]
                await asyncio.gather(*futures)
            ACK_SECONDS.observe(time.perf_counter() - started)
        except (TimeoutError, KafkaError) as exc:
            ACK_MISSED.inc()
            log.warning("kafka did not acknowledge in %.1fs: %r", self.ack_timeout, exc)
            self._replace(producer)
            raise BrokerUnavailable("the event broker did not acknowledge in time; retry later") from exc

    def _replace(self, producer: AIOKafkaProducer) -> None:
        """Drop a producer that missed a deadline, with everything it still holds, and reconnect."""
        if self._producer is not producer:
            return  # another request already replaced it
        self._producer = None
        asyncio.create_task(abandon(producer))
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect_forever())

    async def stop(self) -> None:
        """Flush what is buffered (every send we answered for is already acknowledged) and close."""
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._producer is not None:
            # flush() inside stop() delivers what is still buffered before we exit.
            await self._producer.stop()
            self._producer = None


async def abandon(producer: AIOKafkaProducer, timeout: float = 5.0) -> None:
    """Close a producer without delivering what it still buffers.

    An idempotent aiokafka producer retries its batches until they are delivered, however long the
    broker is away. A request we already answered 503 for must not appear later, so instead of
    `stop()` (which flushes) we cancel its sender and fail its pending batches. This reaches into
    aiokafka's internals, which is why it lives here, in one place, and is covered by
    tests/system/test_pipeline.py::test_broker_down_answers_503_quickly_and_loses_nothing_acknowledged.
    """
    producer._closed = True  # noqa: SLF001 - see docstring
    sender = producer._sender  # noqa: SLF001
    task = sender.sender_task if sender is not None else None
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, timeout)
    producer._message_accumulator.fail_all(KafkaConnectionError("producer abandoned after a missed deadline"))  # noqa: SLF001
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.client.close(), timeout)
