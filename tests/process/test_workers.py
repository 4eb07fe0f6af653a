"""`batchgrpc serve --workers N` as real processes: a supervisor and its
workers on one port and one store, what happens when any of them dies, two
`serve` processes (replicas) on one data directory, the `keys` commands on a
store named by URL, and the start-up failures."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc import aio

from batchgrpc.events.v1 import event_pb2, event_pb2_grpc
from batchgrpc.store.sqlite import DATABASE_NAME
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import REVISION, rich_error
from ..hostile.served import Served, served
from ..wire.batches_client import Client, status

BATCHGRPC = str(Path(sys.executable).parent / "batchgrpc")
#: Short drains, so that stopping tests stay quick.
GRACE = {"BATCHGRPC_GRACE_PERIOD_SECONDS": "1"}


def listening(server: Served) -> dict[str, Any]:
    (entry,) = [e for e in server.log_lines() if e["msg"] == "listening"]
    return entry


def rpc_pids(server: Served) -> set[int]:
    """The pids of the processes that logged an answered call."""
    return {int(e["pid"]) for e in server.log_lines() if e["msg"] == "rpc"}  # type: ignore[call-overload]


def parent_of(pid: int) -> int:
    (line,) = [x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("PPid:")]
    return int(line.split()[1])


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its reaper counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)


async def fresh_call(server: Served, token: str | None = None) -> tracking_pb2.GetSystemTimeResponse:
    """One call on a channel of its own: a new connection, which the kernel
    hands to one of the listening workers."""
    async with aio.insecure_channel(server.address) as channel:
        return await tracking_pb2_grpc.TrackingServiceStub(channel).GetSystemTime(
            tracking_pb2.GetSystemTimeRequest(project_token="default"),
            metadata=(("authorization", f"Bearer {token or server.token}"),),
            timeout=10,
        )


async def calls_until_answered_by(server: Served, pids: set[int], most: int = 300) -> int:
    """Fresh calls until each of `pids` has answered one; returns how many."""
    for count in range(1, most + 1):
        assert (await fresh_call(server)).success
        if pids <= rpc_pids(server):
            return count
    raise AssertionError(f"{most} fresh calls were answered by {rpc_pids(server)}, never by all of {pids}")


async def track(server: Served, metric: str, batches: int, per_batch: int) -> None:
    """`batches` tracking batches, each on a fresh channel, `per_batch`
    events of `metric` each."""
    for b in range(batches):
        request = tracking_pb2.BatchRequest(project_token="default")
        commands = [
            {
                "name": "customers/events",
                "data": {"customer_ids": {"registered": f"c{b}-{i}"}, "event_type": metric, "timestamp": 1.8e9 + i},
            }
            for i in range(per_batch)
        ]
        json_format.ParseDict({"commands": commands}, request)
        async with aio.insecure_channel(server.address) as channel:
            response = await tracking_pb2_grpc.TrackingServiceStub(channel).Batch(
                request, metadata=server.metadata, timeout=30
            )
        assert response.success
        assert [r.success for r in response.results] == [True] * per_batch


async def events_of(server: Served, metric: str) -> list[event_pb2.Event]:
    """Every event of `metric`, page by page, through a fresh channel."""
    events: list[event_pb2.Event] = []
    token = ""
    async with aio.insecure_channel(server.address) as channel:
        stub = event_pb2_grpc.EventServiceStub(channel)
        while True:
            page = await stub.ListEvents(
                event_pb2.ListEventsRequest(metric=metric, page_size=1000, page_token=token),
                metadata=(*server.metadata, REVISION),
                timeout=30,
            )
            events.extend(page.events)
            if not (token := page.next_page_token):
                return events


async def stop(server: Served) -> int:
    server.proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(server.proc.wait(), 20)


async def test_two_workers_share_the_port_the_store_and_the_first_key(tmp_path: Path) -> None:
    async with served(tmp_path, workers=2, env=GRACE) as server:
        entry = listening(server)
        pids = set(entry["worker_pids"])
        assert entry["workers"] == 2
        assert len(pids) == 2
        assert server.proc.pid not in pids
        assert {parent_of(pid) for pid in pids} == {server.proc.pid}, "the supervisor's own children"
        starts = [e for e in server.log_lines() if e["msg"] == "worker serving"]
        assert {e["pid"] for e in starts} == pids
        assert all(e["port"] == server.port for e in starts)
        # The supervisor made the first key, once, before any worker started.
        stdout = server.logs.with_suffix(".out").read_text()
        assert stdout.count("token:") == 1

        # Fresh connections land on both workers, and the one key works on both.
        await calls_until_answered_by(server, pids)
        answered = [e for e in server.log_lines() if e["msg"] == "rpc"]
        assert {e["pid"] for e in answered} == pids
        assert {e["code"] for e in answered} == {"OK"}

        # Writes through either worker land in the one store, each once.
        metric = f"m-{uuid.uuid4().hex[:8]}"
        await track(server, metric, batches=40, per_batch=25)
        events = await events_of(server, metric)
        assert len(events) == 40 * 25
        assert len({e.event_id for e in events}) == 40 * 25
        tracked_by = {e["pid"] for e in server.log_lines() if e["msg"] == "rpc" and e["method"].endswith("/Batch")}
        assert tracked_by == pids, "both workers wrote"

        assert await stop(server) == 0
        assert all(gone(pid) for pid in pids)
        stopped = {e["pid"] for e in server.log_lines() if e["msg"] == "stopped"}
        assert stopped == pids | {server.proc.pid}, "every worker drained, then the supervisor"


async def test_a_killed_worker_is_replaced_and_calls_go_on(tmp_path: Path) -> None:
    async with served(tmp_path, workers=2, env=GRACE) as server:
        first, second = listening(server)["worker_pids"]
        os.kill(first, signal.SIGKILL)
        await until(lambda: any(e["msg"] == "worker started" for e in server.log_lines()), 20, "a replacement started")
        (died,) = [e for e in server.log_lines() if e["msg"] == "worker died"]
        assert (died["worker_pid"], died["exit"]) == (first, "was killed by SIGKILL")
        (started,) = [e for e in server.log_lines() if e["msg"] == "worker started"]
        new = int(started["worker_pid"])
        assert new not in (first, second)
        await until(
            lambda: any(e["msg"] == "worker serving" and e["pid"] == new for e in server.log_lines()),
            30,
            "the replacement serves",
        )
        # Every call succeeds, and the new worker answers some of them.
        await calls_until_answered_by(server, {new})
        assert (await fresh_call(server)).success
        assert rpc_pids(server) <= {second, new}
        assert await stop(server) == 0
        assert gone(second)
        assert gone(new)


async def test_a_worker_that_keeps_failing_is_restarted_ever_more_slowly(tmp_path: Path) -> None:
    async with served(tmp_path, workers=2, env=GRACE) as server:
        first, _ = listening(server)["worker_pids"]
        # A worker needs the pepper file its supervisor made: without it,
        # every replacement exits at once.
        pepper = server.data_dir / "pepper"
        saved = pepper.read_bytes()
        pepper.unlink()
        os.kill(first, signal.SIGKILL)

        def deaths() -> list[dict[str, Any]]:
            return [e for e in server.log_lines() if e["msg"] == "worker died"]

        await until(lambda: len(deaths()) >= 4, 60, "four deaths")
        delays = [d["restart_in_seconds"] for d in deaths()[:4]]
        # The first (a SIGKILL) may have come after the worker had run long
        # enough to be replaced at once; those after it came at once.
        assert delays[1] > 0, delays
        assert all(later == 2 * earlier for earlier, later in itertools.pairwise(delays[1:])), delays
        assert deaths()[0]["exit"] == "was killed by SIGKILL"
        assert all(d["exit"] == "exited with code 1" for d in deaths()[1:4])
        err = server.logs.with_suffix(".err").read_text()
        assert f"pepper file {pepper} does not exist" in err

        pepper.write_bytes(saved)
        await until(
            lambda: sum(e["msg"] == "worker serving" for e in server.log_lines()) == 3, 60, "a replacement serves"
        )
        assert (await fresh_call(server)).success
        assert await stop(server) == 0


async def test_the_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    async with served(tmp_path, workers=2, env=GRACE) as server:
        pids = listening(server)["worker_pids"]
        server.proc.send_signal(signal.SIGKILL)
        await server.proc.wait()
        await until(lambda: all(gone(pid) for pid in pids), 20, "every worker exited")
        stopped = {e["pid"] for e in server.log_lines() if e["msg"] == "stopped"}
        assert stopped == set(pids), "each drained (a SIGTERM from the kernel), none was killed"


async def test_two_serve_processes_on_one_data_directory_are_replicas(tmp_path: Path) -> None:
    async with (
        served(tmp_path, workers=2, env=GRACE, name="a") as a,
        served(tmp_path, workers=2, env=GRACE, name="b", again=a) as b,
    ):
        assert a.port != b.port
        assert "token:" not in b.logs.with_suffix(".out").read_text(), "the first key exists: b makes none"
        metric = f"m-{uuid.uuid4().hex[:8]}"
        await asyncio.gather(track(a, metric, batches=10, per_batch=20), track(b, metric, batches=10, per_batch=20))
        from_a, from_b = await events_of(a, metric), await events_of(b, metric)
        assert len(from_a) == 2 * 10 * 20
        assert sorted(e.event_id for e in from_a) == sorted(e.event_id for e in from_b)
        assert await stop(a) == 0
        # b goes on alone on the same store.
        assert len(await events_of(b, metric)) == 2 * 10 * 20
        assert await stop(b) == 0


def keys(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BATCHGRPC, "keys", *args], capture_output=True, text=True, timeout=30, cwd=cwd)


async def test_keys_made_with_store_and_pepper_file_authenticate_on_a_server_given_both(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    store = f"sqlite://{shared / 'keys.db'}"
    pepper = shared / "keys.pepper"
    made = keys("create", "--account", "default", "--scope", "events:set", "--json",
                "--store", store, "--pepper-file", str(pepper), cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    # The database (with its writers' lock file) and the pepper, nothing else.
    assert sorted(p.name for p in shared.iterdir()) == ["keys.db", "keys.db-writer", "keys.pepper"]
    assert pepper.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "batchgrpc-data").exists(), "no data directory was needed"
    listed = keys("list", "--json", "--store", store, "--pepper-file", str(pepper), cwd=tmp_path)
    assert [k["key_id"] for k in json.loads(listed.stdout)] == [key["key_id"]]

    # A server on another data directory, given the same store and pepper.
    flags = ("--store", store, "--pepper-file", str(pepper))
    async with served(tmp_path, workers=2, env=GRACE, name="given", args=flags, token=key["token"]) as server:
        assert (await fresh_call(server, key["token"])).success
        assert "token:" not in server.logs.with_suffix(".out").read_text()
        assert not (server.data_dir / "pepper").exists()
        assert not (server.data_dir / DATABASE_NAME).exists()
        assert await stop(server) == 0

    # The same store with another pepper: the stored hash does not match.
    async with served(tmp_path, workers=1, env=GRACE, name="other", args=("--store", store), token="") as server:
        with pytest.raises(aio.AioRpcError) as caught:
            await fresh_call(server, key["token"])
        assert rich_error(caught.value).info.reason == "INVALID_CREDENTIALS"
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BATCHGRPC, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("sqlite:relative.db", "expected sqlite:///ABSOLUTE/PATH"),
        ("mysql://u@h:1/d", "unknown scheme 'mysql'"),
        ("postgresql://ann:s3cret@db/events", "names no port"),
    ],
)
def test_a_bad_store_url_stops_serve_before_it_starts(tmp_path: Path, store: str, message: str) -> None:
    result = serve(tmp_path, "--workers", "2", "--store", store)
    assert result.returncode == 2
    assert message in result.stderr
    assert "s3cret" not in result.stderr
    assert "worker serving" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_database_that_cannot_be_reached_stops_serve_saying_why(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = serve(tmp_path, "--workers", "2", "--store", f"postgresql://ann:s3cret@127.0.0.1:{port}/events")
    assert result.returncode == 1
    assert f"cannot start: store: cannot open postgresql://ann:***@127.0.0.1:{port}/events" in result.stderr
    assert "Connection refused" in result.stderr
    assert "s3cret" not in result.stderr
    assert "worker serving" not in result.stderr


def test_a_schema_too_new_stops_serve_before_any_worker_starts(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / DATABASE_NAME) as db:
        db.execute("PRAGMA user_version = 999")
    result = serve(tmp_path, "--workers", "2")
    assert result.returncode == 1
    assert "cannot start: database schema version 999 is newer" in result.stderr
    assert "worker serving" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_stops_serve_with_a_clear_message(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(tmp_path, "--workers", workers, "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot start: cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert "worker serving" not in result.stderr
    assert '"listening"' not in result.stderr


async def test_batch_jobs_on_two_workers_each_run_once_with_exact_counts(tmp_path: Path) -> None:
    rows = 20_000
    content = b"email\n" + b"".join(b"w%d@example.com\n" % i for i in range(rows))
    # Tiny chunks, a commit each: a job outlasts the idle worker's poll (a
    # second), which takes up what the busy one queued, even when every
    # connection landed on one worker.
    async with served(tmp_path, workers=2, env={**GRACE, "BATCHGRPC_JOB_CHUNK_ROWS": "20"}) as server:

        async def one(n: int) -> tuple[str, str, int, int]:
            # A channel each: the jobs are created on both workers.
            async with aio.insecure_channel(server.address) as channel:
                client = Client(channel, server.token)
                asset = await client.upload(content, f"part-{n}.csv")
                job = await client.create(asset.id, event_name="signup")
                done = await client.wait(job.id)
                return job.id, status(done), done.rows_read, done.success_rows

        finished = await asyncio.gather(*(one(n) for n in range(6)))
        assert all(result[1:] == ("DONE", rows, rows) for result in finished), finished
        reads = [e for e in server.log_lines() if e["msg"] == "read"]
        assert sorted(str(e["job_id"]) for e in reads) == sorted(job_id for job_id, *_ in finished), "once each"
        assert {e["pid"] for e in reads} == set(listening(server)["worker_pids"]), "both workers read jobs"
        with sqlite3.connect(server.data_dir / DATABASE_NAME) as db:
            for job_id, *_ in finished:
                assert db.execute(
                    "SELECT COUNT(*), COUNT(DISTINCT row_number) FROM events WHERE job_id = ?", (job_id,)
                ).fetchone() == (rows, rows)
        assert await stop(server) == 0
