"""A batch job survives `kill -9` of the server mid-job: after a restart it
resumes by itself and ends with exact counts and every valid row dispatched
exactly once."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.store.sqlite import DATABASE_NAME

from ..hostile.served import served
from ..wire.batches_client import Client, status

ROWS = 300_000


#: Small chunks, so the kill lands mid-job with checkpoints behind it.
CHUNKS = {"BATCHGRPC_JOB_CHUNK_ROWS": "2000"}


def content() -> bytes:
    lines = ["id,email,event_name"]
    for i in range(1, ROWS + 1):
        # Every seventh row has an address the rule refuses.
        lines.append(f"{i},{'bad' if i % 7 == 0 else f'u{i}@example.com'},e")
    return ("\n".join(lines) + "\n").encode()


async def test_a_job_killed_mid_way_resumes_and_dispatches_each_row_once(tmp_path: Path) -> None:
    rule = batch_job_pb2.Column(type="FULL_NAME_MATCH", name="email", value_type="EMAIL")
    # One process, so that SIGKILL kills the process running the job (a
    # supervisor's workers would drain instead).
    async with served(tmp_path, env=CHUNKS, name="first", workers=1) as first:
        client = Client(first.channel, first.token)
        asset = await client.upload(content(), chunk_size=1 << 20)
        job = await client.create(asset.id, columns=[rule])
        seen = await client.wait_for(job.id, lambda j: status(j) == "IN_PROGRESS" and j.rows_read > 0)
        first.proc.send_signal(signal.SIGKILL)
        await first.proc.wait()
    assert seen.rows_read < ROWS
    data = first.data_dir

    with sqlite3.connect(data / DATABASE_NAME) as db:
        at_kill = db.execute("SELECT status, rows_read FROM batch_jobs WHERE id = ?", (job.id,)).fetchone()
    assert at_kill[0] == "IN_PROGRESS"
    assert seen.rows_read <= at_kill[1] < ROWS

    async with served(tmp_path, env=CHUNKS, name="second", again=first, workers=1) as second:
        client = Client(second.channel, second.token)
        done = await client.wait(job.id)  # nobody asked it to go on: it resumed by itself
        failed = ROWS // 7
        assert (status(done), done.rows_read, done.success_rows, done.failed_rows) == (
            "DONE",
            ROWS,
            ROWS - failed,
            failed,
        )
        second.proc.send_signal(signal.SIGTERM)
        await second.proc.wait()
        resumed = second.log_lines()

    with sqlite3.connect(data / DATABASE_NAME) as db:
        # A batch row's event is keyed by (job, row): once each.
        events, rows = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT row_number) FROM events WHERE job_id = ?", (job.id,)
        ).fetchone()
        assert events == rows == ROWS - failed
        assert db.execute(
            "SELECT COUNT(*) FROM events WHERE job_id = ? AND row_number % 7 = 0", (job.id,)
        ).fetchone() == (0,)
        errors, error_rows = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT row_number) FROM row_errors WHERE job_id = ?", (job.id,)
        ).fetchone()
        assert errors == error_rows == failed
    assert any(e["msg"] == "taking up" for e in resumed)
