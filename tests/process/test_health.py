"""Health that means something: SERVING only while the store and the Kafka
sink answer, NOT_SERVING within seconds of either going away, SERVING again
when it is back, and the outbox delivers what waited, exactly once.

Each test stops and starts a PostgreSQL or Kafka of its own (tools/servers.py's
servers, on the same data directory and port each time): the run's shared
ones (BATCHGRPC_TEST_POSTGRES, BATCHGRPC_TEST_KAFKA) serve other tests and
must never be stopped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic
from google.protobuf import json_format
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from batchgrpc import server
from batchgrpc.health import PROBE_SECONDS, PROBE_TIMEOUT_SECONDS
from batchgrpc.sinks import SinkUnavailable
from batchgrpc.sinks.kafka import PING_SECONDS as KAFKA_PING_SECONDS
from batchgrpc.sinks.kafka import KafkaSink
from batchgrpc.store import Event
from batchgrpc.store.postgres import PING_SECONDS as POSTGRES_PING_SECONDS
from batchgrpc.store.postgres import PostgresStore
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import Harness, bearer, eventually, make_config

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "servers.py"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: How soon health must notice a server gone, or back: a probe's period and
#: timeout, and room for a machine shared with other tests.
NOTICE_SECONDS = PROBE_SECONDS + PROBE_TIMEOUT_SECONDS + 7
#: A killed broker replays its log before it serves again (about 12 s here).
KAFKA_RESTART_SECONDS = 120.0


def _tools() -> ModuleType:
    """tools/servers.py: a script, not a package, so loaded from its path."""
    spec = importlib.util.spec_from_file_location("batchgrpc_tools_servers", TOOLS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class OwnServer:
    """One server of the test's own, stopped and started again at will."""

    def __init__(self, tools: ModuleType, kind: str, root: Path) -> None:
        self._tools = tools
        self._server = tools.KINDS[kind](root)
        self.kind = kind

    @property
    def address(self) -> str:
        """A store URL (PostgreSQL) or `bootstrap.servers` (Kafka)."""
        return str(self._server.value())

    @property
    def running(self) -> bool:
        proc = self._server.proc
        return proc is not None and proc.poll() is None

    async def prepare(self) -> None:
        await asyncio.to_thread(self._server.prepare)

    async def start(self) -> None:
        # Launched from this (the main) thread: the kernel kills the server
        # when the thread that launched it ends, so a killed test leaves no
        # server behind; `check` then only reads files.
        self._server.launch(guard=True)

        async def ready() -> bool:
            return bool(self._server.check())

        try:
            # `check` gives up (StartError) after the server's ready_seconds.
            await eventually(ready, seconds=self._server.ready_seconds + 10)
        except self._tools.StartError as e:
            pytest.fail(f"the test's own {self.kind} could not start: {e}\n{self._server.log_tail()}", pytrace=False)

    async def stop(self) -> None:
        # A clean stop, not the tools' throw-away one. PostgreSQL's
        # immediate shutdown (synchronous_commit off) loses the last
        # commits, the schema among them. A lone broker killed just after a
        # commit was seen to restart without that transaction's commit
        # marker though its coordinator had recorded it complete; a later
        # abort of the same producer id then hid the committed events. These
        # tests are about a broker or database that is away, not about
        # Kafka's own crash recovery.
        first = signal.SIGINT if self.kind == "postgres" else signal.SIGTERM
        server = self._server
        # Off the event loop: the batchgrpc server under test runs on it.
        stopped = await asyncio.to_thread(self._tools.stop_group, server.pid, server.ticks, first, server.proc)
        assert stopped, f"{self.kind} still runs"

    async def remove(self) -> None:
        """Stops it the tools' way, for good: its data is thrown away."""
        await asyncio.to_thread(self._server.stop)


def _new_root(tools: ModuleType) -> Path:
    root = Path(tempfile.mkdtemp(prefix=tools.TEMP_PREFIX, dir=tools.temp_base()))
    # Read by PostgreSQL's own account when the tests run as root.
    root.chmod(0o755)
    # So that a later `tools/servers.py run` removes the directory should
    # this process be killed before it does (its servers die with it).
    tools.write_json(root / "runner.json", {"pid": os.getpid(), "ticks": tools.start_ticks(os.getpid())})
    return root


