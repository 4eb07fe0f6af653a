"""The command line for people (`upload`, `jobs`, `run`, `events send`,
`track send`) as real processes against a real server in the test process,
on real files; on a terminal (a pty) and off one."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batchgrpc import server
from batchgrpc.config import Rate, RateLimitConfig, TlsConfig
from batchgrpc.errors import Api
from batchgrpc.store import EventFilter, JobFilter
from tests.conftest import eventually, make_config
from tests.process.test_cli import BATCHGRPC
from tests.wire.test_tls import Pki, pki  # noqa: F401 - its certificates, for --ca-file

PEOPLE = (
    b"email,first_name,event_name\r\n"
    b"ann@example.com,Ann,signup\r\n"
    b"not-an-email,Bob,signup\r\n"
    b",Eve,\r\n"
    b"cid@example.com,Cid,buy\r\n"
)
EMAIL_RULE = ("--column", "email:REQUIRED_VALUE:EMAIL")
#: What a terminal shows that plain output must not have.
ESCAPE = "\x1b["


@dataclasses.dataclass
class Served:
    running: server.Running
    token: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "BATCHGRPC_SERVER": f"127.0.0.1:{self.running.port}", "BATCHGRPC_TOKEN": self.token}

    async def events_in_store(self, name: str) -> int:
        page = await self.running.store.events.list("default", EventFilter(event_name=name), cursor=None, limit=100_000)
        return len(page.items)


@dataclasses.dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


@contextlib.asynccontextmanager
async def serving(data_dir: Path, **changes: object) -> AsyncIterator[Served]:
    running = await server.start(make_config(data_dir, **changes))
    token = running.first_admin_key.token if running.first_admin_key else ""
    try:
        yield Served(running, token)
    finally:
        await server.stop(running, 0)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path / "data") as s:
        yield s


async def cli(served: Served, *args: str, cwd: Path | None = None) -> Result:
    """Runs `batchgrpc ARGS` to its end, its output piped (not a terminal).
    Asynchronous, so the server in this process goes on serving it."""
    proc = await asyncio.create_subprocess_exec(
        BATCHGRPC, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=served.env, cwd=cwd
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Result(proc.returncode, stdout.decode(), stderr.decode())


def write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


async def test_run_on_a_csv_ends_done_with_exact_counts_in_plain_lines(served: Served, tmp_path: Path) -> None:
    people = write(tmp_path / "people.csv", PEOPLE)
    done = await cli(served, "run", str(people), "--default-event-name", "visit", *EMAIL_RULE, "--json")
    assert done.code == 0, done.stderr
    job = done.json()
    assert isinstance(job, dict)
    assert (job["status"], job["rows_read"], job["success_rows"], job["failed_rows"]) == ("DONE", "4", "2", "2")
    assert job["bytes_read"] == job["bytes_total"] == str(len(PEOPLE))
    assert await served.events_in_store("signup") + await served.events_in_store("buy") == 2
    # Off a terminal: plain lines, the upload's bytes and the job's end among them.
    assert ESCAPE not in done.stderr
    lines = done.stderr.splitlines()
    assert f"upload people.csv: {len(PEOPLE)}/{len(PEOPLE)} bytes (100%) stored" in lines
    assert lines[-1] == f"job {job['id']}: {len(PEOPLE)}/{len(PEOPLE)} bytes (100%) DONE  rows 4  ok 2  failed 2"

    # Without --json: one line a person reads, the id first.
    again = await cli(served, "run", str(people), "--default-event-name", "visit", *EMAIL_RULE)
    assert again.code == 0
    first = again.stdout.splitlines()[0]
    assert first.endswith("DONE  4 rows read, 2 succeeded, 2 failed")
    assert f"batchgrpc jobs errors {first.split()[0]}" in again.stdout


async def test_upload_create_watch_get_list_and_every_row_error(served: Served, tmp_path: Path) -> None:
    people = write(tmp_path / "people.csv", PEOPLE)
    uploaded = await cli(served, "upload", str(people), "--name", "march", "--tag", "crm", "--json")
    assert uploaded.code == 0, uploaded.stderr
    asset = uploaded.json()
    assert isinstance(asset, dict)
    assert (asset["name"], asset["format"], asset["size"], asset["tags"]) == ("march", "CSV", str(len(PEOPLE)), ["crm"])

    created = await cli(
        served,
        "jobs",
        "create",
        "--file-asset",
        asset["id"],
        "--default-event-name",
        "visit",
        *EMAIL_RULE,
        "--event-data",
        "source=cli",
        "--tag",
        "t1",
        "--name",
        "first",
        "--json",
    )
    assert created.code == 0, created.stderr
    job = created.json()
    assert isinstance(job, dict)
    assert (job["name"], job["tags"], job["event_data"]) == ("first", ["t1"], {"source": "cli"})
    assert job["columns"] == [
        {"type": "FULL_NAME_MATCH", "name": "email", "validation_policy": "REQUIRED_VALUE", "value_type": "EMAIL"}
    ]

    watched = await cli(served, "jobs", "watch", job["id"])
    assert watched.code == 0, watched.stderr
    assert watched.stdout.startswith(f"{job['id']}  DONE  4 rows read, 2 succeeded, 2 failed")

    got = await cli(served, "jobs", "get", job["id"], "--json")
    assert got.json()["failed_rows"] == "2"  # type: ignore[index]
    listed = await cli(served, "jobs", "list", "--json", "--tag", "t1")
    assert [j["id"] for j in listed.json()] == [job["id"]]  # type: ignore[attr-defined]

    errors = await cli(served, "jobs", "errors", job["id"], "--csv")
    assert errors.code == 0
    assert errors.stdout == (
        "row_number,byte_offset,column,reason,message\n"
        f"2,{PEOPLE.index(b'not-an-email')},email,INVALID_EMAIL,"
        '"""email"" must be an email address, got ""not-an-email"""\n'
        f'3,{PEOPLE.index(b",Eve")},email,REQUIRED_VALUE_MISSING,"""email"" is required and empty"\n'
    )
    as_json = await cli(served, "jobs", "errors", job["id"], "--json")
    assert [(e["row_number"], e["reason"]) for e in as_json.json()] == [  # type: ignore[attr-defined]
        ("2", "INVALID_EMAIL"),
        ("3", "REQUIRED_VALUE_MISSING"),
    ]

    # A finished job cannot be canceled: the server refuses, exit 5.
    refused = await cli(served, "jobs", "cancel", job["id"])
    assert refused.code == 5
    assert "BATCH_JOB_INVALID_STATE_TRANSITION" in refused.stderr


