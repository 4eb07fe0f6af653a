"""`make bench-ingest`: bulk create events and tracking batches under load,
for each worker count of `--workers` (default 1,2), figures side by side.

For every run, starts `batchgrpc serve --workers N` as its own process tree
(rate limits off, a fresh data directory). This process is the client, on
`--clients` connections, each a channel of its own (one channel is one
connection, which would pin one worker), spread evenly over the workers.
Requests are built and serialized before the clock starts and sent as raw
bytes, so the client spends its CPU on the wire, not on messages; it shares
the cores with the server, so its CPU is printed too.

Each kind runs twice:

  - closed loop (the most it takes): one call in flight per connection;
  - open loop (`--open-rate-bulk`, `--open-rate-track`, `--open-seconds`;
    `--no-open-loop` skips it): request k is sent at start + k/rate whether
    or not the earlier ones have answered, round robin over the
    connections, and its latency runs from that scheduled time, so waiting
    in a queue counts (no coordinated omission). Prints the rate achieved
    and p50/p99/p99.9.

(a) bulk: 1,000-event CreateEventBulkCreateJob requests (100 profiles x 10
    events, unique ids). Prints requests/s, events/s accepted (answered OK)
    and durable (every job COMPLETE, read from the server's SQLite file),
    latency of the RPC; and, in the same run, the raw insert rate of the
    same kind of rows into a bare table and into the project's schema
    (`bench_schema.raw_rates`), with durable/bare and durable/schema.
(b) tracking: 50-command Batch requests (25 `customers` + 25
    `customers/events` for 25 customers). Prints requests/s, commands/s,
    latency.
(c) the floor a call stands on, closed loop: `GetSystemTime` through the
    same server (authentication, the interceptor, the access log; no core,
    no store), and a bare grpc.aio server in one process of its own that
    takes the tracking batch's bytes and answers two bytes (no batchgrpc
    code at all). What is left of a tracking batch's time above these is
    ours.

Both print the CPU of the whole tree (supervisor and workers, from /proc,
in cores), the client's, each worker's share of the calls (from the access
log's `rpc` lines and their `pid`), and the peak RSS of the largest worker
and of all processes. Then, in this process, where a request's server time
goes, phase by phase (`phases`).

A program that prints figures, not a test: nothing here fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_schema
from bench_jobs import channels_per_worker, columns, row, start_server, worker_counts

from batchgrpc.events.revision import REVISIONS
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.track.v2 import tracking_pb2

BULK = "/batchgrpc.events.v1.EventBulkCreateJobService/CreateEventBulkCreateJob"
BATCH = "/batchgrpc.track.v2.TrackingService/Batch"
SYSTEM_TIME = "/batchgrpc.track.v2.TrackingService/GetSystemTime"
BARE = "/bench.Bare/Take"
#: The bare server of (c): grpc.aio with one generic handler, no interceptor.
BARE_SERVER = """
import asyncio, grpc
from grpc import aio

async def main():
    async def take(request, context):
        return b"\\x08\\x01"
    handler = grpc.method_handlers_generic_handler(
        "bench.Bare", {"Take": grpc.unary_unary_rpc_method_handler(take)})
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    await server.start()
    await server.wait_for_termination()