@asynccontextmanager
async def own(kind: str) -> AsyncIterator[OwnServer]:
    """A fresh `kind` ("postgres" or "kafka") of the test's own, removed after."""
    tools = _tools()
    root = _new_root(tools)
    own = OwnServer(tools, kind, root)
    try:
        try:
            await own.prepare()
        except tools.StartError as e:
            pytest.fail(f"the test's own {kind} could not be prepared: {e}", pytrace=False)
        await own.start()
        yield own
    finally:
        await own.remove()
        shutil.rmtree(root, ignore_errors=True)


async def statuses(channel: aio.Channel) -> set[int]:
    """What health says for "" and every service of the contract."""
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest
    return {(await stub.Check(request(service=name))).status for name in ("", *server.CONTRACT_SERVICES)}


async def becomes(
    channel: aio.Channel, status: int, seconds: float, caplog: pytest.LogCaptureFixture | None = None
) -> None:
    """Waits until every service has `status`; fails after `seconds`, with
    the monitor's own words on why (from `caplog`) when given."""

    async def there() -> bool:
        return await statuses(channel) == {status}

    try:
        await eventually(there, seconds=seconds, every=0.1)
    except TimeoutError:
        names = [health_pb2.HealthCheckResponse.ServingStatus.Name(s) for s in await statuses(channel)]
        wanted = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        said = [] if caplog is None else [r.fields for r in caplog.records if r.name == "batchgrpc.health"]
        pytest.fail(f"health says {names}, not {wanted}, after {seconds:g} s; the monitor logged {said}", pytrace=False)


async def track(harness: Harness, tag: str, count: int) -> None:
    """One tracking batch of `count` events."""
    commands = [
        {"name": "customers/events", "data": {"customer_ids": {"registered": f"{tag}-{n}"}, "event_type": tag}}
        for n in range(count)
    ]
    request = tracking_pb2.BatchRequest(project_token="default")
    json_format.ParseDict({"commands": commands}, request)
    stub = tracking_pb2_grpc.TrackingServiceStub(harness.channel)
    response = await stub.Batch(request, metadata=bearer(harness.admin))
    assert response.success
    assert all(r.success for r in response.results), response


def new_topic(bootstrap: str) -> str:
    name = f"events-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)]).values()
    future.result(timeout=30)
    return name