async def test_every_row_error_of_a_big_job_over_many_pages(served: Served, tmp_path: Path) -> None:
    rows = "".join(f"{'bad' if i % 2 else f'p{i}@example.com'},{i}\n" for i in range(2500))
    big = write(tmp_path / "big.csv", "email,n\n" + rows)
    done = await cli(served, "run", str(big), "--event-name", "e", *EMAIL_RULE, "--json")
    assert done.json()["failed_rows"] == "1250"  # type: ignore[index]
    errors = await cli(served, "jobs", "errors", done.json()["id"], "--csv")  # type: ignore[index]
    numbers = [int(line.split(",")[0]) for line in errors.stdout.splitlines()[1:]]
    assert numbers == list(range(2, 2501, 2))


async def test_watch_and_run_exit_non_zero_on_failed_and_canceled(tmp_path: Path) -> None:
    async with serving(tmp_path / "data") as served:
        no_email = write(tmp_path / "no-email.csv", "name\nann\n")
        failed = await cli(served, "run", str(no_email), "--event-name", "e", "--column", "email:REQUIRED_COLUMN")
        assert failed.code == 1, failed.stderr
        job_id = failed.stdout.split()[0]
        assert "FAILED" in failed.stdout
        assert "required_column_missing" in failed.stdout.lower()
        watched = await cli(served, "jobs", "watch", job_id)
        assert watched.code == 1
    # No runner slot: jobs wait QUEUED until canceled.
    async with serving(tmp_path / "stalled", max_running_jobs=0) as served:
        people = write(tmp_path / "people.csv", PEOPLE)
        uploaded = await cli(served, "upload", str(people), "--json")
        created = await cli(served, "jobs", "create", "--file-asset", uploaded.json()["id"], "--json")  # type: ignore[index]
        job_id = created.json()["id"]  # type: ignore[index]
        watch = asyncio.ensure_future(cli(served, "jobs", "watch", job_id))
        canceled = await cli(served, "jobs", "cancel", job_id)
        assert canceled.code == 0
        assert canceled.stdout.startswith(f"{job_id}  CANCELED")
        assert (await watch).code == 3


