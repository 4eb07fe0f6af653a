"""`make bench-cluster`: bulk ingest and a batch job on the deployments,
side by side: SQLite in one process with `--sink log` (the baseline),
SQLite with the Kafka sink, PostgreSQL with one replica and with two (the
load spread over both), both with the Kafka sink.

It starts its own PostgreSQL and Kafka (`tools/servers.py`, in this
process: they die with it), PostgreSQL with its durable settings (fsync,
synchronous commit and full-page writes on, as SQLite's `synchronous=FULL`
is durable; the tests' instance turns them off), one Kafka broker, topics
of `--partitions` partitions. Every run of every deployment gets a fresh
database (or SQLite data directory) and topic, and fresh `batchgrpc serve
--workers 1` processes (rate limits off; replicas share one pepper file).
The runs go round the deployments, so a drift of this VM's speed touches
them all alike; figures are medians of `--runs`.

Per run, on one cluster:

(a) bulk: `--bulk-requests` CreateEventBulkCreateJob requests of 1,000
    events (bench_ingest's, pre-encoded, sent as raw bytes), closed loop,
    `--clients` connections spread evenly over the replicas. Times, from
    the first request: every RPC answered (accepted); every bulk job
    COMPLETE in the store (durable: the job is stored before the answer and
    applied in one transaction); every event in Kafka, as a `read_committed`
    consumer sees it (delivered); the store's own record of delivery
    (`sink_positions` up to the last event).
(b) batch job: the `--rows`-row CSV of `make bench-core`, split into one
    file per replica, each uploaded to and its job created on its replica,
    all at once. Times, from the CreateBatchJob calls: every row stored (no
    job before DISPATCHING), every job DONE (the relay recorded all its
    events as delivered), every row's event seen by the consumer.

Each prints the CPU, in cores over the whole phase, of the replicas, of
PostgreSQL (every backend), of Kafka and of this process (the load
generator, and the consumer on a thread, counted apart): they share this
machine's cores. On PostgreSQL it also samples `pg_locks` every 0.1 s and
prints how many transactions, on average, were waiting for the event log's
insert lock (`lock_events`) and for an account's profile lock.

`--accounts N` spreads the bulk load over N accounts (a key each, made by
`batchgrpc keys create` on the run's store): an ingest holds its
account's lock, so one account's requests take turns whatever the
replicas. `--profile PATH` writes py-spy stacks of each replica.

A program that prints figures, not a test; it checks that every event
arrived exactly once and that the counts are exact.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from grpc import aio
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import ROOT, generate
from bench_ingest import (
    BULK,
    EVENTS_PER_PROFILE,
    PROFILES_PER_REQUEST,
    bulk_request,
    load,
    pct,
    profilers,
    stored_events,
)
from bench_jobs import (
    BATCHGRPC,
    Server,
    assert_done,
    channel,
    cpu_seconds,
    head,
    job_to_done,
    row,
    shares,
    split,
    start_server,
    upload,
)

sys.path.insert(0, str(ROOT / "tools"))
import servers

EVENTS_PER_REQUEST = PROFILES_PER_REQUEST * EVENTS_PER_PROFILE
#: The advisory lock key of `postgres_jobs.lock_events`, as pg_locks shows
#: a one-bigint key: the high half in classid, the low in objid.
EVENTS_LOCK = (0x62617463, 0x68657674)
#: How often the store and pg_locks are looked at while waiting.
POLL_SECONDS = 0.02
SAMPLE_SECONDS = 0.1
WAIT_SECONDS = 600.0


@dataclass(frozen=True)
class Deployment:
    name: str
    postgres: bool
    replicas: int
    kafka: bool


DEPLOYMENTS = {
    d.name: d
    for d in (
        Deployment("sqlite-log", postgres=False, replicas=1, kafka=False),
        Deployment("sqlite-kafka", postgres=False, replicas=1, kafka=True),
        Deployment("pg1-kafka", postgres=True, replicas=1, kafka=True),
        Deployment("pg2-kafka", postgres=True, replicas=2, kafka=True),
    )
}


# --- what the store and the topic hold -----------------------------------------


class Store:
    """The run's store, read from outside the servers."""

    async def unfinished_bulk_jobs(self) -> int:
        raise NotImplementedError

    async def batch_jobs(self, statuses: tuple[str, ...]) -> tuple[int, int]:
        """(batch jobs, those in one of `statuses`): the run's store holds the run's only."""
        raise NotImplementedError

    async def events(self) -> int:
        raise NotImplementedError

    async def all_delivered(self, sink: str) -> bool:
        """Whether the sink's recorded position is the last event's (both read off an index)."""
        raise NotImplementedError

    async def lock_waits(self) -> tuple[int, int]:
        """Transactions waiting now for (the event log's lock, an account's)."""
        return (0, 0)

    async def close(self) -> None:
        pass


