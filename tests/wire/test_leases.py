"""Leased jobs between two workers on one store: a worker whose lease was
taken over (it stalled: here, its heartbeat never runs) stops writing at its
next chunk, the other reads on from the checkpoint, and the counts are exact.

Two runners with two store connections on one database file, as two
processes have; each is a real `JobRunner` reading a real file."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from batchgrpc.batches.files import DiskFiles
from batchgrpc.batches.runner import Changes, JobRunner, notification
from batchgrpc.leases import Leases
from batchgrpc.sinks import LogSink
from batchgrpc.sinks.relay import Relay
from batchgrpc.store import BatchJob
from batchgrpc.store.sqlite import DATABASE_NAME, SqliteStore

from ..conftest import eventually
from ..store import build

ROWS = 100_000


def job() -> BatchJob:
    return build.job("job_leased", event_name="signup", created_time=1.0, updated_time=1.0)


async def started(store: SqliteStore) -> bool:
    current = await store.jobs.get("job_leased")
    return current is not None and current.rows_read > 0


async def finished(store: SqliteStore) -> BatchJob | None:
    current = await store.jobs.get("job_leased")
    return current if current is not None and current.status == "DONE" else None


async def test_a_worker_whose_lease_was_taken_stops_writing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    files = DiskFiles(tmp_path / "files", 1 << 30)
    files.path("src-job_leased").write_bytes(b"email\n" + b"".join(b"p%d@example.com\n" % i for i in range(ROWS)))
    first, second = await SqliteStore.open(data / DATABASE_NAME), await SqliteStore.open(data / DATABASE_NAME)
    await first.sources.create(build.source("src-job_leased"))

    def runner(store: SqliteStore, leases: Leases) -> JobRunner:
        return JobRunner(
            store,
            files,
            Changes(),
            leases,
            Relay(store.events, LogSink(), leases),
            max_running=1,
            # Small chunks, a commit each: the job outlasts the lease (half
            # a second) and the other worker's poll, whatever the machine.
            chunk_rows=100,
        )

    # The stalled worker: its heartbeat never runs, so its lease runs out
    # while it reads. The other renews its own.
    stalled = runner(first, Leases(first.leases, 0.5, owner="worker-a"))
    healthy_leases = Leases(second.leases, 0.5, owner="worker-b")
    healthy = runner(second, healthy_leases)
    try:
        await first.jobs.create(job(), notification(job(), "batch_job_created", 1.0))
        caplog.set_level(logging.INFO, logger="batchgrpc.jobs")
        stalled.submit("job_leased")
        await eventually(lambda: started(first), every=0.01)
        await healthy_leases.start()
        healthy.start()
        async with asyncio.timeout(60):
            await stalled.wait_idle()
        done = await eventually(lambda: finished(second), seconds=60)
        took_over = [r for r in caplog.records if r.getMessage() == "taking up"]
        stopped = [r for r in caplog.records if r.getMessage() == "stopped"]
        assert took_over, "the job ran to the end on one worker: the test proves nothing"
        assert stopped, "the stalled worker never noticed it lost the lease"
        assert (done.rows_read, done.success_rows, done.failed_rows) == (ROWS, ROWS, 0)
        events = await second.events.after(0, limit=ROWS + 10)
        rows = sorted(e.row_number for e in events if e.source == "BATCH_JOB")
        assert rows == list(range(1, ROWS + 1))
    finally:
        await stalled.stop()
        await healthy.stop()
        await healthy_leases.stop()
        await first.close()
        await second.close()
