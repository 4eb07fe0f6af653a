"""What the rate limiter costs per request, by where its buckets live.

(a) `acquire`: sequential acquires of one account's token, alone and while
    bulk writes commit on the main database (`--writers` tasks appending
    `--events` events each, as bulk requests and job chunks do), for:
      memory   the buckets in a dict of this process (the limiter before
               they moved to the store: no sharing between processes)
      sibling  the SQLite store's limiter file (`store/sqlite_limits.py`),
               with `synchronous=NORMAL` (the choice) and `OFF`
      main     the same record in the main database, through its group
               commit (`synchronous=FULL`): the option not taken
    Prints mean, p50 and p99 microseconds per acquire, and how long each
    bulk write took meanwhile.
(b) `rpc`: `--clients` concurrent GetSystemTime calls against an in-process
    server, rate limits off and on, without and with the bulk writes of (a)
    on its store: requests/s and p50/p99 latency. Uses
    only `batchgrpc.server`, so it runs against an older tree too
    (PYTHONPATH=OLD/src python bench/bench_ratelimit.py rpc).

A program that prints figures, not a test: nothing here fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Acquires per measurement, or as many as fit in SECONDS.
N = 5000
SECONDS = 10.0

#: One bulk write: `events` new events into the main database's event log,
#: made in SQL so that the load's own Python does not hold the interpreter
#: lock: what an acquire waits for here is the database.
_BULK_WRITE = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO events (event_id, account, source, job_id, row_number, event_name, event_time,
                    profile_id, identity, data, value, value_currency, unique_id)
SELECT lower(hex(randomblob(16))), 'bench', 'BULK_CREATE', '', i, 'Viewed', ?,
       lower(hex(randomblob(8))), '', '{"n": 1}', NULL, '', '' FROM n
"""