class SqliteStore(Store):
    def __init__(self, db: Path) -> None:
        self.db = db

    def _one(self, query: str, *params: object) -> int:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute(query, params).fetchone()[0])
        finally:
            conn.close()

    async def unfinished_bulk_jobs(self) -> int:
        return self._one("SELECT count(*) FROM bulk_jobs WHERE status IN ('QUEUED', 'PROCESSING')")

    async def batch_jobs(self, statuses: tuple[str, ...]) -> tuple[int, int]:
        marks = ", ".join("?" * len(statuses))
        return (
            self._one("SELECT count(*) FROM batch_jobs"),
            self._one(f"SELECT count(*) FROM batch_jobs WHERE status IN ({marks})", *statuses),
        )

    async def events(self) -> int:
        return stored_events(self.db)

    async def all_delivered(self, sink: str) -> bool:
        return bool(
            self._one(
                "SELECT coalesce((SELECT max(seq) FROM events), 0)"
                " <= coalesce((SELECT position FROM sink_positions WHERE sink = ?), 0)",
                sink,
            )
        )


class PostgresStore(Store):
    def __init__(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, url: str) -> PostgresStore:
        return cls(await psycopg.AsyncConnection.connect(url, autocommit=True))

    async def _one(self, query: str, *params: object) -> int:
        row = await (await self.conn.execute(query, params)).fetchone()  # type: ignore[arg-type] # our own SQL
        assert row is not None
        return int(row[0])  # type: ignore[call-overload]

    async def unfinished_bulk_jobs(self) -> int:
        return await self._one("SELECT count(*) FROM bulk_jobs WHERE status IN ('QUEUED', 'PROCESSING')")

    async def batch_jobs(self, statuses: tuple[str, ...]) -> tuple[int, int]:
        return (
            await self._one("SELECT count(*) FROM batch_jobs"),
            await self._one("SELECT count(*) FROM batch_jobs WHERE status = ANY(%s)", list(statuses)),
        )

    async def events(self) -> int:
        return await self._one("SELECT count(*) FROM events")

    async def all_delivered(self, sink: str) -> bool:
        return bool(
            await self._one(
                "SELECT (coalesce((SELECT max(seq) FROM events), 0)"
                " <= coalesce((SELECT position FROM sink_positions WHERE sink = %s), 0))::int",
                sink,
            )
        )

    async def lock_waits(self) -> tuple[int, int]:
        row = await (
            await self.conn.execute(
                "SELECT count(*) FILTER (WHERE objsubid = 1 AND classid = %s AND objid = %s),"
                " count(*) FILTER (WHERE objsubid = 2) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                EVENTS_LOCK,
            )
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])  # type: ignore[call-overload]

    async def close(self) -> None:
        await self.conn.close()


async def until(check: Callable[[], Awaitable[bool]]) -> float:
    """The time (perf_counter) at which `check` first held, looking every POLL_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {WAIT_SECONDS:.0f} s")
        await asyncio.sleep(POLL_SECONDS)
    return time.perf_counter()


class Topic:
    """A `read_committed` consumer of the run's topic, from its start, on a
    thread of its own: for each `source` header, how many messages had
    arrived when."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                # A fetch answers at once when there is something: the
                # time a message is seen is close to when it was committed.
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.counts: dict[str, int] = {}
        #: Per source, (perf_counter, count so far) after each fetch that brought some.
        self.history: dict[str, list[tuple[float, int]]] = {}
        self.cpu_seconds = 0.0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        began = time.thread_time()
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(num_messages=10_000, timeout=0.05)
                now = time.perf_counter()
                changed = set()
                for message in messages:
                    if message.error() is not None:
                        self.error = str(message.error())
                        continue
                    for key, value in message.headers() or ():
                        if key == "source":
                            source = value.decode()
                            self.counts[source] = self.counts.get(source, 0) + 1
                            changed.add(source)
                for source in changed:
                    self.history.setdefault(source, []).append((now, self.counts[source]))
                self.cpu_seconds = time.thread_time() - began
        finally:
            self._consumer.close()

    async def reached(self, source: str, count: int) -> float:
        """When `count` messages of `source` had arrived."""

        async def there() -> bool:
            return self.counts.get(source, 0) >= count

        await until(there)
        return next(t for t, n in self.history[source] if n >= count)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


