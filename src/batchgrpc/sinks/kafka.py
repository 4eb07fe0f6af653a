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

librdkafka's calls block; each runs on a thread, off the event loop. Any
failure is `SinkUnavailable`: the relay closes the sink, waits, opens a
fresh producer and goes on from the recorded position.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from batchgrpc.sinks import SinkUnavailable
from batchgrpc.sinks.message import message_of
from batchgrpc.store import Event

#: Seconds a blocking Kafka call may take before the sink counts as down.
TIMEOUT_SECONDS = 10.0
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
        self._pinger: Producer | None = None

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
            await asyncio.to_thread(producer.init_transactions, TIMEOUT_SECONDS)
        except KafkaException as e:
            raise SinkUnavailable(f"Kafka at {self._servers}: {e.args[0]}") from e
        self._producer = producer

    async def recover(self) -> int:
        try:
            return await asyncio.to_thread(self._highest_position)
        except KafkaException as e:
            raise SinkUnavailable(f"Kafka at {self._servers}: {e.args[0]}") from e

    def _highest_position(self) -> int:
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
                return 0  # no topic yet: nothing delivered
            return max((self._last_in(consumer, p) for p in topic.partitions), default=0)
        finally:
            consumer.close()

    def _last_in(self, consumer: Consumer, partition: int) -> int:
        """The position of the last committed message of one partition (0: none)."""
        low, high = consumer.get_watermark_offsets(
            TopicPartition(self._topic, partition), timeout=TIMEOUT_SECONDS, cached=False
        )
        back = _LOOK_BACK
        while True:
            start = max(low, high - back)
            found = _positions(consumer, TopicPartition(self._topic, partition, start), high)
            if found or start == low:
                return max(found, default=0)
            back *= 4

    async def deliver(self, events: Sequence[Event]) -> None:
        producer = self._producer
        if producer is None:
            raise SinkUnavailable("the Kafka sink is not open")
        try:
            await asyncio.to_thread(_transaction, producer, self._topic, events)
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
            await asyncio.to_thread(producer.flush, TIMEOUT_SECONDS)


def _transaction(producer: Producer, topic: str, events: Sequence[Event]) -> None:
    producer.begin_transaction()
    try:
        for event in events:
            message = message_of(event)
            headers: list[tuple[str, str | bytes | None]] = [
                *message.headers,
                ("position", str(message.position).encode()),
            ]
            while True:
                try:
                    producer.produce(topic, key=message.key, value=message.value, headers=headers)
                    break
                except BufferError:
                    # The local queue is full: let librdkafka send some.
                    producer.poll(0.1)
        producer.commit_transaction(TIMEOUT_SECONDS)
    except BaseException:
        # Fenced or down: the broker aborts it, and the relay starts over.
        with contextlib.suppress(KafkaException):
            producer.abort_transaction(TIMEOUT_SECONDS)
        raise


def _positions(consumer: Consumer, start: TopicPartition, high: int) -> list[int]:
    """The `position` headers of the committed messages from `start` to the
    partition's end `high` (read_committed skips aborted ones and markers)."""
    if start.offset >= high:
        return []
    consumer.assign([start])
    found: list[int] = []
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
            found += [int(v) for k, v in _headers(message) if k == "position"]
            if (message.offset() or 0) >= high - 1:
                return found
        raise KafkaException(f"{start.topic}[{start.partition}]: its end was not reached in {TIMEOUT_SECONDS:g} s")
    finally:
        consumer.unassign()


def _headers(message: Any) -> list[tuple[str, bytes]]:
    return list(message.headers() or [])
