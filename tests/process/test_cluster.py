"""The deployment the service is built for, end to end: three replicas with
data directories of their own, one PostgreSQL database, every event sent to
one Kafka topic.

A 300,000-row file is uploaded through replica A and its batch job created
on B; bulk requests and tracking batches go to all three meanwhile. The
replica holding the job is killed with SIGKILL mid-job, then the one holding
the Kafka relay is killed while events wait to be sent. Then: the job is
DONE with exact counts, a `read_committed` consumer sees every event of the
store exactly once (by `event_id`) and nothing else, no two replicas held
the job at once, and a rate limit held across the three as one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from google.protobuf import json_format
from grpc import aio

from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.events.v1 import event_pb2, event_pb2_grpc
from batchgrpc.store.postgres import PostgresStore
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc
from tests.servers import kafka_bootstrap, postgres_database

from ..conftest import REVISION, eventually
from ..hostile.served import BATCHGRPC, Served, served
from ..wire.batches_client import Client, status
from .test_replicas import send_bulk

ROWS = 300_000
FAILED = ROWS // 5
#: The read rate limit the three replicas share.
READS_PER_SECOND = 20
PARTITIONS = 3


def content() -> bytes:
    lines = ["id,email,event_name"]
    for i in range(1, ROWS + 1):
        lines.append(f"{i},{'bad' if i % 5 == 0 else f'u{i}@example.com'},e")
    return ("\n".join(lines) + "\n").encode()


def new_topic() -> str:
    name = f"cluster-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    [future] = admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values()
    future.result(timeout=30)
    return name


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, store: str, sink: str) -> AsyncIterator[list[Served]]:
    """Three replicas; A starts first and makes the first key, B and C use it."""
    config = tmp_path / "cluster.toml"
    config.write_text(f'[rate_limits]\nevents_read = "{READS_PER_SECOND}/s"\n')
    args = (
        "--store", store, "--sink", sink, "--pepper-file", str(tmp_path / "pepper"), "--config", str(config),
        "--lease-seconds", "3",
    )  # fmt: skip
    env = {"BATCHGRPC_NO_RATE_LIMITS": "", "BATCHGRPC_JOB_CHUNK_ROWS": "5000"}
    async with (
        served(tmp_path, env=env, args=args, name="a") as a,
        served(tmp_path, env=env, args=args, name="b", token=a.token) as b,
        served(tmp_path, env=env, args=args, name="c", token=a.token) as c,
    ):
        yield [a, b, c]


def alive(replicas: list[Served]) -> list[Served]:
    return [r for r in replicas if r.proc.returncode is None]


def holder(replicas: list[Served], owner: str | None) -> Served | None:
    """The replica whose process an owner string names (`owner.py`)."""
    if owner is None:
        return None
    pid = int(owner.split("/")[-2])
    return next((r for r in replicas if r.proc.pid == pid), None)


async def query(url: str, sql: str, *params: object) -> tuple[object, ...] | None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await (await conn.execute(sql, params)).fetchone()  # type: ignore[arg-type]


async def kill(replica: Served) -> float:
    replica.proc.send_signal(signal.SIGKILL)
    await replica.proc.wait()
    return time.time()


async def track(replica: Served, n: int) -> bool:
    """One tracking batch of 10 events for 5 customers; whether it was answered."""
    request = tracking_pb2.BatchRequest(project_token="default")
    commands = [
        {
            "name": "customers/events",
            "data": {"customer_ids": {"registered": f"t{n}-{k % 5}"}, "event_type": "tracked", "timestamp": 1.7e9 + k},
        }
        for k in range(10)
    ]
    json_format.ParseDict({"commands": commands}, request)
    stub = tracking_pb2_grpc.TrackingServiceStub(replica.channel)
    try:
        response = await stub.Batch(request, metadata=replica.metadata, timeout=10)
    except aio.AioRpcError:
        return False
    assert [r.success for r in response.results] == [True] * 10
    return True


async def read_limit_held(replicas: list[Served], seconds: float = 2.0) -> tuple[int, float]:
    """ListEvents as fast as three clients can, one per replica, for
    `seconds`: the calls allowed and the time it took."""
    allowed = 0
    started = time.monotonic()

    async def reader(replica: Served) -> None:
        nonlocal allowed
        stub = event_pb2_grpc.EventServiceStub(replica.channel)
        while time.monotonic() - started < seconds:
            try:
                await stub.ListEvents(
                    event_pb2.ListEventsRequest(page_size=1), metadata=(*replica.metadata, REVISION), timeout=10
                )
                allowed += 1
            except aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise

    await asyncio.gather(*(reader(r) for r in replicas))
    return allowed, time.monotonic() - started


def topic_event_ids(topic: str, expected: int, *, seconds: float = 180) -> list[str]:
    """The `event_id` of every message a read_committed consumer sees,
    read to the end of every partition once `expected` arrived."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap(),
            "group.id": f"check-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    ids: list[str] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                assert message.error() is None, message.error()
                headers = dict(message.headers() or [])
                ids.append(headers["event_id"].decode())
            if len(ids) >= expected:
                # At the end of every partition (the last stable offset): nothing more is coming.
                ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)]
                positions = [tp.offset for tp in consumer.position([TopicPartition(topic, p) for p in range(3)])]
                if all(pos >= end for pos, end in zip(positions, ends, strict=True)):
                    break
    finally:
        consumer.close()
    return ids