# --- one run --------------------------------------------------------------------


@dataclass
class Cluster:
    deployment: Deployment
    replicas: list[Server]
    store: Store
    topic: Topic | None
    sink: str
    pg_pid: int | None
    kafka_pid: int | None
    #: The first key's token (account "default") and one per further
    #: account (`--accounts`), for the bulk load.
    tokens: list[str]

    @property
    def token(self) -> str:
        return self.replicas[0].token


async def account_key(account: str, flags: list[str], data_dir: Path) -> str:
    """A key for bulk create of a new account, made by `batchgrpc keys create` on the run's store."""
    proc = await asyncio.create_subprocess_exec(
        BATCHGRPC, "keys", "create", "--account", account, "--scope", "events:write", "--json",
        "--data-dir", str(data_dir), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return str(json.loads(out)["token"])


def tree_cpu(leader: int | None) -> dict[int, float]:
    """CPU seconds of a server and of each live child of it, by pid. By
    parent, not process group: PostgreSQL's backends each call setsid()."""
    if leader is None:
        return {}
    seconds = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pid = int(entry.name)
            if pid == leader or int(fields[1]) == leader:
                seconds[pid] = cpu_seconds(pid)
    return seconds


class Cpu:
    """CPU used from `__init__` to `done`, in cores, per party."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.began = time.perf_counter()
        self.replicas = sum(r.cpu_seconds() for r in cluster.replicas)
        self.pg = tree_cpu(cluster.pg_pid)
        self.kafka = tree_cpu(cluster.kafka_pid)
        self.process = time.process_time()
        self.consumer = cluster.topic.cpu_seconds if cluster.topic else 0.0

    def done(self, end: float) -> dict[str, float]:
        wall = end - self.began
        c = self.cluster
        # A backend that started meanwhile counts from zero.
        pg = sum(s - self.pg.get(pid, 0.0) for pid, s in tree_cpu(c.pg_pid).items())
        kafka = sum(s - self.kafka.get(pid, 0.0) for pid, s in tree_cpu(c.kafka_pid).items())
        consumer = (c.topic.cpu_seconds if c.topic else 0.0) - self.consumer
        return {
            "cpu_replicas": (sum(r.cpu_seconds() for r in c.replicas) - self.replicas) / wall,
            "cpu_postgres": pg / wall,
            "cpu_kafka": kafka / wall,
            "cpu_client": (time.process_time() - self.process - consumer) / wall,
            "cpu_consumer": consumer / wall,
        }


class LockWaits:
    """pg_locks, sampled every SAMPLE_SECONDS until stopped: the mean number
    of transactions waiting for each lock."""

    def __init__(self, store: Store) -> None:
        self.samples: list[tuple[int, int]] = []
        self._task = asyncio.create_task(self._sample(store))

    async def _sample(self, store: Store) -> None:
        while True:
            self.samples.append(await store.lock_waits())
            await asyncio.sleep(SAMPLE_SECONDS)

    async def stop(self) -> dict[str, float]:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        n = max(1, len(self.samples))
        return {
            "waiting_events_lock": sum(e for e, _ in self.samples) / n,
            "waiting_account_lock": sum(a for _, a in self.samples) / n,
        }


async def delivered(cluster: Cluster, source: str, count: int) -> dict[str, float]:
    """When the consumer had `count` events of `source`, and when the store
    recorded every event it holds as delivered (perf_counter times)."""
    if cluster.topic is None:
        return {}

    async def recorded() -> bool:
        return await cluster.store.all_delivered(cluster.sink)

    consumed, recorded_at = await asyncio.gather(cluster.topic.reached(source, count), until(recorded))
    return {"consumed_at": consumed, "recorded_at": recorded_at}


def bulk_caller(ch: aio.Channel, token: str) -> Callable[[bytes], Awaitable[bytes]]:
    # Bytes in, bytes out: the client never builds or parses a message.
    stub: aio.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(BULK)
    metadata = (("authorization", f"Klaviyo-API-Key {token}"), ("revision", "2026-07-15"))

    async def call(body: bytes) -> bytes:
        return await stub(body, metadata=metadata)

    return call


async def bulk(cluster: Cluster, requests: int, clients: int) -> dict[str, float]:
    replicas = cluster.replicas
    # One request per replica first (its first transaction, the relay's producer), before the clock.
    warm = len(replicas)
    bodies = [bulk_request(n) for n in range(requests + warm)]
    channels = [channel(replicas[k % len(replicas)].port) for k in range(clients)]
    try:
        # Accounts round robin over the connections, each replica's too.
        tokens = cluster.tokens
        calls = [bulk_caller(ch, tokens[k // len(replicas) % len(tokens)]) for k, ch in enumerate(channels)]
        await asyncio.gather(*(calls[k](bodies[k]) for k in range(warm)))

        async def complete() -> bool:
            return await cluster.store.unfinished_bulk_jobs() == 0

        await until(complete)
        await delivered(cluster, "BULK_CREATE", warm * EVENTS_PER_REQUEST)

        cpu = Cpu(cluster)
        locks = LockWaits(cluster.store)
        began = cpu.began
        seconds, latencies = await load(calls, bodies[warm:])
        durable_at = await until(complete)
        waits = await locks.stop()
        times = await delivered(cluster, "BULK_CREATE", len(bodies) * EVENTS_PER_REQUEST)
    finally:
        for ch in channels:
            await ch.close()
    events = requests * EVENTS_PER_REQUEST
    stored = await cluster.store.events()
    assert stored == len(bodies) * EVENTS_PER_REQUEST, stored
    result = {
        "requests_per_s": requests / seconds,
        "accepted_events_per_s": events / seconds,
        "durable_events_per_s": events / (durable_at - began),
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        **waits,
        **cpu.done(max([durable_at, *times.values()])),
    }
    if times:
        result["delivered_events_per_s"] = events / (times["consumed_at"] - began)
        result["recorded_events_per_s"] = events / (times["recorded_at"] - began)
    return result


async def batch_jobs(cluster: Cluster, files: list[Path], rows: list[int]) -> dict[str, float]:
    """One job per replica, each on its share of the rows, all at once."""
    metadata = (("authorization", f"Bearer {cluster.token}"),)
    channels = [channel(r.port) for r in cluster.replicas]
    try:
        began = time.perf_counter()
        assets = await asyncio.gather(*(upload(ch, f, metadata) for ch, f in zip(channels, files, strict=True)))
        upload_seconds = time.perf_counter() - began
        since = [r.log_size() for r in cluster.replicas]
        cpu = Cpu(cluster)
        locks = LockWaits(cluster.store)
        began = cpu.began
        jobs = [asyncio.create_task(job_to_done(ch, a, metadata)) for ch, a in zip(channels, assets, strict=True)]

        async def stored() -> bool:
            # Every job made, none still reading.
            made, reading = await cluster.store.batch_jobs(("PENDING", "QUEUED", "IN_PROGRESS"))
            return made == len(jobs) and reading == 0

        stored_at = await until(stored)
        waits = await locks.stop()
        done = await asyncio.gather(*jobs)
        done_at = time.perf_counter()
    finally:
        for ch in channels:
            await ch.close()
    assert_done(done, rows)
    events = sum(job.success_rows for job in done)
    times = await delivered(cluster, "BATCH_JOB", events)
    ran_on = {
        r.proc.pid
        for r, s in zip(cluster.replicas, since, strict=True)
        for e in r.log_entries(s)
        if e.get("msg") == "read" and e.get("job_id") in {j.id for j in done}
    }
    total = sum(rows)
    result = {
        "upload_mbps": sum(a.size for a in assets) / 1e6 / upload_seconds,
        "events": float(events),
        "done_rows_per_s": total / (done_at - began),
        "replicas_ran": float(len(ran_on)),
        **waits,
        **cpu.done(max([done_at, *times.values()])),
    }
    result["stored_events_per_s"] = events / (stored_at - began)
    if times:
        result["delivered_events_per_s"] = events / (times["consumed_at"] - began)
    return result


async def run(
    deployment: Deployment,
    args: argparse.Namespace,
    running: servers.Cluster,
    files: dict[int, tuple[list[Path], list[int]]],
) -> dict[str, float]:
    """One run of one deployment on a fresh store and topic: (a) then (b)."""
    env = running.env()
    admin_url, bootstrap = env[servers.POSTGRES_ENV], env[servers.KAFKA_ENV]
    name = f"bench_{uuid.uuid4().hex[:12]}"
    topic = name.replace("_", "-")
    pg, kafka = (next(s for s in running.servers if s.name == kind) for kind in ("postgres", "kafka"))
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        directory = Path(tmp)
        # The store's (which `keys create` takes too), then the sink's.
        flags = ["--pepper-file", str(directory / "pepper")]
        sink: list[str] = []
        if deployment.postgres:
            async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
                await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            url = admin_url.rsplit("/", 1)[0] + f"/{name}"
            flags += ["--store", url]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        if deployment.kafka:
            new = NewTopic(topic, num_partitions=args.partitions, replication_factor=1)
            admin.create_topics([new])[topic].result(30)
            sink = ["--sink", f"kafka://{bootstrap}/{topic}"]
        replicas: list[Server] = []
        store: Store | None = None
        topic_reader = None
        spies: list[asyncio.subprocess.Process] = []
        try:
            for k in range(deployment.replicas):
                token = replicas[0].token if replicas else None
                log = directory / f"replica-{k + 1}"
                replicas.append(await start_server(directory / f"data-{k + 1}", log, 1, flags + sink, token))
            if deployment.postgres:
                store = await PostgresStore.connect(url)
            else:
                store = SqliteStore(directory / "data-1" / "batchgrpc.db")
            if deployment.kafka:
                topic_reader = Topic(bootstrap, topic, args.partitions)
            if args.profile is not None:
                args.profile.parent.mkdir(parents=True, exist_ok=True)
                out = args.profile.with_suffix(f".{deployment.name}.txt")
                spies = await profilers([r.proc.pid for r in replicas], out)
            tokens = [replicas[0].token] + [
                await account_key(f"bench-{a}", flags, directory / "data-1") for a in range(2, args.accounts + 1)
            ]
            cluster = Cluster(
                deployment, replicas, store, topic_reader, f"kafka:{topic}", pg.pid if deployment.postgres else None,
                kafka.pid if deployment.kafka else None, tokens,
            )  # fmt: skip
            result = {f"bulk_{k}": v for k, v in (await bulk(cluster, args.bulk_requests, args.clients)).items()}
            job_files, job_rows = files[deployment.replicas]
            result |= {f"job_{k}": v for k, v in (await batch_jobs(cluster, job_files, job_rows)).items()}
            if topic_reader is not None:
                # Exactly once: nothing more arrives.
                await asyncio.sleep(1.0)
                bulk_events = (args.bulk_requests + deployment.replicas) * EVENTS_PER_REQUEST
                assert topic_reader.error is None, topic_reader.error
                assert topic_reader.counts.get("BULK_CREATE") == bulk_events, topic_reader.counts
                assert topic_reader.counts.get("BATCH_JOB") == result["job_events"], topic_reader.counts
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                await spy.wait()
            if topic_reader is not None:
                topic_reader.close()
            for replica in replicas:
                await replica.stop()
            if store is not None:
                await store.close()
            if deployment.postgres:
                async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
                    await conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            if deployment.kafka:
                admin.delete_topics([topic])[topic].result(30)
    return result


# --- the whole ------------------------------------------------------------------


@contextlib.contextmanager
def started_servers() -> Iterator[servers.Cluster]:
    """PostgreSQL (durable) and Kafka for the whole benchmark, stopped
    however it ends (and killed by the kernel if this process is)."""
    servers.sweep()
    running = servers.started(list(servers.KINDS), servers.Signals(), runner=True, durable=True)

    def interrupt(signum: int, frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # servers.Signals only noted them while starting; from here they stop the benchmark.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    try:
        yield running
    finally:
        running.stop()


def deployments(text: str) -> list[Deployment]:
    names = text.split(",")
    unknown = [n for n in names if n not in DEPLOYMENTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}: choose from {', '.join(DEPLOYMENTS)}")
    return [DEPLOYMENTS[n] for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bulk-requests", type=int, default=200, help="1,000-event requests per run")
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the batch job's CSV")
    parser.add_argument("--clients", type=int, default=8, help="bulk calls in flight, each on its own connection")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of each run's topic")
    parser.add_argument(
        "--accounts", type=int, default=1, help="accounts the bulk load is spread over (an ingest locks its account)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--deployments", type=deployments, default=list(DEPLOYMENTS.values()), help=", ".join(DEPLOYMENTS)
    )
    parser.add_argument("--dir", type=Path, default=ROOT / "target" / "bench", help="where the CSV is made")
    parser.add_argument(
        "--profile", type=Path, help="write py-spy stacks of each replica (its last run) to PATH.DEPLOYMENT.N.txt"
    )
    args = parser.parse_args()
    chosen: list[Deployment] = args.deployments

    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"people-{args.rows}.csv"
    generate(path, args.rows)
    files = {n: (split(path, args.rows, n), shares(args.rows, n)) for n in {d.replicas for d in chosen}}
    # Whatever else runs on this machine takes from the same cores.
    load_before = Path("/proc/loadavg").read_text().split()[0]
    began = time.monotonic()
    results: dict[str, list[dict[str, float]]] = {d.name: [] for d in chosen}
    with started_servers() as running:
        pg = next(s for s in running.servers if s.name == "postgres")
        version = (pg.bindir.parent.name, pg.durable)
        for n in range(args.runs):
            for d in chosen:
                results[d.name].append(asyncio.run(run(d, args, running, files)))
                print(f"run {n + 1}/{args.runs} of {d.name} done ({time.monotonic() - began:.0f} s)", file=sys.stderr)
    ms = []
    for d in chosen:
        runs = results[d.name]
        ms.append({key: statistics.median(r[key] for r in runs) for key in runs[0]})

    print(
        f"{os.cpu_count()} cores, shared by the replicas, PostgreSQL {version[0]} (durable: fsync, synchronous_commit"
        f" and full_page_writes on), one Kafka broker ({args.partitions} partitions a topic) and this process, which"
        " is the load generator (pre-encoded requests sent as raw bytes) and the topic's read_committed consumer."
        f" Each replica one `batchgrpc serve --workers 1`; SQLite synchronous=FULL. Median of {args.runs} runs;"
        f" {time.monotonic() - began:.0f} s in all; load average before the start {load_before}."
    )
    header, rule = head([d.name for d in chosen])

    def line(label: str, key: str, fmt: str = "{:,.0f}") -> None:
        print(row(label, [fmt.format(m[key]) if key in m else "—" for m in ms]))

    def cpu_lines(prefix: str) -> None:
        line("CPU, cores: replicas", f"{prefix}cpu_replicas", "{:.2f}")
        line("CPU, cores: PostgreSQL", f"{prefix}cpu_postgres", "{:.2f}")
        line("CPU, cores: Kafka broker", f"{prefix}cpu_kafka", "{:.2f}")
        line("CPU, cores: load generator", f"{prefix}cpu_client", "{:.2f}")
        line("CPU, cores: consumer (same process)", f"{prefix}cpu_consumer", "{:.2f}")

    print()
    print(
        f"(a) bulk create events: {args.bulk_requests} requests of 1,000 events, closed loop, {args.clients}"
        f" connections spread over the replicas, {args.accounts} account{'s' if args.accounts > 1 else ''}"
    )
    print(header)
    print(rule)
    line("requests/s", "bulk_requests_per_s", "{:,.1f}")
    line("events/s accepted (RPC OK)", "bulk_accepted_events_per_s")
    line("events/s durable (jobs COMPLETE)", "bulk_durable_events_per_s")
    line("events/s delivered (consumer saw all)", "bulk_delivered_events_per_s")
    line("events/s delivered (sink_positions)", "bulk_recorded_events_per_s")
    line("RPC latency p50, ms", "bulk_p50_ms", "{:,.1f}")
    line("RPC latency p99, ms", "bulk_p99_ms", "{:,.1f}")
    line("waiting for lock_events, mean", "bulk_waiting_events_lock", "{:.2f}")
    line("waiting for the account lock, mean", "bulk_waiting_account_lock", "{:.2f}")
    cpu_lines("bulk_")

    most = max(d.replicas for d in chosen)
    each = f" ({most} replicas: {' + '.join(f'{r:,}' for r in shares(args.rows, most))})" if most > 1 else ""
    print()
    print(f"(b) batch job: {args.rows:,} CSV rows, one job per replica on its share{each}, from CreateBatchJob")
    print(header)
    print(rule)
    line("upload through gRPC, MB/s", "job_upload_mbps", "{:,.1f}")
    line("events/s stored (all rows in the store)", "job_stored_events_per_s")
    line("rows/s to DONE", "job_done_rows_per_s")
    line("events/s delivered (consumer saw all)", "job_delivered_events_per_s")
    line("events", "job_events")
    ran = [f"{m['job_replicas_ran']:.0f} of {d.replicas}" for m, d in zip(ms, chosen, strict=True)]
    print(row("replicas that ran a job", ran))
    line("waiting for lock_events, mean", "job_waiting_events_lock", "{:.2f}")
    cpu_lines("job_")


if __name__ == "__main__":
    main()