async def test_errors_exit_with_their_kind(served: Served, tmp_path: Path) -> None:
    people = write(tmp_path / "people.csv", PEOPLE)
    wrong_key = await cli(served, "upload", str(people), "--token", "bgk_nope.nope")
    assert wrong_key.code == 6
    assert "UNAUTHENTICATED" in wrong_key.stderr
    missing = await cli(served, "jobs", "get", "job_nope")
    assert missing.code == 5
    assert "BATCH_JOB_NOT_FOUND" in missing.stderr
    no_file = await cli(served, "upload", str(tmp_path / "absent.csv"))
    assert no_file.code == 2
    bad_rule = await cli(served, "jobs", "create", "--file-asset", "f", "--column", "email:SOMETIMES")
    assert bad_rule.code == 2
    assert "SOMETIMES is not one of OPTIONAL, REQUIRED_COLUMN, REQUIRED_VALUE" in bad_rule.stderr


def bulk_item(i: int, email: str | None = None) -> str:
    return json.dumps(
        {
            "type": "event-bulk-create",
            "attributes": {
                "profile": {"data": {"type": "profile", "attributes": {"email": email or f"p{i}@example.com"}}},
                "events": {
                    "data": [
                        {
                            "type": "event",
                            # No time and no unique_id: the server stamps its
                            # own time, so a second ingestion would not be
                            # deduplicated. Only request_id keeps it out.
                            "attributes": {
                                "properties": {"i": i},
                                "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}},
                            },
                        }
                    ]
                },
            },
        }
    )


async def test_events_send_reports_counts_bad_lines_and_rejected_events_by_line(served: Served, tmp_path: Path) -> None:
    lines = [bulk_item(i) for i in range(1500)]
    lines[7] = bulk_item(7, "not-an-email")
    lines[100:100] = ["not json", "[1, 2]", ""]
    events = write(tmp_path / "events.jsonl", "\n".join(lines) + "\n")
    sent = await cli(served, "events", "send", str(events), "--json")
    assert sent.code == 4, sent.stderr
    summary = sent.json()
    assert isinstance(summary, dict)
    assert (summary["requests"], summary["events_sent"]) == (2, 1500)
    assert (summary["accepted_count"], summary["deduplicated_count"], summary["rejected_count"]) == (1499, 0, 1)
    assert summary["bad_lines"] == [
        {"line": 101, "message": "not JSON: Expecting value at column 1"},
        {"line": 102, "message": "not a JSON object but list"},
    ]
    ((rejected),) = summary["rejected"]
    assert (rejected["line"], rejected["reason"]) == (8, "INVALID_EMAIL")
    assert rejected["pointer"].endswith("/data/7/attributes/profile/data/attributes/email")
    assert await served.events_in_store("Viewed") == 1499
    assert "line 101: not JSON" in sent.stderr


