"""The outbox relay and a sink that is not the event log itself: every event
reaches the sink once, in order; a batch job is DISPATCHING until the sink
has its events; a sink that cannot take them loses nothing; a relay that
takes over after a crash asks the sink what it holds and sends nothing twice.
The sink here is the JSON-lines file sink (`--sink file:///PATH`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from grpc import aio

from batchgrpc import server
from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.events.v1 import event_pb2
from batchgrpc.leases import Leases
from batchgrpc.sinks import Held, SinkUnavailable, open_sink
from batchgrpc.sinks.file import FileSink
from batchgrpc.sinks.relay import Relay
from batchgrpc.store import Event
from batchgrpc.store.sqlite import DATABASE_NAME, SqliteStore

from ..conftest import Harness, eventually, make_config
from .batches_client import Client, status

CSV = b"email,event_name\n" + b"".join(b"p%d@example.com,signup\n" % i for i in range(2500))


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


@pytest.fixture
async def sinked(tmp_path: Path) -> AsyncIterator[tuple[Harness, Path]]:
    sink = tmp_path / "sink" / "events.jsonl"
    sink.parent.mkdir()
    config = make_config(tmp_path / "data", sink=f"file://{sink}", job_chunk_rows=1000)
    running = await server.start(config)
    async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield Harness(running, config, channel), sink
    await server.stop(running, 0.5)


async def test_every_event_reaches_the_sink_once_in_order_and_the_job_waits_for_it(
    sinked: tuple[Harness, Path],
) -> None:
    harness, sink = sinked
    client = Client(harness.channel, harness.admin.token)
    asset = await client.upload(CSV)
    job = await client.create(asset.id, event_name="signup")
    seen = []
    async with asyncio.timeout(60):
        request = batch_job_pb2.WatchBatchJobRequest(batch_id=job.id)
        async for update in client.jobs.WatchBatchJob(request, metadata=client.metadata):
            seen.append(status(update.batch_job))
            if seen[-1] == "DONE":
                break
    assert "DISPATCHING" in seen
    assert seen[-1] == "DONE"
    logged = await client.events_of()

    # The finished notification is committed with DONE, and follows.
    async def all_there() -> list[dict[str, object]]:
        found = lines(sink)
        return found if len(found) >= len(logged) else []

    delivered = await eventually(all_there, seconds=10)
    # Once each, in the log's order, positions growing.
    assert [d["headers"]["event_id"] for d in delivered] == [e.event_id for e in logged]
    positions = [d["position"] for d in delivered]
    assert positions == sorted(set(positions))
    rows = [d for d in delivered if d["headers"]["source"] == "BATCH_JOB"]
    assert len(rows) == 2500
    # DONE only once the sink had every row event of the job.
    assert await harness.running.store.events.delivered(f"file:{sink}") >= max(r["position"] for r in rows)


async def test_the_message_is_the_event_as_list_events_returns_it(sinked: tuple[Harness, Path]) -> None:
    harness, sink = sinked
    client = Client(harness.channel, harness.admin.token)
    done = await client.run(b"email,first_name\nann@example.com,Ann\n", event_name="signup")
    assert status(done) == "DONE"
    [logged] = await client.events_of(done.id)
    [line] = [d for d in lines(sink) if d["headers"]["source"] == "BATCH_JOB"]
    value = dict(line["value"])
    assert (value.pop("account"), line["key"]) == ("default", f"default/{logged.identity}")
    assert line["headers"] == {"event_id": logged.event_id, "account": "default", "source": "BATCH_JOB"}
    assert json_format.ParseDict(value, event_pb2.Event()) == logged


async def test_a_sink_that_cannot_take_events_loses_none_and_catches_up(tmp_path: Path) -> None:
    sink = tmp_path / "not-yet" / "events.jsonl"
    config = make_config(tmp_path / "data", sink=f"file://{sink}")
    running = await server.start(config)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            client = Client(channel, running.first_admin_key.token)
            asset = await client.upload(b"email\na@example.com\nb@example.com\n")
            job = await client.create(asset.id, event_name="signup")
            stuck = await client.wait_for(job.id, lambda j: status(j) == "DISPATCHING")
            assert stuck.success_rows == 2
            await asyncio.sleep(1.5)  # the relay retries meanwhile, and fails
            assert status(await client.get(job.id)) == "DISPATCHING"
            sink.parent.mkdir()
            done = await client.wait(job.id)
            assert status(done) == "DONE"
            rows = [d for d in lines(sink) if d["headers"]["source"] == "BATCH_JOB"]
            assert len(rows) == 2
    finally:
        await server.stop(running, 0.5)


def event(n: int) -> Event:
    return Event(
        event_id=f"{n:032x}",
        account="acme",
        source="TRACKING",
        event_name="x",
        event_time=float(n),
        data="{}",
        position=n,
    )


async def test_a_relay_taking_over_sends_nothing_twice(tmp_path: Path) -> None:
    # A relay delivered a batch and died before recording it: the next one
    # must learn from the sink what it holds and go on after it.
    store = await SqliteStore.open(tmp_path / "data" / DATABASE_NAME)
    path = tmp_path / "events.jsonl"
    try:
        await store.events.append([event(n) for n in range(1, 8)])
        first = FileSink(path)
        await first.open()
        await first.deliver(await store.events.after(0, limit=5))
        await first.close()  # "killed": 5 delivered, none recorded
        assert await store.events.delivered(f"file:{path}") == 0
        relay = Relay(store.events, FileSink(path), Leases(store.leases, 5.0))
        relay.start()

        async def caught_up() -> bool:
            return await store.events.delivered(f"file:{path}") == 7

        await eventually(caught_up, seconds=10)
        await relay.stop()
        assert [d["headers"]["event_id"] for d in lines(path)] == [f"{n:032x}" for n in range(1, 8)]
    finally:
        await store.close()


async def relayed(store: SqliteStore, path: Path, events: list[Event]) -> list[dict[str, Any]]:
    """Appends `events` to the store, lets a relay deliver the whole log to
    the file at `path`, and returns the file's lines."""
    await store.events.append(events)
    [*_, newest] = await store.events.after(0, limit=1000)
    relay = Relay(store.events, FileSink(path), Leases(store.leases, 5.0))
    relay.start()

    async def caught_up() -> bool:
        return await store.events.delivered(f"file:{path}") == newest.position

    try:
        await eventually(caught_up, seconds=10)
    finally:
        await relay.stop()
    return lines(path)