async def store_event_ids(url: str) -> dict[str, int]:
    """Every event in the store, through its own protocol: id -> position."""
    store = await PostgresStore.open(url)
    ids: dict[str, int] = {}
    try:
        position = 0
        while page := await store.events.after(position, limit=10_000):
            for e in page:
                assert e.event_id not in ids, f"event {e.event_id} is in the store twice"
                ids[e.event_id] = e.position
            position = page[-1].position
    finally:
        await store.close()
    return ids


async def test_three_replicas_on_postgresql_and_kafka_survive_a_killed_job_holder_and_relay_owner(
    tmp_path: Path,
) -> None:
    topic = new_topic()
    sink = f"kafka://{kafka_bootstrap()}/{topic}"
    async with postgres_database("cluster") as url:
        async with cluster(tmp_path, url, sink) as replicas:
            a, b, _ = replicas
            asset = await Client(a.channel, a.token).upload(content(), chunk_size=256 << 10)
            rule = batch_job_pb2.Column(type="FULL_NAME_MATCH", name="email", value_type="EMAIL")
            job = await Client(b.channel, b.token).create(asset.id, columns=[rule])

            bulk: list[str] = []
            tracked = 0
            stop = asyncio.Event()

            async def traffic() -> None:
                nonlocal tracked
                n = 0
                while not stop.is_set():
                    for replica in alive(replicas):
                        if (job_id := await send_bulk(replica, n)) is not None:
                            bulk.append(job_id)
                        tracked += await track(replica, n)
                        n += 1
                    await asyncio.sleep(0.05)

            sending = asyncio.create_task(traffic())
            # A's watch follows the progress that B, the job's holder, makes.
            seen = await Client(a.channel, a.token).wait_for(
                job.id, lambda j: status(j) == "IN_PROGRESS" and j.rows_read >= 10_000
            )
            row = await query(url, "SELECT lease_owner FROM batch_jobs WHERE id = %s", job.id)
            assert row is not None
            assert holder(replicas, row[0]) is b  # type: ignore[arg-type]
            allowed, took = await read_limit_held(replicas)

            async def holder_now() -> Served | None:
                row = await query(url, "SELECT lease_owner, rows_read FROM batch_jobs WHERE id = %s", job.id)
                assert row is not None
                owner, rows = row
                found = holder(replicas, owner)  # type: ignore[arg-type]
                if found is None or not isinstance(rows, int) or not 30_000 <= rows < ROWS // 2:
                    return None
                print(f"cluster: killing the job's holder at row {rows}")
                return found

            first = await eventually(holder_now, seconds=120)
            assert first is not None
            killed = {first.proc.pid: await kill(first)}

            async def relay_busy() -> Served | None:
                # The relay's owner while events wait for it: mid-send.
                row = await query(
                    url,
                    "SELECT l.owner, (SELECT max(seq) FROM events) - coalesce((SELECT position FROM sink_positions"
                    " LIMIT 1), 0) FROM leases AS l WHERE l.name LIKE 'relay:%%'",
                )
                if row is None:
                    return None
                owner, waiting = row
                found = holder(alive(replicas), owner)  # type: ignore[arg-type]
                if found is None or not isinstance(waiting, int) or waiting <= 0:
                    return None
                print(f"cluster: killing the relay's owner with {waiting} events waiting")
                return found

            relay_owner = await eventually(relay_busy, seconds=120)
            assert relay_owner is not None
            killed[relay_owner.proc.pid] = await kill(relay_owner)

            survivor = alive(replicas)[0]
            done = await Client(survivor.channel, survivor.token).wait_for(job.id, seconds=300)
            stop.set()
            await sending

            async def relayed_all() -> bool:
                row = await query(
                    url, "SELECT (SELECT max(seq) FROM events) = (SELECT position FROM sink_positions LIMIT 1)"
                )
                return bool(row and row[0])

            try:
                await eventually(relayed_all, seconds=120, every=0.2)
            except TimeoutError:
                relay_log = [e for e in survivor.log_lines() if e.get("logger") == "batchgrpc.relay"]
                position = await query(url, "SELECT position, (SELECT max(seq) FROM events) FROM sink_positions")
                raise AssertionError(f"the relay stopped at {position}; its log: {relay_log[-5:]}") from None
            logs = {r.proc.pid: r.log_lines() for r in replicas}

        # The job: DONE once Kafka had its events, with exact counts.
        assert len(killed) == 2
        assert seen.rows_read < ROWS
        counts = (status(done), done.rows_read, done.success_rows, done.failed_rows)
        assert counts == ("DONE", ROWS, ROWS - FAILED, FAILED)

        # The rate limit: one budget for the three (apart, each would allow its own).
        assert allowed <= READS_PER_SECOND * (1 + took) + 2, (allowed, took)
        assert allowed >= READS_PER_SECOND * took * 0.5, (allowed, took)

        # No job ran in two replicas at once: each take-over came after the
        # holder before it was dead.
        takes = sorted(
            (datetime.datetime.fromisoformat(str(e["time"])).timestamp(), pid)
            for pid, lines in logs.items()
            for e in lines
            if e["msg"] in ("claimed", "taking up") and e.get("job_id") == job.id
        )
        assert len(takes) >= 2, f"the job was never taken over: {takes}"
        for (_, before), (when, after) in itertools.pairwise(takes):
            if after == before:
                continue  # its own lease lapsed and it claimed the job again
            assert before in killed, f"{after} took the job up while {before} still ran"
            assert when >= killed[before] - 0.5

        # Kafka: every event of the store, exactly once, and nothing else.
        stored = await store_event_ids(url)
        sent = await asyncio.to_thread(topic_event_ids, topic, len(stored))
        duplicates = len(sent) - len(set(sent))
        assert duplicates == 0, f"{duplicates} events were delivered twice"
        received = set(sent)
        missing = sorted(position for event_id, position in stored.items() if event_id not in received)
        extra = set(sent) - stored.keys()
        assert not missing, (
            f"{len(missing)} of {len(stored)} stored events never reached Kafka, at positions "
            f"{missing[:3]}...{missing[-3:]}; sink position {await query(url, 'SELECT * FROM sink_positions')}"
        )
        assert not extra, f"{len(extra)} events in Kafka are not in the store"
        print(
            f"cluster: {len(stored)} events ({len(bulk)} bulk jobs, {tracked} tracking batches), "
            f"take-ups {len(takes)}, reads allowed {allowed} in {took:.2f} s"
        )
        assert await query(url, "SELECT count(*) FROM events WHERE job_id = %s", job.id) == (ROWS - FAILED,)
        assert bulk
        assert tracked
        assert await query(url, "SELECT count(*) FROM bulk_jobs WHERE id = ANY(%s) AND status = 'COMPLETE'", bulk) == (
            len(bulk),
        )


