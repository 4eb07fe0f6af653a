"""A batch job survives `kill -9` of the server mid-job: after a restart it
resumes by itself and ends with exact counts and every valid row dispatched
exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from grpc import aio

from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.store.sqlite import DATABASE_NAME

from ..wire.batches_client import Client, status

BATCHGRPC = str(Path(sys.executable).parent / "batchgrpc")
ROWS = 300_000


@asynccontextmanager
async def serve(data_dir: Path, logs: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, str]]:
    """The server as a process; its output goes to `logs`.out and .err, so it
    never blocks on a full pipe."""
    env = {**os.environ, "BATCHGRPC_JOB_CHUNK_ROWS": "2000"}
    out, err = logs.with_suffix(".out"), logs.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            BATCHGRPC,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
    try:
        async with asyncio.timeout(30):
            while True:
                assert proc.returncode is None, err.read_text()
                lines = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
                if listening := [e for e in lines if e["msg"] == "listening"]:
                    break
                await asyncio.sleep(0.05)
        yield proc, int(listening[0]["port"]), out.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def content() -> bytes:
    lines = ["id,email,event_name"]
    for i in range(1, ROWS + 1):
        # Every seventh row has an address the rule refuses.
        lines.append(f"{i},{'bad' if i % 7 == 0 else f'u{i}@example.com'},e")
    return ("\n".join(lines) + "\n").encode()


async def test_a_job_killed_mid_way_resumes_and_dispatches_each_row_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rule = batch_job_pb2.Column(type="FULL_NAME_MATCH", name="email", value_type="EMAIL")
    async with serve(data, tmp_path / "first") as (proc, port, stdout):
        match = re.search(r"token:\s+(bgk_\S+)", stdout)
        assert match, stdout
        token = match.group(1)
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = Client(channel, token)
            asset = await client.upload(content(), chunk_size=1 << 20)
            job = await client.create(asset.id, columns=[rule])
            seen = await client.wait_for(job.id, lambda j: status(j) == "IN_PROGRESS" and j.rows_read > 0)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert seen.rows_read < ROWS

    with sqlite3.connect(data / DATABASE_NAME) as db:
        at_kill = db.execute("SELECT status, rows_read FROM batch_jobs WHERE id = ?", (job.id,)).fetchone()
    assert at_kill[0] == "IN_PROGRESS"
    assert seen.rows_read <= at_kill[1] < ROWS

    async with (
        serve(data, tmp_path / "second") as (proc, port, _),
        aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        client = Client(channel, token)
        done = await client.wait(job.id)  # nobody asked it to go on: it resumed by itself
        failed = ROWS // 7
        assert (status(done), done.rows_read, done.success_rows, done.failed_rows) == (
            "DONE",
            ROWS,
            ROWS - failed,
            failed,
        )
        proc.send_signal(signal.SIGTERM)
        await proc.wait()

    with sqlite3.connect(data / DATABASE_NAME) as db:
        events, ids, rows = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT event_id), COUNT(DISTINCT row_number) FROM events WHERE job_id = ?",
            (job.id,),
        ).fetchone()
        assert events == ids == rows == ROWS - failed
        assert db.execute(
            "SELECT COUNT(*) FROM events WHERE job_id = ? AND row_number % 7 = 0", (job.id,)
        ).fetchone() == (0,)
        errors, error_rows = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT row_number) FROM row_errors WHERE job_id = ?", (job.id,)
        ).fetchone()
        assert errors == error_rows == failed
    resumed = [json.loads(line) for line in (tmp_path / "second.err").read_text().splitlines() if line.startswith("{")]
    assert any(e["msg"] == "resuming" for e in resumed)
