"""The Kafka sink against the real broker `make test` starts: each relay batch
one transaction, a read_committed consumer sees every event once, a relay
that opens fences off the one before and finds on the topic what it left,
and a server with `--sink kafka://` finishes a batch job once Kafka has
every one of its events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from grpc import aio

from batchgrpc import server
from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.leases import Leases
from batchgrpc.sinks import Held, SinkUnavailable, kafka, open_sink
from batchgrpc.sinks.kafka import KafkaSink
from batchgrpc.sinks.relay import Relay
from batchgrpc.store import Event
from batchgrpc.store.sqlite import DATABASE_NAME, SqliteStore
from tests.servers import kafka_bootstrap

from ..conftest import Harness, eventually, make_config
from .batches_client import Client, status

CSV = b"email,event_name\n" + b"".join(b"p%d@example.com,signup\n" % i for i in range(1500))


def new_topic(partitions: int = 3) -> str:
    name = f"events-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    [future] = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values()
    future.result(timeout=30)
    return name


def committed(topic: str, expected: int, *, seconds: float = 60) -> list[dict[str, object]]:
    """Every message a read_committed consumer sees on `topic`, read until
    `expected` arrived and a quiet second after (so extras would show)."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap(),
            "group.id": f"test-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[dict[str, object]] = []
    deadline = time.monotonic() + seconds
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                if len(seen) >= expected:
                    quiet_until = quiet_until or time.monotonic() + 1.0
                    if time.monotonic() > quiet_until:
                        break
                continue
            assert message.error() is None, message.error()
            headers = {k: v.decode() for k, v in message.headers() or []}
            seen.append({"key": message.key().decode(), "value": json.loads(message.value()), "headers": headers})
    finally:
        consumer.close()
    return seen


def event(n: int, account: str = "acme") -> Event:
    return Event(
        event_id=f"{n:032x}",
        account=account,
        source="TRACKING",
        event_name="viewed",
        event_time=1_790_000_000.0 + n,
        data=json.dumps({"n": n}),
        identity=f"user-{n}@example.com",
        position=n,
    )


async def test_batches_are_transactions_read_once_and_recover_finds_the_last_position() -> None:
    topic = new_topic()
    sink = KafkaSink(kafka_bootstrap(), topic)
    await sink.open()
    try:
        assert await sink.recover() is None
        await sink.deliver([event(n) for n in range(1, 6)])
        await sink.deliver([event(n, "other") for n in range(6, 9)])
        assert await sink.recover() == Held(8, f"{8:032x}")
    finally:
        await sink.close()
    seen = await asyncio.to_thread(committed, topic, 8)
    assert sorted(int(m["headers"]["position"]) for m in seen) == list(range(1, 9))
    by_id = {m["headers"]["event_id"]: m for m in seen}
    assert len(by_id) == 8
    first = by_id[f"{1:032x}"]
    # The contract's message: key, headers, and the event as ListEvents gives it.
    assert first["key"] == "acme/user-1@example.com"
    assert first["headers"] == {"event_id": f"{1:032x}", "account": "acme", "source": "TRACKING", "position": "1"}
    value = first["value"]
    assert isinstance(value, dict)
    assert (value["event_name"], value["account"], value["data"]) == ("viewed", "acme", {"n": 1})


async def test_a_relay_on_a_topic_another_store_wrote_sends_every_event_of_its_own(tmp_path: Path) -> None:
    # A new database on an old topic: its positions start over below the
    # topic's, which must not pass for its own.
    topic = new_topic(partitions=1)
    other = KafkaSink(kafka_bootstrap(), topic)
    await other.open()
    try:
        await other.deliver([event(n) for n in range(1, 21)])
    finally:
        await other.close()
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    try:
        await store.events.append([event(n) for n in range(101, 106)])
        relay = Relay(store.events, KafkaSink(kafka_bootstrap(), topic), Leases(store.leases, 5.0))
        relay.start()

        async def caught_up() -> bool:
            return await store.events.delivered(f"kafka:{topic}") == 5

        try:
            await eventually(caught_up, seconds=60)
        finally:
            await relay.stop()
    finally:
        await store.close()
    seen = await asyncio.to_thread(committed, topic, 25)
    assert [(m["headers"]["position"], m["headers"]["event_id"]) for m in seen[20:]] == [
        (str(n - 100), f"{n:032x}") for n in range(101, 106)
    ]