async def test_a_key_made_by_the_cli_on_the_database_works_on_every_replica(tmp_path: Path) -> None:
    """`batchgrpc keys create --store postgresql://...` with the replicas' pepper."""
    async with postgres_database("keys") as url:
        pepper = tmp_path / "pepper"
        proc = await asyncio.create_subprocess_exec(
            BATCHGRPC, "keys", "create", "--account", "acme", "--scope", "batches:read", "--json",
            "--store", url, "--pepper-file", str(pepper), "--data-dir", str(tmp_path / "keys-data"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        token = json.loads(out)["token"]
        args = ("--store", url, "--pepper-file", str(pepper))
        async with (
            served(tmp_path, args=args, name="one", token=token) as one,
            served(tmp_path, args=args, name="two", token=token) as two,
        ):
            for replica in (one, two):
                listed = await Client(replica.channel, token).jobs.ListBatchJobs(
                    batch_job_pb2.ListBatchJobsRequest(), metadata=replica.metadata
                )
                assert list(listed.batch_jobs) == []
            # Another pepper makes the same token mean nothing.
            other = ("--store", url, "--pepper-file", str(tmp_path / "other-pepper"))
            async with served(tmp_path, args=other, name="three", token=token) as three:
                with pytest.raises(aio.AioRpcError) as caught:
                    await Client(three.channel, token).jobs.ListBatchJobs(
                        batch_job_pb2.ListBatchJobsRequest(), metadata=three.metadata
                    )
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
