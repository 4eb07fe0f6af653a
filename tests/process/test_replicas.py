"""Two `batchgrpc serve` processes on one data directory are two replicas of
one store. A batch job and a stream of bulk requests run across them; the
replica holding the job is killed with SIGKILL mid-run; the other takes the
job over from its checkpoint and finishes it, with exact counts and no event
dispatched twice, and every bulk job either replica acknowledged is applied
once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

from grpc import aio

from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc as bulk_grpc
from batchgrpc.store.sqlite import DATABASE_NAME

from ..conftest import REVISION, eventually
from ..hostile.served import Served, served
from ..wire.batches_client import Client, status
from ..wire.test_bulk import body_of, one_event, request

ROWS = 200_000
REPLICA = {"BATCHGRPC_JOB_CHUNK_ROWS": "2000"}
ARGS = ("--workers", "1", "--lease-seconds", "2")


def content() -> bytes:
    lines = ["id,email,event_name"]
    for i in range(1, ROWS + 1):
        lines.append(f"{i},{'bad' if i % 5 == 0 else f'u{i}@example.com'},e")
    return ("\n".join(lines) + "\n").encode()


def bulk_request(n: int) -> bulk_pb2.CreateEventBulkCreateJobRequest:
    # 20 profiles, one event each, every event distinct.
    items = [one_event(f"b{n}-{k}@example.com", "Viewed", "2026-11-01T10:00:00Z", f"u-{n}-{k}") for k in range(20)]
    return request(body_of(*items))


async def send_bulk(replica: Served, n: int) -> str | None:
    """The job id the replica acknowledged, or None when it did not answer."""
    stub = bulk_grpc.EventBulkCreateJobServiceStub(replica.channel)
    metadata = (("authorization", f"Klaviyo-API-Key {replica.token}"), REVISION)
    try:
        response = await stub.CreateEventBulkCreateJob(bulk_request(n), metadata=metadata, timeout=10)
    except aio.AioRpcError:
        return None
    return response.event_bulk_create_job.id


async def test_a_replica_killed_mid_job_leaves_the_other_to_finish_it(tmp_path: Path) -> None:
    rule = batch_job_pb2.Column(type="FULL_NAME_MATCH", name="email", value_type="EMAIL")
    acknowledged: dict[str, list[str]] = {"a": [], "b": []}
    async with (
        served(tmp_path, env=REPLICA, args=ARGS, name="a") as a,
        served(tmp_path, env=REPLICA, args=ARGS, name="b", again=a) as b,
    ):
        on_a, on_b = Client(a.channel, a.token), Client(b.channel, b.token)
        asset = await on_a.upload(content(), chunk_size=1 << 20)
        job = await on_a.create(asset.id, columns=[rule])  # A has a free slot: A holds it

        async def stream() -> None:
            for n in range(40):
                name, replica = ("a", a) if n % 2 else ("b", b)
                if (job_id := await send_bulk(replica, n)) is not None:
                    acknowledged[name].append(job_id)
                await asyncio.sleep(0.02)

        streaming = asyncio.create_task(stream())
        # B's watch follows the progress A makes.
        seen = await on_b.wait_for(job.id, lambda j: status(j) == "IN_PROGRESS" and j.rows_read >= 10_000)

        async def a_answered() -> bool:
            return len(acknowledged["a"]) >= 3

        await eventually(a_answered, seconds=20)
        a.proc.send_signal(signal.SIGKILL)
        await a.proc.wait()
        await streaming
        done = await on_b.wait(job.id)
        took_over = [e for e in b.log_lines() if e["msg"] == "taking up" and e.get("job_id") == job.id]
    assert seen.rows_read < ROWS
    assert took_over, "B never took the job over: it finished on A, and the test proves nothing"
    failed = ROWS // 5
    assert (status(done), done.rows_read, done.success_rows, done.failed_rows) == ("DONE", ROWS, ROWS - failed, failed)
    assert len(acknowledged["b"]) == 20
    assert 3 <= len(acknowledged["a"]) < 20  # A answered some, then was killed
    applied = acknowledged["a"] + acknowledged["b"]

    with sqlite3.connect(a.data_dir / DATABASE_NAME) as db:
        # A batch row's event is keyed by (job, row): once each.
        events, rows = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT row_number) FROM events WHERE job_id = ?", (job.id,)
        ).fetchone()
        assert events == rows == ROWS - failed
        errors = db.execute("SELECT COUNT(*), COUNT(DISTINCT row_number) FROM row_errors WHERE job_id = ?", (job.id,))
        assert errors.fetchone() == (failed, failed)
        marks = ",".join("?" * len(applied))
        bulk = db.execute(
            f"SELECT status, accepted_count, deduplicated_count FROM bulk_jobs WHERE id IN ({marks})", applied
        ).fetchall()
        assert bulk == [("COMPLETE", 20, 0)] * len(applied)
        bulk_events = db.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT unique_id) FROM events WHERE job_id IN ({marks})", applied
        ).fetchone()
        assert bulk_events == (20 * len(applied), 20 * len(applied))
