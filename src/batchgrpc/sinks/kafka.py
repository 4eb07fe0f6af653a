"""The Kafka sink: every dispatched event as one message on a topic, each
relay batch one Kafka transaction (confluent-kafka, librdkafka).

Exactly once for a `read_committed` consumer, whatever is killed when:

- a batch is produced and committed in one transaction, so a consumer sees
  all of it or none;
- the producer's `transactional.id` is the topic's, the same for every
  relay, so a relay that opens fences off any earlier one still running
  (a zombie's open transaction is aborted, its later commits refused);
- every message carries its outbox position (the `position` header), so a
  relay taking over reads the highest committed position off the topic
  (`recover`) and goes on after it, even when the relay before it
  committed a batch and died before recording it in the store.

librdkafka's calls block; each runs on the sink's own thread, off the event
loop, under a watchdog (`WATCHDOG_SECONDS`). Any failure is
`SinkUnavailable`: the relay closes the sink, waits, opens a fresh producer
and goes on from the recorded position. A call past the watchdog is given
up with its thread and producer, so a librdkafka call that never returns
(reported upstream for transactional producers) costs a retry, not a relay
that stops without a word.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from batchgrpc import tracing
from batchgrpc.sinks import Held, SinkUnavailable
from batchgrpc.sinks.message import message_of
from batchgrpc.store import Event

log = logging.getLogger("batchgrpc.relay")
T = TypeVar("T")

#: Seconds a blocking Kafka call may take before the sink counts as down.
TIMEOUT_SECONDS = 10.0
#: Seconds after which a call is given up for hung: past every timeout it
#: was given (a transaction's produce loop and commit take at most a few).
WATCHDOG_SECONDS = 60.0
#: How long `ping` waits for the broker's metadata: a broker that answers
#: does so in milliseconds; health should not wait for a relay's 10 s.
PING_SECONDS = 2.0
#: How far back from a partition's end `recover` first looks for a message
#: (the offsets there are also transaction markers), growing by 4x.
_LOOK_BACK = 16


class KafkaSink:
    delivers_at_commit = False

    def __init__(self, servers: str, topic: str) -> None:
        self.name = f"kafka:{topic}"
        self._servers = servers
        self._topic = topic
        self._producer: Producer | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._pinger: Producer | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the sink's thread, under the watchdog."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="kafka-sink")
        future = asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        try:
            async with asyncio.timeout(WATCHDOG_SECONDS):
                return await asyncio.shield(future)
        except TimeoutError:
            log.error(
                "a Kafka call hung; giving up its producer",
                extra={"fields": {"sink": self.name, "call": getattr(fn, "__name__", str(fn))}},
            )
            # The stuck thread keeps the old producer; the next open makes a
            # new one on a new thread, and its init_transactions fences the old.
            self._thread.shutdown(wait=False)
            self._thread = None
            self._producer = None
            raise SinkUnavailable(
                f"Kafka at {self._servers}: a call did not return in {WATCHDOG_SECONDS:g} s"
            ) from None

    async def open(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self._servers,
                "transactional.id": f"batchgrpc-relay.{self._topic}",
                "enable.idempotence": True,
                "linger.ms": 5,
                "transaction.timeout.ms": 60_000,
            }
        )
        try:
            # Fences any earlier relay and aborts what it left open.
            await self._call(producer.init_transactions, TIMEOUT_SECONDS)
        except KafkaException as e:
            raise SinkUnavailable(f"Kafka at {self._servers}: {e.args[0]}") from e
        self._producer = producer

    async def recover(self) -> Held | None:
        try:
            return await self._call(self._highest_position)
        except KafkaException as e:
            raise SinkUnavailable(f"Kafka at {self._servers}: {e.args[0]}") from e

    def _highest_position(self) -> Held | None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._servers,
                "group.id": f"batchgrpc-recover-{uuid.uuid4().hex}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        try:
            metadata = consumer.list_topics(self._topic, timeout=TIMEOUT_SECONDS)
            topic = metadata.topics.get(self._topic)
            if topic is None or topic.error is not None:
                return None  # no topic yet: nothing delivered
            last = [held for p in topic.partitions if (held := self._last_in(consumer, p)) is not None]
            return max(last, key=lambda held: held.position, default=None)
        finally:
            consumer.close()

    def _last_in(self, consumer: Consumer, partition: int) -> Held | None:
        """The last committed event of one partition (None: none)."""
        low, high = consumer.get_watermark_offsets(
            TopicPartition(self._topic, partition), timeout=TIMEOUT_SECONDS, cached=False
        )
        back = _LOOK_BACK
        while True:
            start = max(low, high - back)
            found = _positions(consumer, TopicPartition(self._topic, partition, start), high)
            if found or start == low:
                return max(found, key=lambda held: held.position, default=None)
            back *= 4

    async def deliver(self, events: Sequence[Event]) -> None:
        producer = self._producer
        if producer is None:
            raise SinkUnavailable("the Kafka sink is not open")
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": self._topic,
            "messaging.batch.message_count": len(events),
        }
        try:
            with tracing.delivery(self.name, attributes, [e.traceparent for e in events]):
                await self._call(_transaction, producer, self._topic, events)
        except KafkaException as e:
            # The relay closes the sink and opens a fresh producer.
            raise SinkUnavailable(f"Kafka at {self._servers}: {e.args[0]}") from e

    async def ping(self) -> None:
        # A producer of its own, kept across the relay's close and open: the
        # relay's exists only on the worker holding the relay lease, and is
        # replaced after every failure. Never transactional (its
        # transactional.id would fence the relay); it asks for the topic
        # only, without creating it: a probe changes nothing, and the
        # relay's first send creates the topic as before.
        if self._pinger is None:
            self._pinger = Producer({"bootstrap.servers": self._servers, "allow.auto.create.topics": False})
        try:
            await asyncio.to_thread(self._pinger.list_topics, self._topic, timeout=PING_SECONDS)
        except KafkaException as e:
            raise SinkUnavailable(f"Kafka at {self._servers}: {e.args[0]}") from e

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            # Nothing is lost if this fails: what is not committed is aborted.
            with contextlib.suppress(SinkUnavailable):
                await self._call(producer.flush, TIMEOUT_SECONDS)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=False)


def _transaction(producer: Producer, topic: str, events: Sequence[Event]) -> None:
    producer.begin_transaction()
    try:
        for event in events:
            message = message_of(event)
            headers: list[tuple[str, str | bytes | None]] = [
                *message.headers,
                ("position", str(message.position).encode()),
            ]
            deadline = time.monotonic() + TIMEOUT_SECONDS
            while True:
                try:
                    producer.produce(topic, key=message.key, value=message.value, headers=headers)
                    break
                except BufferError:
                    # The local queue is full: let librdkafka send some.
                    if time.monotonic() > deadline:
                        raise KafkaException(f"the producer's queue stayed full for {TIMEOUT_SECONDS:g} s") from None
                    producer.poll(0.1)
        producer.commit_transaction(TIMEOUT_SECONDS)
    except BaseException:
        # Fenced or down: the broker aborts it, and the relay starts over.
        with contextlib.suppress(KafkaException):
            producer.abort_transaction(TIMEOUT_SECONDS)
        raise


def _positions(consumer: Consumer, start: TopicPartition, high: int) -> list[Held]:
    """The events (`position` and `event_id` headers) of the committed
    messages from `start` to the partition's end `high` (read_committed skips
    aborted ones and markers)."""
    if start.offset >= high:
        return []
    consumer.assign([start])
    found: list[Held] = []
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                # Past the last record (a marker is not delivered, but the
                # position moves over it): the end is reached.
                [at] = consumer.position([TopicPartition(start.topic, start.partition)])
                if at.offset >= high:
                    return found
                continue
            if message.error() is not None:
                raise KafkaException(message.error())
            headers = dict(_headers(message))
            if "position" in headers:
                found.append(Held(int(headers["position"]), headers.get("event_id", b"").decode()))
            if (message.offset() or 0) >= high - 1:
                return found
        raise KafkaException(f"{start.topic}[{start.partition}]: its end was not reached in {TIMEOUT_SECONDS:g} s")
    finally:
        consumer.unassign()


def _headers(message: Any) -> list[tuple[str, bytes]]:
    return list(message.headers() or [])
