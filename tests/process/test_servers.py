"""The real servers `make test` starts (tools/servers.py) work: PostgreSQL
through psycopg's async connection, Kafka's transactions through
confluent-kafka; a test run without them fails and says why; and the runner
leaves no server process behind, however its command ends."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from psycopg import conninfo, sql

from ..servers import KAFKA_ENV, POSTGRES_ENV, kafka_bootstrap, postgres_url

SERVERS = Path(__file__).resolve().parents[2] / "tools" / "servers.py"
TEMP_PREFIX = "batchgrpc-servers-"
#: A fresh broker's first consumer group join and first transactional
#: producer take a few seconds; a broken one takes forever.
KAFKA_SECONDS = 60.0


async def test_postgres_creates_uses_and_drops_a_database() -> None:
    name = f"smoke_{uuid.uuid4().hex}"
    async with await psycopg.AsyncConnection.connect(postgres_url(), autocommit=True) as admin:
        # CREATE DATABASE cannot run in a transaction, hence autocommit.
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            async with await psycopg.AsyncConnection.connect(conninfo.make_conninfo(postgres_url(), dbname=name)) as db:
                await db.execute("CREATE TABLE smoke (id bigint PRIMARY KEY, body text NOT NULL)")
                async with db.cursor() as cursor:
                    await cursor.executemany("INSERT INTO smoke VALUES (%s, %s)", [(1, "one"), (2, "two")])
                await db.commit()
                rows = await (await db.execute("SELECT current_database(), id, body FROM smoke ORDER BY id")).fetchall()
                assert rows == [(name, 1, "one"), (name, 2, "two")]
        finally:
            await admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        left = await (await admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))).fetchone()
        assert left == (0,)


def test_kafka_read_committed_sees_the_committed_transaction_only() -> None:
    bootstrap = kafka_bootstrap()
    topic = f"smoke-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(KAFKA_SECONDS)
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"smoke-{uuid.uuid4().hex}"})
        producer.init_transactions(KAFKA_SECONDS)
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, key=b"smoke", value=f"aborted-{i}".encode())
        # Written to the log before the abort, so that the consumer has
        # aborted records to skip, not merely none.
        assert producer.flush(KAFKA_SECONDS) == 0
        producer.abort_transaction(KAFKA_SECONDS)
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, key=b"smoke", value=f"committed-{i}".encode())
        producer.commit_transaction(KAFKA_SECONDS)

        read = consume_to_end(bootstrap, topic)
        assert [m.value() for m in read.messages] == [b"committed-0", b"committed-1", b"committed-2"]
        # The three aborted records and their abort marker come first, the
        # commit marker last: eight offsets, three of them delivered.
        assert [m.offset() for m in read.messages] == [4, 5, 6]
        assert read.watermarks == (0, 8)
        # The position it read to, past the commit marker: the partition's end.
        assert read.committed == 8
    finally:
        admin.delete_topics([topic])[topic].result(KAFKA_SECONDS)


@dataclass
class Consumed:
    messages: list[Message]
    #: The partition's (low, high) watermarks once read to its end.
    watermarks: tuple[int, int]
    #: The group's committed offset after the consumer committed by hand.
    committed: int


def consume_to_end(bootstrap: str, topic: str) -> Consumed:
    """Reads the topic's one partition in a new group, read_committed and
    without auto-commit, until it reports the partition's end; commits what it
    read; fails if that takes longer than KAFKA_SECONDS."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"smoke-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    assigned: list[TopicPartition] = []
    consumer.subscribe([topic], on_assign=lambda _, partitions: assigned.extend(partitions))
    try:
        messages: list[Message] = []
        deadline = time.monotonic() + KAFKA_SECONDS
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no end of partition within {KAFKA_SECONDS} s: assigned {assigned}, read {len(messages)}"
            message = consumer.poll(min(left, 1.0))
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                break
            assert error is None, error
            messages.append(message)
        partition = TopicPartition(topic, 0)
        watermarks = consumer.get_watermark_offsets(partition, timeout=KAFKA_SECONDS)
        assert watermarks is not None
        consumer.commit(asynchronous=False)
        (committed,) = consumer.committed([partition], timeout=KAFKA_SECONDS)
        return Consumed(messages, (watermarks[0], watermarks[1]), committed.offset)
    finally:
        consumer.close()


def test_a_test_run_without_the_servers_fails_and_says_how_to_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POSTGRES_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="through `make test`"):
        postgres_url()


# --- the runner itself ----------------------------------------------------------

#: The runner's command: says its pid and the servers it was given, then
#: waits; a SIGINT or SIGTERM ends it with code 3.
WAITER = """
import os, signal, sys, time
def stop(signum, frame):
    print("got", signal.Signals(signum).name, flush=True)
    sys.exit(3)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print(os.getpid(), os.environ.get("BATCHGRPC_TEST_POSTGRES"), os.environ.get("BATCHGRPC_TEST_KAFKA"), flush=True)
time.sleep(600)
"""


@dataclass
class Started:
    runner: asyncio.subprocess.Process
    cmd_pid: int
    postgres: str | None
    kafka: str | None