def read_committed(bootstrap: str, topic: str, expected: int, seconds: float = 60) -> list[dict[str, Any]]:
    """Every message a read_committed consumer sees on `topic`, read to the
    partition's end once `expected` arrived (so extras would show)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                if len(seen) >= expected:
                    return seen
                continue
            assert error is None, error
            headers = {k: v.decode() for k, v in message.headers() or []}
            seen.append({"headers": headers, "value": json.loads(message.value())})
    finally:
        consumer.close()
    positions = [m["headers"]["position"] for m in seen]
    pytest.fail(f"{len(seen)} of {expected} events on {topic} after {seconds:g} s (positions {positions})")


async def logged(harness: Harness) -> list[Event]:
    return await harness.running.store.events.after(0, limit=10_000)


def changes(caplog: pytest.LogCaptureFixture) -> list[tuple[str, list[str]]]:
    """The status, and what failed, of each `health` log line."""
    lines = [r for r in caplog.records if r.name == "batchgrpc.health"]
    return [(r.fields["status"], sorted(r.fields.get("failing", {}))) for r in lines]


async def test_health_follows_the_broker_and_the_outbox_delivers_what_waited_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="batchgrpc.health")
    async with own("kafka") as kafka:
        topic = await asyncio.to_thread(new_topic, kafka.address)
        sink = f"kafka:{topic}"
        config = make_config(tmp_path / "data", sink=f"kafka://{kafka.address}/{topic}")
        running = await server.start(config)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                harness = Harness(running, config, channel)
                events = running.store.events
                # A cold first metadata request on a busy machine may take
                # past the probe's bound: ready within seconds, then.
                await becomes(channel, SERVING, 30, caplog)
                await track(harness, "before", 5)
                before = await logged(harness)
                assert len(before) == 5

                async def caught_up() -> bool:
                    return await events.delivered(sink) >= (await logged(harness))[-1].position

                await eventually(caught_up, seconds=60)

                await kafka.stop()
                await becomes(channel, NOT_SERVING, NOTICE_SECONDS, caplog)
                # The store still answers: calls go on, their events wait in the outbox.
                await track(harness, "during", 7)
                waiting = (await logged(harness))[5:]
                assert [e.event_name for e in waiting] == ["during"] * 7
                # What the monitor asks: an error within its own bound, never a hang.
                began = time.monotonic()
                with pytest.raises(SinkUnavailable, match=kafka.address):
                    await KafkaSink(kafka.address, topic).ping()
                assert time.monotonic() - began < KAFKA_PING_SECONDS + 1
                await asyncio.sleep(3 * PROBE_SECONDS)
                assert await events.delivered(sink) == before[-1].position
                assert await statuses(channel) == {NOT_SERVING}

                await kafka.start()
                await becomes(channel, SERVING, KAFKA_RESTART_SECONDS, caplog)
                # The relay retries on its own (every second, each attempt
                # bounded by the sink's 10 s timeout) and catches up.
                await eventually(caught_up, seconds=60)
                everything = await logged(harness)
                delivered = await asyncio.to_thread(read_committed, kafka.address, topic, len(everything))
        finally:
            await server.stop(running, 0.5)
    # One line per change, not one per probe.
    seen = changes(caplog)
    ready = next(i for i, change in enumerate(seen) if change[0] == "SERVING")
    assert seen[:ready] in ([], [("NOT_SERVING", ["sink"])])
    assert seen[ready:] == [("SERVING", []), ("NOT_SERVING", ["sink"]), ("SERVING", [])]
    # Each event of the log once, those that waited among them, in order.
    assert [m["headers"]["event_id"] for m in delivered] == [e.event_id for e in everything]
    assert [int(m["headers"]["position"]) for m in delivered] == [e.position for e in everything]
    assert len(everything) == 12


async def test_health_follows_postgresql(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batchgrpc.health")
    async with own("postgres") as postgres:
        config = make_config(tmp_path / "data", store=postgres.address)
        running = await server.start(config)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                assert await statuses(channel) == {SERVING}
                await postgres.stop()
                await becomes(channel, NOT_SERVING, NOTICE_SECONDS)
                await asyncio.sleep(3 * PROBE_SECONDS)
                assert await statuses(channel) == {NOT_SERVING}
                await postgres.start()
                # The pool reconnects on its own.
                await becomes(channel, SERVING, 30)
                # And it serves calls again: a key lookup is a store read.
                harness = Harness(running, config, channel)
                await track(harness, "after", 1)
        finally:
            if not postgres.running:
                # Or the server's stop waits 30 s for the pool, then fails
                # in place of what failed the test.
                await postgres.start()
            await server.stop(running, 0.5)
    assert changes(caplog) == [("SERVING", []), ("NOT_SERVING", ["store"]), ("SERVING", [])]


async def test_a_postgres_ping_is_bounded_while_the_pool_waits_for_a_dead_server() -> None:
    async with own("postgres") as postgres:
        store = await PostgresStore.open(postgres.address)
        try:
            await store.ping()
            await postgres.stop()
            # The first ping may get a connection the server closed (it fails
            # at once); later ones wait on the pool, which keeps trying to
            # reconnect: each gives up after POSTGRES_PING_SECONDS.
            for _ in range(3):
                began = time.monotonic()
                with pytest.raises(Exception):  # noqa: B017, PT011 - psycopg's error or the timeout: either means down
                    await store.ping()
                assert time.monotonic() - began < POSTGRES_PING_SECONDS + 1

            await postgres.start()

            async def answers() -> bool:
                try:
                    await store.ping()
                except Exception:  # noqa: BLE001 - not back yet
                    return False
                return True

            await eventually(answers, seconds=30, every=0.2)
        finally:
            await store.close()