asyncio.run(main())
"""
PROFILES_PER_REQUEST = 100
EVENTS_PER_PROFILE = 10
CUSTOMERS_PER_BATCH = 25


def bulk_request(n: int) -> bytes:
    request = bulk_pb2.CreateEventBulkCreateJobRequest()
    request.data.type = "event-bulk-create-job"
    items = request.data.attributes.events_bulk_create.data
    for p in range(PROFILES_PER_REQUEST):
        item = items.add(type="event-bulk-create")
        profile = item.attributes.profile.data
        profile.type = "profile"
        profile.attributes.email = f"user-{n}-{p}@bench.example"
        profile.attributes.first_name = f"User {p}"
        profile.attributes.properties.update({"plan": "gold", "visits": p})
        for e in range(EVENTS_PER_PROFILE):
            event = item.attributes.events.data.add(type="event")
            event.attributes.metric.data.type = "metric"
            event.attributes.metric.data.attributes.name = ("Viewed Product", "Added to Cart", "Placed Order")[e % 3]
            event.attributes.properties.update({"sku": f"SKU-{e}", "price": 9.5 + e, "source": "bench"})
            event.attributes.time = "2026-11-01T10:00:00Z"
            event.attributes.unique_id = f"{n}-{p}-{e}"
    return request.SerializeToString()


def track_request(n: int, account: str) -> bytes:
    request = tracking_pb2.BatchRequest(project_token=account)
    for c in range(CUSTOMERS_PER_BATCH):
        ids = {"registered": f"cust-{n}-{c}", "cookie": f"ck-{n}-{c}"}
        customer = request.commands.add(name="customers", command_id=f"c{c}")
        customer.data.update({"customer_ids": ids, "properties": {"first_name": "Ann", "tier": c % 4}})
        event = request.commands.add(name="customers/events", command_id=f"e{c}")
        event.data.update(
            {
                "customer_ids": ids,
                "event_type": "purchase",
                "timestamp": 1_790_000_000.0 + c,
                "properties": {"total_price": 12.5, "voucher_code": "KA54-548C-TEST"},
            }
        )
    return request.SerializeToString()


async def load(calls: list[Callable[[bytes], Awaitable[bytes]]], requests: list[bytes]) -> tuple[float, list[float]]:
    """Sends every request with one call in flight per client (each client
    its own channel); (seconds, latencies)."""
    latencies: list[float] = []
    queue = iter(requests)

    async def client(call: Callable[[bytes], Awaitable[bytes]]) -> None:
        for body in queue:
            sent = time.perf_counter()
            await call(body)
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(client(call) for call in calls))
    return time.perf_counter() - started, latencies


async def open_load(
    calls: list[Callable[[bytes], Awaitable[bytes]]], requests: list[bytes], rate: float
) -> tuple[float, list[float], dict[str, int], float]:
    """Sends request k at start + k/rate whether or not earlier ones have
    answered, round robin over the connections; each latency runs from the
    request's scheduled time, so time spent queued (in the server, or here
    behind a late send) counts. (seconds from start to the last answer,
    latencies of the answered, failures by status code, the latest send
    behind its schedule in seconds: above a few ms the client itself could
    not keep the rate.)"""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lag = 0.0

    async def one(call: Callable[[bytes], Awaitable[bytes]], body: bytes, due: float) -> None:
        try:
            await call(body)
        except aio.AioRpcError as e:
            errors[e.code().name] = errors.get(e.code().name, 0) + 1
            return
        latencies.append(time.perf_counter() - due)

    tasks = []
    start = time.perf_counter()
    for k, body in enumerate(requests):
        due = start + k / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        lag = max(lag, time.perf_counter() - due)
        tasks.append(asyncio.create_task(one(calls[k % len(calls)], body, due)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - start, latencies, errors, lag


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def unfinished_bulk_jobs(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        waiting = conn.execute("SELECT count(*) FROM bulk_jobs WHERE status IN ('QUEUED', 'PROCESSING')").fetchone()
        return int(waiting[0])
    finally:
        conn.close()


def stored_events(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


async def all_complete(db: Path) -> None:
    # Another process's commits: nothing here to wait on but the file.
    while unfinished_bulk_jobs(db):  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def profilers(pids: list[int], out: Path | None) -> list[asyncio.subprocess.Process]:
    """py-spy sampling each server process (collapsed stacks), when asked for."""
    if out is None:
        return []
    spy = str(Path(sys.executable).parent / "py-spy")
    spies = []
    for i, pid in enumerate(pids):
        output = str(out.with_suffix(f".{i}{out.suffix}"))
        argv = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--idle", "--output", output]
        devnull = asyncio.subprocess.DEVNULL
        spies.append(await asyncio.create_subprocess_exec(*argv, stdout=devnull, stderr=devnull))
    return spies


async def run(
    kind: str, count: int, clients: int, workers: int, profile: Path | None = None, open_rate: float | None = None
) -> dict[str, float]:
    """One run on a fresh server: `count` requests of `kind`, closed loop,
    or, with `open_rate`, sent at that many requests/s."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        data = Path(tmp) / "data"
        server = await start_server(data, Path(tmp) / "server", workers)
        db = data / "batchgrpc.db"
        try:
            channels = await channels_per_worker(server, clients)
            try:
                metadata: tuple[tuple[str, str], ...]
                # One request more per worker: the warm-up's.
                total = count + len(server.worker_pids)
                if kind == "bulk":
                    metadata = (("authorization", f"Klaviyo-API-Key {server.token}"), ("revision", "2026-07-15"))
                    requests = [bulk_request(n) for n in range(total)]
                elif kind == "floor":
                    metadata = (("authorization", f"Bearer {server.token}"),)
                    body = tracking_pb2.GetSystemTimeRequest(project_token="default").SerializeToString()
                    requests = [body] * total
                else:
                    metadata = (("authorization", f"Bearer {server.token}"),)
                    requests = [track_request(n, "default") for n in range(total)]
                method = {"bulk": BULK, "floor": SYSTEM_TIME}.get(kind, BATCH)

                def caller(ch: aio.Channel) -> Callable[[bytes], Awaitable[bytes]]:
                    # Bytes in, bytes out: the client never parses a message.
                    stub: aio.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(method)

                    async def call(body: bytes) -> bytes:
                        return await stub(body, metadata=metadata)

                    return call

                calls = [caller(ch) for _, ch in channels]
                # Warm-up, one request per worker: its first transaction.
                first_of = {pid: call for (pid, _), call in zip(channels, calls, strict=True)}
                warm = len(first_of)
                await asyncio.gather(*(call(body) for call, body in zip(first_of.values(), requests, strict=False)))
                if kind == "bulk":
                    await all_complete(db)
                spies = await profilers(server.pids, profile)
                since = server.log_size()
                cpu_before, client_before = server.cpu_seconds(), time.process_time()
                started = time.perf_counter()
                if open_rate is None:
                    seconds, latencies = await load(calls, requests[warm:])
                    result = {"requests_per_s": len(latencies) / seconds}
                else:
                    seconds, latencies, errors, lag = await open_load(calls, requests[warm:], open_rate)
                    result = {
                        "requests_per_s": len(latencies) / seconds,
                        "errors": float(sum(errors.values())),
                        **{f"errors_{code}": float(n) for code, n in errors.items()},
                        "send_lag_ms": lag * 1000,
                        "p999_ms": pct(latencies, 0.999) * 1000,
                    }
                result |= {"p50_ms": pct(latencies, 0.50) * 1000, "p99_ms": pct(latencies, 0.99) * 1000}
                if kind == "bulk":
                    await all_complete(db)
                    durable = time.perf_counter() - started
                    sent_events = len(latencies) * PROFILES_PER_REQUEST * EVENTS_PER_PROFILE
                    result |= {
                        "accepted_events_per_s": sent_events / seconds,
                        "durable_events_per_s": sent_events / durable,
                        "durable_seconds": durable,
                    }
                    wall = durable
                else:
                    result["commands_per_s"] = result["requests_per_s"] * 2 * CUSTOMERS_PER_BATCH
                    wall = seconds
                result["server_cpu"] = (server.cpu_seconds() - cpu_before) / wall
                result["client_cpu"] = (time.process_time() - client_before) / wall
                for spy in spies:
                    spy.send_signal(signal.SIGINT)
                    await spy.wait()
                for i, answered in enumerate(server.answered(method, since)):
                    result[f"answered_{i}"] = answered
                if kind == "bulk" and not result.get("errors"):
                    events = stored_events(db)
                    assert events == total * PROFILES_PER_REQUEST * EVENTS_PER_PROFILE, events
                result["rss_worker_mib"], result["rss_total_mib"] = server.peak_rss_mib()
            finally:
                for _, ch in channels:
                    await ch.close()
        finally:
            await server.stop()
    return result