@asynccontextmanager
async def runner(*flags: str) -> AsyncIterator[Started]:
    """`tools/servers.py run FLAGS -- WAITER` in a session of its own (so no
    terminal's Ctrl-C reaches it, and it forwards each SIGINT), once CMD
    runs; stopped however the test ends."""
    # Without this run's servers, so that CMD names only the runner's own.
    env = {key: value for key, value in os.environ.items() if key not in (POSTGRES_ENV, KAFKA_ENV)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVERS), "run", *flags, "--", sys.executable, "-c", WAITER,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 300)
        assert line, "the runner ended before CMD ran"
        pid, postgres, kafka = line.decode().split()
        yield Started(proc, int(pid), None if postgres == "None" else postgres, None if kafka == "None" else kafka)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def finish(started: Started) -> tuple[int, str, str]:
    """The runner's exit code, the rest of CMD's output, and the runner's own."""
    out, err = await asyncio.wait_for(started.runner.communicate(), 60)
    assert started.runner.returncode is not None
    return started.runner.returncode, out.decode(), err.decode()


def server_pids(err: str) -> dict[str, int]:
    """The pid of each server, from the runner's "<name> ready ... (pid N)" lines."""
    return {name: int(pid) for name, pid in re.findall(r"servers: (\w+) ready in .* \(pid (\d+)\)", err)}


def processes_in_groups(groups: Sequence[int]) -> list[str]:
    """The live processes whose process group is one of `groups` (each server leads its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) in groups:
            found.append(text[: text.rfind(")") + 1])
    return found


def directories_of(runner_pid: int) -> list[Path]:
    """The temporary directories whose runner was this process."""
    found = []
    for root in Path("/tmp").glob(f"{TEMP_PREFIX}*"):
        try:
            owner = json.loads((root / "runner.json").read_text())
        except (OSError, ValueError):
            continue
        if owner["pid"] == runner_pid:
            found.append(root)
    return found


async def test_the_runner_stops_both_servers_when_its_command_is_killed() -> None:
    async with runner() as started:
        assert started.postgres is not None
        assert started.kafka is not None
        # Both really serve what the runner exported.
        async with await psycopg.AsyncConnection.connect(started.postgres) as db:
            assert await (await db.execute("SELECT 1")).fetchone() == (1,)
        metadata = AdminClient({"bootstrap.servers": started.kafka}).list_topics(timeout=KAFKA_SECONDS)
        assert metadata.brokers

        os.kill(started.cmd_pid, signal.SIGKILL)
        code, _, err = await finish(started)
    assert code == 128 + signal.SIGKILL, err
    pids = server_pids(err)
    assert set(pids) == {"postgres", "kafka"}, err
    assert processes_in_groups(list(pids.values())) == []
    assert directories_of(started.runner.pid) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_the_runner_forwards_a_signal_to_its_command_then_stops_the_servers(signum: signal.Signals) -> None:
    async with runner("--postgres") as started:
        assert started.kafka is None
        started.runner.send_signal(signum)
        code, out, err = await finish(started)
    assert code == 3, err
    assert out.strip() == f"got {signum.name}"
    pids = server_pids(err)
    assert set(pids) == {"postgres"}, err
    assert processes_in_groups(list(pids.values())) == []


async def test_start_leaves_the_servers_running_until_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def servers(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SERVERS), *args, "--state-dir", str(state),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await servers("start", "--postgres")
    try:
        assert code == 0, err
        (export,) = (state / "env").read_text().splitlines()
        assert out.strip() == export
        match = re.fullmatch(rf"export {POSTGRES_ENV}=(postgresql://\S+)", export)
        assert match, export
        # The process that started it has exited: the server still serves.
        async with await psycopg.AsyncConnection.connect(match.group(1)) as db:
            assert await (await db.execute("SELECT 1")).fetchone() == (1,)
        (pid,) = [entry["pid"] for entry in json.loads((state / "servers.json").read_text())["servers"]]
    finally:
        code, _, err = await servers("stop")
    assert code == 0, err
    assert processes_in_groups([pid]) == []
    assert not (state / "env").exists()


def fake_java(directory: Path, body: str) -> dict[str, str]:
    """An environment whose `java` is a script of `body`, first on PATH."""
    directory.mkdir()
    java = directory / "java"
    java.write_text(f"#!/bin/sh\n{body}\n")
    java.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in (POSTGRES_ENV, KAFKA_ENV)}
    return {**env, "PATH": f"{directory}:{env['PATH']}"}


async def test_a_server_that_cannot_start_fails_the_run_with_its_log_and_cmd_never_runs(tmp_path: Path) -> None:
    env = fake_java(tmp_path / "bin", "echo 'this java cannot format anything' >&2; exit 1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVERS), "run", "--", sys.executable, "-c", "print('CMD ran')",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1, err
    assert out == b""
    assert b"kafka could not start: formatting Kafka's log dir" in err
    assert b"this java cannot format anything" in err
    assert directories_of(proc.pid) == []


async def test_a_signal_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    # A `java` that hangs while formatting: the runner is mid-start until the signal.
    pids = tmp_path / "java.pid"
    env = fake_java(tmp_path / "bin", f"echo $$ > {pids}; exec sleep 600")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVERS), "run", "--", sys.executable, "-c", "print('CMD ran')",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        async with asyncio.timeout(120):
            while not pids.exists() or not pids.read_text().strip():  # noqa: ASYNC110 - a file another process writes
                await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert out == b""
    assert b"SIGTERM while starting: stopped" in err
    java = int(pids.read_text())
    assert processes_in_groups([java]) == []
    assert directories_of(proc.pid) == []