async def test_a_relay_on_a_file_another_store_wrote_sends_every_event_of_its_own(tmp_path: Path) -> None:
    # A new database pointed at an old sink: positions start over, and the
    # other store's higher ones must not pass for this one's.
    path = tmp_path / "events.jsonl"
    other = FileSink(path)
    await other.open()
    await other.deliver([event(n) for n in range(1, 8)])
    await other.close()
    store = await SqliteStore.open(tmp_path / "data" / DATABASE_NAME)
    try:
        seen = await relayed(store, path, [event(n) for n in range(101, 104)])
    finally:
        await store.close()
    assert [(d["position"], d["headers"]["event_id"]) for d in seen[7:]] == [
        (n - 100, f"{n:032x}") for n in (101, 102, 103)
    ]


async def test_a_store_restored_from_a_backup_sends_the_events_it_makes_after(tmp_path: Path) -> None:
    # The sink got positions 1-7 of this store; the store was then restored
    # to a backup holding 1-3 (none recorded as delivered), and its next
    # events take positions 4 and 5 again: they must go, not pass for
    # delivered. What the backup held goes again too (the same ids).
    path = tmp_path / "events.jsonl"
    before = FileSink(path)
    await before.open()
    await before.deliver([event(n) for n in range(1, 8)])
    await before.close()
    store = await SqliteStore.open(tmp_path / "data" / DATABASE_NAME)
    try:
        await store.events.append([event(n) for n in range(1, 4)])
        seen = await relayed(store, path, [event(n) for n in (201, 202)])
    finally:
        await store.close()
    assert [(d["position"], d["headers"]["event_id"]) for d in seen[7:]] == [
        *((n, f"{n:032x}") for n in (1, 2, 3)),
        (4, f"{201:032x}"),
        (5, f"{202:032x}"),
    ]


async def test_a_torn_last_line_is_cut_off_and_its_event_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileSink(path)
    await sink.open()
    await sink.deliver([event(1), event(2)])
    await sink.close()
    with path.open("ab") as f:
        f.write(b'{"position":3,"key":"acme/"')  # a crash mid-write
    again = FileSink(path)
    await again.open()
    assert await again.recover() == Held(2, f"{2:032x}")
    await again.deliver([event(3)])
    await again.close()
    assert [d["headers"]["event_id"] for d in lines(path)] == [f"{n:032x}" for n in (1, 2, 3)]


async def test_one_relay_at_a_time_holds_a_file_sink(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first, second = FileSink(path), FileSink(path)
    await first.open()
    with pytest.raises(SinkUnavailable):
        await second.open()
    await first.close()
    await second.open()
    await second.close()


@pytest.mark.parametrize(
    "url",
    ["file://relative/path", "file:///dir/", "kafka://", "kafka://host/topic", "kafka://host:9092/", "nats://x"],
)
def test_sink_urls_that_cannot_work_are_refused(url: str) -> None:
    from batchgrpc.config import ConfigError

    with pytest.raises(ConfigError):
        open_sink(url)