async def test_events_send_rerun_after_an_interruption_ingests_nothing_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    events = write(tmp_path / "events.jsonl", "".join(bulk_item(i) + "\n" for i in range(2600)))
    # Two requests a minute: the first two go in, the third waits.
    slow = RateLimitConfig(rates={**RateLimitConfig().rates, Api.BULK_EVENTS: Rate.parse_many("2/min")})
    async with serving(data, rate_limits=slow) as served:
        token = served.token
        proc = await asyncio.create_subprocess_exec(
            BATCHGRPC, "events", "send", str(events), stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=served.env
        )
        assert proc.stderr is not None
        seen = []
        while not (line := (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()).startswith("lines 2001-"):
            assert line, f"ended before waiting: {seen}"
            seen.append(line)
        assert "Waiting" in line
        proc.send_signal(signal.SIGINT)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 130
        assert "rerun the same command" in rest.decode()

        # The two requests sent are stored whole, and processed.
        async def all_sent_are_stored() -> bool:
            return await served.events_in_store("Viewed") == 2000

        assert await eventually(all_sent_are_stored)

    async with serving(data, rate_limits=RateLimitConfig(enabled=False)) as served:
        served.token = token
        rerun = await cli(served, "events", "send", str(events), "--json")
        assert rerun.code == 0, rerun.stderr
        summary = rerun.json()
        assert isinstance(summary, dict)
        # The first two requests answered from their request_id: their jobs,
        # their counts, nothing stored again.
        assert (summary["requests"], summary["accepted_count"], summary["deduplicated_count"]) == (3, 2600, 0)
        assert await served.events_in_store("Viewed") == 2600
        assert len(set(summary["job_ids"])) == 3


async def test_events_send_waits_as_retry_info_says_and_succeeds(tmp_path: Path) -> None:
    tight = RateLimitConfig(rates={**RateLimitConfig().rates, Api.BULK_EVENTS: Rate.parse_many("1/s")})
    async with serving(tmp_path / "data", rate_limits=tight) as served:
        events = write(tmp_path / "events.jsonl", "".join(bulk_item(i) + "\n" for i in range(2100)))
        sent = await cli(served, "events", "send", str(events))
        assert sent.code == 0, sent.stderr
        assert sent.stdout.splitlines()[0] == "2100 accepted, 0 deduplicated, 0 rejected (2100 events in 3 requests)"
        waits = [line for line in sent.stderr.splitlines() if "Waiting" in line and "as the server asks" in line]
        assert waits, sent.stderr
        assert await served.events_in_store("Viewed") == 2100


async def test_track_send_reports_each_failed_command_with_its_line(served: Served, tmp_path: Path) -> None:
    commands = [
        {"name": "customers", "data": {"customer_ids": {"registered": "ann"}, "properties": {"a": 1}}},
        {"name": "customers/events", "data": {"customer_ids": {"registered": "ann"}}, "command_id": "c2"},
    ]
    good = {"name": "customers/events", "data": {"customer_ids": {"registered": "bob"}, "event_type": "view"}}
    lines = [json.dumps(c) for c in commands] + ["{oops"] + [json.dumps(good)] * 60
    lines.append(json.dumps({"name": "customers", "data": {"customer_ids": {}, "properties": {}}}))
    track = write(tmp_path / "track.jsonl", "\n".join(lines) + "\n")
    sent = await cli(served, "track", "send", str(track))
    assert sent.code == 4, sent.stderr
    assert sent.stdout.splitlines() == [
        "61 commands succeeded, 2 failed (2 batches)",
        "line 2: customers/events: Field 'event_type' is required.",
        "line 64: customers: At least one id should be specified.",
        "line 3: bad line: not JSON: Expecting property name enclosed in double quotes at column 2",
    ]
    as_json = await cli(served, "track", "send", str(track), "--json")
    summary = as_json.json()
    assert isinstance(summary, dict)
    assert [(f["line"], f.get("command_id")) for f in summary["failed"]] == [(2, "c2"), (64, None)]
    assert await served.events_in_store("view") == 60


def read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            return out
        if not chunk:
            return out
        out += chunk


async def test_a_terminal_run_draws_the_progress_bar(served: Served, tmp_path: Path) -> None:
    people = write(tmp_path / "people.csv", PEOPLE)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**served.env, "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("NO_COLOR", None)
    proc = await asyncio.create_subprocess_exec(
        BATCHGRPC, "run", str(people), "--default-event-name", "visit", stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    try:
        screen = (await asyncio.wait_for(asyncio.to_thread(read_all, master), 120)).decode()
    finally:
        os.close(master)
    assert await proc.wait() == 0
    assert ESCAPE in screen  # drawn, not printed
    assert "━" in screen  # rich's bar
    assert "100%" in screen
    assert "job job_" in screen
    assert "DONE  rows 4  ok 4  failed 0" in screen
    last = [line for line in screen.replace("\r", "\n").splitlines() if line.strip()][-1]
    assert last.strip().endswith("DONE  4 rows read, 4 succeeded, 0 failed")


async def test_the_jobs_a_run_created_are_in_the_store(served: Served, tmp_path: Path) -> None:
    people = write(tmp_path / "people.csv", PEOPLE)
    done = await cli(served, "run", str(people), "--event-name", "e", "--tag", "x", "--json")
    page = await served.running.store.jobs.list("default", JobFilter(tags=("x",)), cursor=None, limit=10)
    assert [j.id for j in page.items] == [done.json()["id"]]  # type: ignore[index]


async def test_tls_with_a_ca_file(tmp_path: Path, pki: Pki) -> None:  # noqa: F811 - the fixture imported above
    tls = TlsConfig(cert_file=pki.server_cert, key_file=pki.server_key)
    async with serving(tmp_path / "data", tls=tls) as served:
        listed = await cli(served, "jobs", "list", "--ca-file", str(pki.client_ca))
        assert listed.code == 0, listed.stderr
        assert listed.stdout == "no jobs\n"


async def test_a_server_that_cannot_be_reached_is_exit_7(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", bulk_item(1) + "\n")
    async with serving(tmp_path / "data") as served:
        pass
    # Stopped: its port is free again, and nothing answers there.
    gone = await cli(served, "events", "send", str(events))
    assert gone.code == 7
    assert "trying again" in gone.stderr
    assert "rerun the same command to send the rest" in gone.stderr