async def write_load(store: Any, events: int, stop: asyncio.Event, times: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await store.write(lambda conn: conn.execute(_BULK_WRITE, (events, time.time())))
        times.append(time.perf_counter() - started)


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)

    def p(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"mean {statistics.fmean(ordered) * 1e6:8.1f} µs  p50 {p(0.5) * 1e6:8.1f} µs  p99 {p(0.99) * 1e6:8.1f} µs"


class MemoryLimits:
    """The buckets in this process only."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], Any] = {}

    async def update(self, account: str, api: str, change: Callable[[Any], tuple[Any, T]]) -> T:
        record, result = change(self._records.get((account, api)))
        self._records[(account, api)] = record
        return result

    async def close(self) -> None:
        pass


class MainDatabaseLimits:
    """The record in the main database, written through its group commit."""

    def __init__(self, store: Any) -> None:
        self._store = store

    async def prepare(self) -> None:
        await self._store.write(
            lambda conn: conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_limits (account TEXT, api TEXT, tokens TEXT, updated REAL,"
                " PRIMARY KEY (account, api)) WITHOUT ROWID"
            )
        )

    async def update(self, account: str, api: str, change: Callable[[Any], tuple[Any, T]]) -> T:
        from batchgrpc.store import LimitRecord

        def _update(conn: sqlite3.Connection) -> T:
            row = conn.execute(
                "SELECT tokens, updated FROM bench_limits WHERE account = ? AND api = ?", (account, api)
            ).fetchone()
            record, result = change(None if row is None else LimitRecord(tuple(json.loads(row[0])), row[1]))
            conn.execute(
                "INSERT OR REPLACE INTO bench_limits VALUES (?, ?, ?, ?)",
                (account, api, json.dumps(record.tokens), record.updated),
            )
            return result

        return await self._store.write(_update)

    async def close(self) -> None:
        pass


async def acquire_figures(writers: int, events: int) -> None:
    from batchgrpc.config import Rate, RateLimitConfig
    from batchgrpc.errors import Api
    from batchgrpc.ratelimit import RateLimiter
    from batchgrpc.store import sqlite_limits as sqlite_limits_module
    from batchgrpc.store.sqlite import SqliteStore
    from batchgrpc.store.sqlite_limits import SqliteRateLimitStore

    config = RateLimitConfig(rates={Api.TRACKING: Rate.parse_many("100000000/s")})
    print(f"(a) acquire, {N} in a row (at most {SECONDS:.0f} s); load: {writers} writers x {events} events a write")
    for kind in ("memory", "sibling NORMAL", "sibling OFF", "main FULL"):
        for loaded in (False, True):
            with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmp:
                store = await SqliteStore.open(Path(tmp))
                limits: Any
                if kind == "memory":
                    limits = MemoryLimits()
                elif kind.startswith("sibling"):
                    synchronous = kind.split()[1]
                    real_connect = sqlite_limits_module._connect

                    def connect(path: Path | None, synchronous: str = synchronous, real: Any = real_connect) -> Any:
                        conn = real(path)
                        conn.execute(f"PRAGMA synchronous={synchronous}")
                        return conn

                    sqlite_limits_module._connect = connect
                    limits = SqliteRateLimitStore(await store.run(lambda conn: conn))
                else:
                    limits = MainDatabaseLimits(store)
                    await limits.prepare()
                limiter = RateLimiter(config, limits)
                await limiter.acquire("warm", Api.TRACKING)
                stop = asyncio.Event()
                write_times: list[float] = []
                tasks = [
                    asyncio.create_task(write_load(store, events, stop, write_times))
                    for _ in range(writers if loaded else 0)
                ]
                await asyncio.sleep(0.3 if loaded else 0)
                samples: list[float] = []
                deadline = time.perf_counter() + SECONDS
                while len(samples) < N and time.perf_counter() < deadline:
                    started = time.perf_counter()
                    await limiter.acquire("acme", Api.TRACKING)
                    samples.append(time.perf_counter() - started)
                stop.set()
                await asyncio.gather(*tasks)
                if kind.startswith("sibling"):
                    sqlite_limits_module._connect = real_connect
                await limits.close()
                await store.close()
            load = f"loaded (write p50 {statistics.median(write_times) * 1e3:5.1f} ms)" if loaded else "alone"
            print(f"  {kind:15} {load:30} {summary(samples)}")


async def rpc_figures(clients: int, seconds: float, writers: int, events: int) -> None:
    from grpc import aio

    from batchgrpc import config as configuration
    from batchgrpc import server
    from batchgrpc.config import Rate, RateLimitConfig
    from batchgrpc.errors import Api
    from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

    print(f"(b) GetSystemTime, {clients} concurrent clients for {seconds:.0f} s, in-process server")
    for enabled, loaded in ((False, False), (True, False), (False, True), (True, True)):
        with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmp:
            # One account's calls never run out: what is measured is the cost.
            limits = RateLimitConfig(
                enabled=enabled, rates={**RateLimitConfig().rates, Api.TRACKING: Rate.parse_many("1000000/s")}
            )
            config = dataclasses.replace(
                configuration.Config(), listen="127.0.0.1:0", data_dir=Path(tmp), log_level="error", rate_limits=limits
            )
            running = await server.start(config)
            assert running.first_admin_key is not None
            metadata = (("authorization", f"Bearer {running.first_admin_key.token}"),)
            stop = asyncio.Event()
            write_times: list[float] = []
            load = [
                asyncio.create_task(write_load(running.store, events, stop, write_times))
                for _ in range(writers if loaded else 0)
            ]
            try:
                async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                    stub = tracking_pb2_grpc.TrackingServiceStub(channel)
                    request = tracking_pb2.GetSystemTimeRequest(project_token="default")
                    latencies, elapsed, cpu = await calls(
                        functools.partial(stub.GetSystemTime, request, metadata=metadata), clients, seconds
                    )
            finally:
                stop.set()
                await asyncio.gather(*load)
                await server.stop(running, 0)
        label = f"rate limits {'on ' if enabled else 'off'}, {'bulk writes' if loaded else 'no writes'}"
        ordered = sorted(latencies)
        print(
            f"  {label:33} {len(latencies) / elapsed:6.0f} requests/s  {cpu / len(latencies) * 1e6:5.0f} µs CPU each  "
            f"p50 {ordered[len(ordered) // 2] * 1e3:6.2f} ms  p99 {ordered[int(len(ordered) * 0.99)] * 1e3:6.2f} ms"
        )


async def calls(call: Callable[[], Any], clients: int, seconds: float) -> tuple[list[float], float, float]:
    """`clients` loops making `call` for `seconds`: each call's latency, the
    time taken, and the CPU time this process (client and server) used."""
    await call()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["acquire", "rpc", "all"], nargs="?", default="all")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.what in ("acquire", "all"):
        asyncio.run(acquire_figures(args.writers, args.events))
    if args.what in ("rpc", "all"):
        asyncio.run(rpc_figures(args.clients, args.seconds, args.writers, args.events))


if __name__ == "__main__":
    main()