async def test_a_new_relay_fences_the_old_and_drops_what_it_left_uncommitted() -> None:
    topic = new_topic()
    first = KafkaSink(kafka_bootstrap(), topic)
    await first.open()
    await first.deliver([event(n) for n in range(1, 4)])
    # A relay killed mid-send: its transaction holds position 99, never committed.
    zombie = Producer({"bootstrap.servers": kafka_bootstrap(), "transactional.id": f"batchgrpc-relay.{topic}"})
    await asyncio.to_thread(zombie.init_transactions, 30)
    zombie.begin_transaction()
    zombie.produce(topic, key=b"acme/x", value=b"{}", headers=[("position", b"99")])
    await asyncio.to_thread(zombie.flush, 30)
    second = KafkaSink(kafka_bootstrap(), topic)
    await second.open()  # aborts the zombie's transaction
    try:
        assert await second.recover() == Held(3, f"{3:032x}")
        await second.deliver([event(4)])
        # The first relay, fenced off, can deliver nothing more.
        with pytest.raises(SinkUnavailable):
            await first.deliver([event(5)])
    finally:
        await second.close()
        await first.close()
    seen = await asyncio.to_thread(committed, topic, 4)
    assert sorted(int(m["headers"]["position"]) for m in seen) == [1, 2, 3, 4]


async def test_a_call_that_hangs_is_given_up_and_a_fresh_producer_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    topic = new_topic()
    sink = KafkaSink(kafka_bootstrap(), topic)
    await sink.open()
    await sink.deliver([event(1)])
    monkeypatch.setattr(kafka, "WATCHDOG_SECONDS", 0.3)
    started = time.monotonic()
    # A librdkafka call that never returns, as one on the sink's thread would.
    with pytest.raises(SinkUnavailable, match="did not return"):
        await sink._call(time.sleep, 5)
    assert time.monotonic() - started < 2
    monkeypatch.setattr(kafka, "WATCHDOG_SECONDS", 60.0)
    # The relay's next round: a new producer, on a new thread, beside the hung one.
    await sink.close()
    await sink.open()
    try:
        assert await sink.recover() == Held(1, f"{1:032x}")
        await sink.deliver([event(2)])
    finally:
        await sink.close()
    seen = await asyncio.to_thread(committed, topic, 2)
    assert sorted(int(m["headers"]["position"]) for m in seen) == [1, 2]


async def test_an_unreachable_broker_is_sink_unavailable() -> None:
    sink = open_sink("kafka://127.0.0.1:1/events")
    assert isinstance(sink, KafkaSink)
    with pytest.raises(SinkUnavailable, match=r"127\.0\.0\.1:1"):
        await sink.open()


@pytest.fixture
async def kafka_served(tmp_path: Path) -> AsyncIterator[tuple[Harness, str]]:
    topic = new_topic()
    config = make_config(tmp_path / "data", sink=f"kafka://{kafka_bootstrap()}/{topic}", job_chunk_rows=500)
    running = await server.start(config)
    async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield Harness(running, config, channel), topic
    await server.stop(running, 0.5)


async def test_a_job_is_done_once_kafka_has_each_of_its_events_once(kafka_served: tuple[Harness, str]) -> None:
    harness, topic = kafka_served
    client = Client(harness.channel, harness.admin.token)
    asset = await client.upload(CSV)
    job = await client.create(asset.id, event_name="signup")
    seen = []
    async with asyncio.timeout(90):
        request = batch_job_pb2.WatchBatchJobRequest(batch_id=job.id)
        async for update in client.jobs.WatchBatchJob(request, metadata=client.metadata):
            seen.append(status(update.batch_job))
            if seen[-1] == "DONE":
                break
    assert seen[-1] == "DONE"
    logged = await client.events_of()
    delivered = await asyncio.to_thread(committed, topic, len(logged))
    # Every event of the log once, the job's 1,500 rows among them.
    assert sorted(m["headers"]["event_id"] for m in delivered) == sorted(e.event_id for e in logged)
    rows = [m for m in delivered if m["headers"]["source"] == "BATCH_JOB"]
    assert len(rows) == 1500
    assert {m["key"] for m in rows} >= {"default/p0@example.com", "default/p1499@example.com"}
