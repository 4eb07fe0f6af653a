"""`make bench-ingest`: bulk create events and tracking batches under load.

Starts `batchgrpc serve` as its own process (rate limits off, a fresh data
directory). This process is the client: `--clients` concurrent calls on one
channel, each sending requests built and serialized before the clock starts,
so the client spends its CPU on the wire, not on building messages.

(a) bulk: 1,000-event CreateEventBulkCreateJob requests (100 profiles x 10
    events, unique ids). Prints requests/s, events/s accepted (answered OK)
    and durable (every job COMPLETE, read from the server's SQLite file),
    p50/p99 latency of the RPC, and the server's CPU use.
(b) tracking: 50-command Batch requests (25 `customers` + 25
    `customers/events` for 25 customers). Prints requests/s, commands/s,
    p50/p99 latency and the server's CPU use.

A program that prints figures, not a test: nothing here fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
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
from bench_jobs import peak_rss_kib, start_server

from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.track.v2 import tracking_pb2

BULK = "/batchgrpc.events.v1.EventBulkCreateJobService/CreateEventBulkCreateJob"
BATCH = "/batchgrpc.track.v2.TrackingService/Batch"
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    call: Callable[[bytes], Awaitable[bytes]], requests: list[bytes], clients: int
) -> tuple[float, list[float]]:
    """Sends every request with `clients` calls in flight; (seconds, latencies)."""
    latencies: list[float] = []
    queue = iter(requests)

    async def client() -> None:
        for body in queue:
            sent = time.perf_counter()
            await call(body)
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def unfinished_bulk_jobs(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        waiting = conn.execute("SELECT count(*) FROM bulk_jobs WHERE status IN ('QUEUED', 'PROCESSING')").fetchone()
        events = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(waiting[0]), int(events[0])
    finally:
        conn.close()


async def profiler(pid: int, out: Path | None) -> asyncio.subprocess.Process | None:
    """py-spy sampling the server (collapsed stacks), when asked for."""
    if out is None:
        return None
    spy = Path(sys.executable).parent / "py-spy"
    return await asyncio.create_subprocess_exec(
        str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def run(kind: str, count: int, clients: int, profile: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        data = Path(tmp) / "data"
        proc, port, token = await start_server(data, Path(tmp) / "server")
        try:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                metadata: tuple[tuple[str, str], ...]
                if kind == "bulk":
                    metadata = (("authorization", f"Klaviyo-API-Key {token}"), ("revision", "2026-07-15"))
                    requests = [bulk_request(n) for n in range(count)]
                else:
                    metadata = (("authorization", f"Bearer {token}"),)
                    requests = [track_request(n, "default") for n in range(count)]
                # Bytes in, bytes out: the client never parses a message.
                method: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                    BULK if kind == "bulk" else BATCH
                )

                async def call(body: bytes) -> bytes:
                    return await method(body, metadata=metadata)

                await call(requests[0])  # warm-up: connection, key cache, first transaction
                spy = await profiler(proc.pid, profile)
                cpu_before = cpu_seconds(proc.pid)
                started = time.perf_counter()
                seconds, latencies = await load(call, requests[1:], clients)
                result = {
                    "requests_per_s": len(latencies) / seconds,
                    "p50_ms": pct(latencies, 0.50) * 1000,
                    "p99_ms": pct(latencies, 0.99) * 1000,
                }
                if kind == "bulk":
                    while True:
                        waiting, events = unfinished_bulk_jobs(data / "batchgrpc.db")
                        if waiting == 0:
                            break
                        await asyncio.sleep(0.05)
                    durable = time.perf_counter() - started
                    sent_events = len(latencies) * PROFILES_PER_REQUEST * EVENTS_PER_PROFILE
                    assert events == count * PROFILES_PER_REQUEST * EVENTS_PER_PROFILE, events
                    result |= {
                        "accepted_events_per_s": sent_events / seconds,
                        "durable_events_per_s": sent_events / durable,
                        "durable_seconds": durable,
                    }
                    wall = durable
                else:
                    result["commands_per_s"] = result["requests_per_s"] * 2 * CUSTOMERS_PER_BATCH
                    wall = seconds
                result["server_cpu"] = (cpu_seconds(proc.pid) - cpu_before) / wall
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    await spy.wait()
                result["rss_mib"] = peak_rss_kib(proc.pid) / 1024
        finally:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    return result


def phases(bulk_count: int, track_count: int) -> None:
    """Where a request's server time goes, phase by phase, in this process
    (no gRPC): the same code the server runs, timed per request."""
    from batchgrpc import _core
    from batchgrpc.events.bulk import ingest_items
    from batchgrpc.events.servicers import bulk_violations
    from batchgrpc.store import IngestItem
    from batchgrpc.store.sqlite import connect, migrate
    from batchgrpc.store.sqlite_profiles import ingest
    from batchgrpc.track.commands import plan

    T = TypeVar("T")

    def timed(label: str, count: int, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        out = fn()
        print(f"  {label:<22} {(time.perf_counter() - started) / count * 1000:7.2f}")
        return out

    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        conn = connect(Path(tmp) / "phases.sqlite3")
        migrate(conn)

        def store(batches: list[list[IngestItem]]) -> None:
            for items in batches:
                conn.execute("BEGIN IMMEDIATE")
                ingest(conn, "default", items, time.time())
                conn.execute("COMMIT")

        n, bodies = bulk_count, [bulk_request(i) for i in range(bulk_count)]
        print(f"\nwhere a bulk request's server time goes (ms per 1,000-event request, {n} requests):")
        parse = bulk_pb2.CreateEventBulkCreateJobRequest.FromString
        messages = timed("parse protobuf", n, lambda: [parse(b) for b in bodies])
        timed("validate (Rust core)", n, lambda: [bulk_violations(b, time.time()) for b in bodies])
        items = timed("request -> items", n, lambda: [ingest_items(m, "j", set(), time.time()) for m in messages])
        timed("store: upsert+insert", n, lambda: store(items))

        n, batches = track_count, [track_request(i, "default") for i in range(track_count)]
        print(f"where a tracking batch's server time goes (ms per 50-command batch, {n} batches):")
        scopes = frozenset({"customers:set", "events:set"})
        commands = timed(
            "check (Rust core)", n, lambda: [_core.prepare_track_batch(b, time.time()).commands for b in batches]
        )
        items = timed("commands -> items", n, lambda: [plan(c, scopes, time.time())[1] for c in commands])
        timed("store: upsert+insert", n, lambda: store(items))
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bulk-requests", type=int, default=200, help="1,000-event requests per run")
    parser.add_argument("--track-requests", type=int, default=2000, help="50-command batches per run")
    parser.add_argument("--clients", type=int, default=8, help="calls in flight")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("bulk", "track"))
    parser.add_argument("--no-phases", action="store_true", help="skip the phase breakdown")
    parser.add_argument("--profile", type=Path, help="write py-spy collapsed stacks of the server's last run here")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; {args.clients} calls in flight; median of {args.runs} runs")

    def median(kind: str, count: int) -> dict[str, float]:
        profile = args.profile.with_suffix(f".{kind}.txt") if args.profile else None
        runs = [asyncio.run(run(kind, count, args.clients, profile)) for _ in range(args.runs)]
        return {key: statistics.median(r[key] for r in runs) for key in runs[0]}

    if args.only in (None, "bulk"):
        m = median("bulk", args.bulk_requests)
        print()
        print(f"(a) bulk create events: {args.bulk_requests} requests of 1,000 events")
        print("| measure                         |         value |")
        print("|---------------------------------|--------------:|")
        print(f"| requests/s                      | {m['requests_per_s']:>13,.1f} |")
        print(f"| events/s accepted (RPC OK)      | {m['accepted_events_per_s']:>13,.0f} |")
        print(f"| events/s durable (jobs COMPLETE)| {m['durable_events_per_s']:>13,.0f} |")
        print(f"| RPC latency p50                 | {m['p50_ms']:>10,.1f} ms |")
        print(f"| RPC latency p99                 | {m['p99_ms']:>10,.1f} ms |")
        print(f"| server CPU (cores busy)         | {m['server_cpu']:>13.2f} |")
        print(f"| server peak RSS                 | {m['rss_mib']:>9,.0f} MiB |")
        print("targets: >= 100,000 events/s durable, p99 < 100 ms")
    if args.only in (None, "track"):
        m = median("track", args.track_requests)
        print()
        print(f"(b) tracking batch: {args.track_requests} batches of 50 commands")
        print("| measure                         |         value |")
        print("|---------------------------------|--------------:|")
        print(f"| requests/s                      | {m['requests_per_s']:>13,.1f} |")
        print(f"| commands/s                      | {m['commands_per_s']:>13,.0f} |")
        print(f"| RPC latency p50                 | {m['p50_ms']:>10,.1f} ms |")
        print(f"| RPC latency p99                 | {m['p99_ms']:>10,.1f} ms |")
        print(f"| server CPU (cores busy)         | {m['server_cpu']:>13.2f} |")
        print(f"| server peak RSS                 | {m['rss_mib']:>9,.0f} MiB |")
        print("target: >= 1,000 requests/s")
    if not args.no_phases:
        phases(min(args.bulk_requests, 50), min(args.track_requests, 500))


if __name__ == "__main__":
    main()