async def bare_floor(count: int, clients: int) -> dict[str, float]:
    """(c): the tracking batch's bytes to a bare grpc.aio server, closed loop."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", BARE_SERVER, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(await proc.stdout.readline())
        channels = [
            aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(clients)
        ]
        body = track_request(0, "default")
        calls = [ch.unary_unary(BARE) for ch in channels]
        await asyncio.gather(*(call(body) for call in calls))
        cpu_before, client_before = proc_cpu_seconds(proc.pid), time.process_time()
        seconds, latencies = await load(calls, [body] * count)
        for ch in channels:
            await ch.close()
        return {
            "requests_per_s": len(latencies) / seconds,
            "p50_ms": pct(latencies, 0.50) * 1000,
            "p99_ms": pct(latencies, 0.99) * 1000,
            "server_cpu": (proc_cpu_seconds(proc.pid) - cpu_before) / seconds,
            "client_cpu": (time.process_time() - client_before) / seconds,
        }
    finally:
        proc.kill()
        await proc.wait()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_rows(count: int) -> list[dict[str, object]]:
    """The fields of the first `count` events `bulk_request` sends, as the
    store gets them (profile and event ids are the server's, left to
    bench_schema's generator)."""
    rows: list[dict[str, object]] = []
    per_request = PROFILES_PER_REQUEST * EVENTS_PER_PROFILE
    for i in range(count):
        n, within = divmod(i, per_request)
        p, e = divmod(within, EVENTS_PER_PROFILE)
        properties = {"sku": f"SKU-{e}", "price": 9.5 + e, "source": "bench"}
        rows.append(
            {
                "row_number": e,
                "event_name": ("Viewed Product", "Added to Cart", "Placed Order")[e % 3],
                "identity": f"user-{n}-{p}@bench.example",
                "data": json.dumps(properties, separators=(",", ":")),
                "unique_id": f"{n}-{p}-{e}",
            }
        )
    return rows


def phases(bulk_count: int, track_count: int) -> None:
    """Where a request's server time goes, phase by phase, in this process
    (no gRPC): the same code the server runs, timed per request."""
    from batchgrpc import _core
    from batchgrpc.events.bulk import batch_of
    from batchgrpc.store import IngestBatch
    from batchgrpc.store.sqlite import connect, migrate
    from batchgrpc.store.sqlite_profiles import ingest
    from batchgrpc.track.commands import plan

    T = TypeVar("T")

    def timed(label: str, count: int, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        out = fn()
        print(f"  {label:<26} {(time.perf_counter() - started) / count * 1000:7.2f}")
        return out

    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        conn = connect(Path(tmp) / "phases.sqlite3")
        migrate(conn)

        def store(batches: list[IngestBatch]) -> None:
            for batch in batches:
                conn.execute("BEGIN IMMEDIATE")
                ingest(conn, "default", batch, time.time())
                conn.execute("COMMIT")

        async def decoded(bodies: list[bytes]) -> list[IngestBatch]:
            return [await batch_of(b, "j", set(), time.time()) for b in bodies]

        n, bodies = bulk_count, [bulk_request(i) for i in range(bulk_count)]
        print(f"\nwhere a bulk request's server time goes (ms per 1,000-event request, {n} requests):")
        floor = REVISIONS["2026-10-15"].earliest_event_time
        timed("validate (Rust core)", n, lambda: [_core.validate_bulk_request(b, time.time(), floor) for b in bodies])
        batches = timed("request -> rows (Rust core)", n, lambda: asyncio.run(decoded(bodies)))
        timed("store: upsert+insert", n, lambda: store(batches))

        n, requests = track_count, [track_request(i, "default") for i in range(track_count)]
        print(f"where a tracking batch's server time goes (ms per 50-command batch, {n} batches):")
        scopes = frozenset({"customers:set", "events:set"})
        commands = timed(
            "check (Rust core)", n, lambda: [_core.prepare_track_batch(b, time.time()).commands for b in requests]
        )
        batches = timed(
            "commands -> items (Python)", n, lambda: [IngestBatch.of(plan(c, scopes, time.time())[1]) for c in commands]
        )
        timed("store: upsert+insert", n, lambda: store(batches))
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bulk-requests", type=int, default=200, help="1,000-event requests per run")
    parser.add_argument("--track-requests", type=int, default=2000, help="50-command batches per run")
    parser.add_argument("--clients", type=int, default=8, help="calls in flight, each on its own connection")
    parser.add_argument("--workers", type=worker_counts, default=[1, 2], help="worker counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("bulk", "track", "floor"))
    parser.add_argument("--floor-requests", type=int, default=5000, help="calls per run of (c), the floor")
    parser.add_argument("--no-phases", action="store_true", help="skip the phase breakdown")
    parser.add_argument("--no-open-loop", action="store_true", help="skip the open-loop runs")
    parser.add_argument("--open-rate-bulk", type=float, default=50.0, help="bulk requests/s offered, open loop")
    parser.add_argument("--open-rate-track", type=float, default=500.0, help="tracking batches/s offered, open loop")
    parser.add_argument(
        "--open-seconds", type=float, help="seconds of open-loop sending (default: 20 for bulk, 10 for tracking)"
    )
    parser.add_argument(
        "--profile", type=Path, help="write py-spy collapsed stacks of each server process's last run here"
    )
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} cores; {args.clients} connections, spread evenly over the workers;"
        f" closed loop: one call in flight per connection; median of {args.runs} runs"
    )

    def median(kind: str, count: int, workers: int, open_rate: float | None = None) -> dict[str, float]:
        loop = "open" if open_rate else "closed"
        profile = args.profile.with_suffix(f".{kind}.{loop}.{workers}w.txt") if args.profile else None
        runs = [asyncio.run(run(kind, count, args.clients, workers, profile, open_rate)) for _ in range(args.runs)]
        # A failure's code appears only in the runs that had it.
        keys = dict.fromkeys(key for r in runs for key in r)
        m = {key: statistics.median(r.get(key, 0.0) for r in runs) for key in keys}
        m |= {key: max(r[key] for r in runs) for key in ("rss_worker_mib", "rss_total_mib")}
        # Shares over every run's RPCs, not a median.
        m |= {key: sum(r[key] for r in runs) for key in runs[0] if key.startswith("answered_")}
        return m

    def share(m: dict[str, float], workers: int) -> str:
        answered = [m[f"answered_{i}"] for i in range(workers)]
        return " / ".join(f"{100 * a / sum(answered):.0f}" for a in answered) + " %"

    def shared_rows(ms: list[dict[str, float]]) -> None:
        """The rows every table has: latency, CPU, each worker's share, RSS."""
        print(row("RPC latency p50, ms", [f"{m['p50_ms']:,.1f}" for m in ms]))
        print(row("RPC latency p99, ms", [f"{m['p99_ms']:,.1f}" for m in ms]))
        if "p999_ms" in ms[0]:
            print(row("RPC latency p99.9, ms", [f"{m['p999_ms']:,.1f}" for m in ms]))
            print(row("RPCs failed", [f"{m['errors']:,.0f}" for m in ms]))
            for code in sorted({key for m in ms for key in m if key.startswith("errors_")}):
                print(row(f"  of which {code[len('errors_') :]}", [f"{m.get(code, 0):,.0f}" for m in ms]))
            print(row("latest send behind schedule, ms", [f"{m['send_lag_ms']:,.1f}" for m in ms]))
        print(row("server CPU, cores (supervisor + workers)", [f"{m['server_cpu']:.2f}" for m in ms]))
        print(row("client CPU, cores", [f"{m['client_cpu']:.2f}" for m in ms]))
        print(row("RPCs answered per worker", [share(m, n) for n, m in zip(args.workers, ms, strict=True)]))
        print(row("peak RSS, largest worker, MiB", [f"{m['rss_worker_mib']:,.0f}" for m in ms]))
        print(row("peak RSS, all processes, MiB", [f"{m['rss_total_mib']:,.0f}" for m in ms]))

    def open_title(what: str, rate: float, seconds: float) -> str:
        return (
            f"{what}, open loop: {rate:,.0f} requests/s offered for {seconds:g} s ({round(rate * seconds):,}"
            " requests), latency from each request's scheduled send"
        )

    header, rule = columns(args.workers)
    first = args.workers[0]
    if args.only in (None, "bulk"):
        ms = [median("bulk", args.bulk_requests, n) for n in args.workers]
        events = args.bulk_requests * PROFILES_PER_REQUEST * EVENTS_PER_PROFILE
        bare, schema = bench_schema.raw_rates("bulk", events, own_rows(events), runs=args.runs)
        print()
        print(f"(a) bulk create events, closed loop: {args.bulk_requests} requests of 1,000 events")
        print(header)
        print(rule)
        print(row("requests/s", [f"{m['requests_per_s']:,.1f}" for m in ms]))
        print(row("events/s accepted (RPC OK)", [f"{m['accepted_events_per_s']:,.0f}" for m in ms]))
        print(row("events/s durable (jobs COMPLETE)", [f"{m['durable_events_per_s']:,.0f}" for m in ms]))
        shared_rows(ms)
        print(row("durable / raw insert, bare table", [f"{m['durable_events_per_s'] / bare:.2f}" for m in ms]))
        print(row("durable / raw insert, project's schema", [f"{m['durable_events_per_s'] / schema:.2f}" for m in ms]))
        for n, m in zip(args.workers[1:], ms[1:], strict=True):
            ratio = m["durable_events_per_s"] / ms[0]["durable_events_per_s"]
            print(f"events/s durable with {n} workers / with {first} = {ratio:.2f}")
        print(
            f"raw insert of {events:,} such events (bench_schema: executemany, transactions of 1,000, the store's"
            f" settings, one process, no server): bare table {bare:,.0f} rows/s, project's schema {schema:,.0f} rows/s"
        )
        print("targets: >= 100,000 events/s durable, p99 < 100 ms at 50 requests/s offered (open loop)")
        if not args.no_open_loop:
            rate, seconds = args.open_rate_bulk, args.open_seconds or 20.0
            ms = [median("bulk", round(rate * seconds), n, rate) for n in args.workers]
            print()
            print(open_title("(a') bulk create events", rate, seconds))
            print(header)
            print(rule)
            print(row("requests/s achieved (answered OK)", [f"{m['requests_per_s']:,.1f}" for m in ms]))
            print(row("events/s durable (jobs COMPLETE)", [f"{m['durable_events_per_s']:,.0f}" for m in ms]))
            print(row("last send to every job COMPLETE, s", [f"{m['durable_seconds'] - seconds:,.1f}" for m in ms]))
            shared_rows(ms)
    if args.only in (None, "track"):
        ms = [median("track", args.track_requests, n) for n in args.workers]
        print()
        print(f"(b) tracking batch, closed loop: {args.track_requests} batches of 50 commands")
        print(header)
        print(rule)
        print(row("requests/s", [f"{m['requests_per_s']:,.1f}" for m in ms]))
        print(row("commands/s", [f"{m['commands_per_s']:,.0f}" for m in ms]))
        shared_rows(ms)
        for n, m in zip(args.workers[1:], ms[1:], strict=True):
            ratio = m["requests_per_s"] / ms[0]["requests_per_s"]
            print(f"requests/s with {n} workers / with {first} = {ratio:.2f}")
        print("target: >= 1,000 requests/s")
        if not args.no_open_loop:
            rate, seconds = args.open_rate_track, args.open_seconds or 10.0
            ms = [median("track", round(rate * seconds), n, rate) for n in args.workers]
            print()
            print(open_title("(b') tracking batch", rate, seconds))
            print(header)
            print(rule)
            print(row("requests/s achieved (answered OK)", [f"{m['requests_per_s']:,.1f}" for m in ms]))
            shared_rows(ms)
    if args.only in (None, "floor"):
        ms = [median("floor", args.floor_requests, n) for n in args.workers]
        bare = [asyncio.run(bare_floor(args.floor_requests, args.clients)) for _ in range(args.runs)]
        b = {key: statistics.median(r[key] for r in bare) for key in bare[0]}
        print()
        print(f"(c) the floor of a call, closed loop: {args.floor_requests} calls")
        print(header)
        print(rule)
        print(row("GetSystemTime requests/s (no core, no store)", [f"{m['requests_per_s']:,.0f}" for m in ms]))
        print(row("GetSystemTime latency p50, ms", [f"{m['p50_ms']:,.2f}" for m in ms]))
        print(row("server CPU, cores (supervisor + workers)", [f"{m['server_cpu']:.2f}" for m in ms]))
        print(row("client CPU, cores", [f"{m['client_cpu']:.2f}" for m in ms]))
        print(
            f"bare grpc.aio server, one process, the tracking batch's {len(track_request(0, 'default')):,} bytes in:"
            f" {b['requests_per_s']:,.0f} requests/s, p50 {b['p50_ms']:.2f} ms,"
            f" server CPU {b['server_cpu']:.2f} cores, client CPU {b['client_cpu']:.2f} cores"
        )
    if not args.no_phases:
        phases(min(args.bulk_requests, 50), min(args.track_requests, 500))


if __name__ == "__main__":
    main()
