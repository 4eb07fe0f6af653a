"""`make bench-jobs`: batch jobs end to end through a real server, for each
worker count of `--workers` (default 1,2), figures side by side.

For every run, starts `batchgrpc serve --workers N` as its own process tree
(rate limits off, a fresh data directory), uploads the reference CSV of `make
bench-core` through `UploadFileAsset` in 1 MiB chunks and runs jobs on it to
DONE (the same rules as the core benchmark: a REQUIRED_VALUE email rule with
the email check, a number check on amount, a default event name):

  - one job of `--rows` rows: it runs on one worker, whatever N is;
  - N jobs at once, one per worker, on the same rows split into N files
    (each created on a connection to a different worker, which leases the
    job it creates): the aggregate rows/s.

Each prints upload MB/s, rows/s from CreateBatchJob to the last DONE, which
workers ran the jobs (their "read" log lines), the CPU of the whole tree
(supervisor and workers, from /proc, in cores), the client's CPU, and the
peak RSS (VmHWM) of the largest worker and of all processes.

In the same run, the store's own limit: a plain `executemany` of the same
events (encoded by the core, decoded before the clock starts) with the
store's settings, in transactions of the job's chunk size, into a bare rowid
table (no index) and into the project's schema (`bench_schema.raw_rates`),
and the ratios job rows/s / bare and / schema.

`--rss` (`make bench-jobs-rss`) runs only this: one job on a ~100 MB and on
a ~1 GB CSV (`--rss-sizes`, generated into a temporary directory after `df`
says there is room) through a fresh 1-worker server, printing each file's
size, rows, rows/s, the worker's peak RSS (VmHWM) and its RSS sampled every
0.1 s while the job runs: flat when memory does not grow with the file.

A program that prints figures, not a test: nothing here fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_schema
from bench_core import ROOT, generate

from batchgrpc import _core
from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc, file_asset_pb2, file_asset_pb2_grpc
from batchgrpc.track.v2 import tracking_pb2

BATCHGRPC = str(Path(sys.executable).parent / "batchgrpc")
SYSTEM_TIME = "/batchgrpc.track.v2.TrackingService/GetSystemTime"
CHUNK_ROWS = 10_000
#: About what a row of `bench_core.generate` takes (89 bytes at 100,000 rows).
BYTES_PER_ROW = 90
RULES = [
    {"type": "FULL_NAME_MATCH", "name": "email", "validation_policy": "REQUIRED_VALUE", "value_type": "EMAIL"},
    {"type": "FULL_NAME_MATCH", "name": "amount", "value_type": "NUMBER"},
]


def vm_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status (VmRSS, VmHWM, ...) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def peak_rss_kib(pid: int) -> int:
    return vm_kib(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """`batchgrpc serve --workers N` as a process tree: with N > 1 a
    supervisor and N workers (one process, both in one, with N = 1)."""

    proc: asyncio.subprocess.Process
    port: int
    token: str
    worker_pids: list[int]
    #: The shared stderr of every process: one JSON object per line.
    log: Path

    @property
    def pids(self) -> list[int]:
        return list(dict.fromkeys([self.proc.pid, *self.worker_pids]))

    def cpu_seconds(self) -> float:
        """CPU seconds of the whole tree: the supervisor and every worker."""
        return sum(cpu_seconds(pid) for pid in self.pids)

    def peak_rss_mib(self) -> tuple[float, float]:
        """(the largest worker's, the sum over the tree), VmHWM in MiB."""
        workers = [peak_rss_kib(pid) / 1024 for pid in self.worker_pids]
        supervisor = [peak_rss_kib(pid) / 1024 for pid in self.pids if pid not in self.worker_pids]
        return max(workers), sum(workers) + sum(supervisor)

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_entries(self, since: int = 0) -> list[dict[str, Any]]:
        """The log's lines from byte `since`, up to the last whole line."""
        data = self.log.read_bytes()[since:]
        data = data[: data.rfind(b"\n") + 1]
        return [json.loads(line) for line in data.splitlines() if line.startswith(b"{")]

    def answered(self, method: str, since: int = 0) -> list[int]:
        """RPCs of `method` in the access log from byte `since`, per worker
        (in the order of `worker_pids`)."""
        counts = dict.fromkeys(self.worker_pids, 0)
        for entry in self.log_entries(since):
            if entry.get("msg") == "rpc" and entry.get("method") == method:
                counts[entry["pid"]] += 1
        return list(counts.values())

    async def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        await self.proc.wait()


async def start_server(
    data_dir: Path, log: Path, workers: int, args: Sequence[str] = (), token: str | None = None
) -> Server:
    """`batchgrpc serve` with `args` after its own; `token`: the key to use
    on a store that has keys already (another replica's), which prints no
    first key."""
    env = {**os.environ, "BATCHGRPC_NO_RATE_LIMITS": "1"}
    # Append mode: the workers write to the same file (inherited stderr).
    with log.with_suffix(".out").open("ab") as out, log.with_suffix(".err").open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            BATCHGRPC, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--workers", str(workers),
            *args,
            stdout=out, stderr=err, env=env,
        )  # fmt: skip
    # The server prints the first key, then logs "listening" with its port
    # and its workers' pids.
    for _ in range(1200):
        printed = re.search(r"token:\s+(bgk_\S+)", log.with_suffix(".out").read_text())
        key = token or (printed.group(1) if printed else None)
        for line in log.with_suffix(".err").read_text().splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if key and entry.get("msg") == "listening":
                pids = [int(pid) for pid in entry["worker_pids"]]
                assert len(pids) == workers, entry
                return Server(proc, int(entry["port"]), key, pids, log.with_suffix(".err"))
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the server did not start: {log.with_suffix('.err').read_text()}")


def channel(port: int) -> aio.Channel:
    """A channel with a TCP connection of its own: by default channels to
    one address share one connection, which would pin one worker."""
    return aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])


async def channels_per_worker(server: Server, count: int) -> list[tuple[int, aio.Channel]]:
    """`count` channels, spread evenly over the workers, each with the pid
    of the worker it reaches.

    The kernel picks a worker per connection (SO_REUSEPORT hashes the
    addresses), so 8 connections to 2 workers split 6/2 or worse in about a
    third of the runs, and the figures would vary with that. Each new channel
    makes one call; the access log says which worker answered; channels are
    kept until every worker has its share. The answers also warm each
    worker's key cache."""
    probe_body = tracking_pb2.GetSystemTimeRequest(project_token="default").SerializeToString()
    metadata = (("authorization", f"Bearer {server.token}"),)
    wanted = {pid: count // len(server.worker_pids) for pid in server.worker_pids}
    for pid in server.worker_pids[: count % len(server.worker_pids)]:
        wanted[pid] += 1
    kept: list[tuple[int, aio.Channel]] = []
    for _ in range(count * 20):
        if len(kept) == count:
            return kept
        ch = channel(server.port)
        since = server.log_size()
        probe: aio.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(SYSTEM_TIME)
        await probe(probe_body, metadata=metadata)
        pid = next(
            e["pid"] for e in server.log_entries(since) if e.get("msg") == "rpc" and e.get("method") == SYSTEM_TIME
        )
        if wanted[pid] > 0:
            wanted[pid] -= 1
            kept.append((pid, ch))
        else:
            await ch.close()
    for _, ch in kept:
        await ch.close()
    raise RuntimeError(f"could not spread {count} connections over the workers: {wanted} missing")


def shares(rows: int, parts: int) -> list[int]:
    return [rows // parts + (1 if i < rows % parts else 0) for i in range(parts)]


def split(path: Path, rows: int, parts: int) -> list[Path]:
    """`path`'s rows in `parts` files of `shares` rows, each with the header."""
    if parts == 1:
        return [path]
    outs = [path.with_name(f"{path.stem}-part{i + 1}of{parts}.csv") for i in range(parts)]
    if all(o.exists() and o.stat().st_mtime >= path.stat().st_mtime for o in outs):
        return outs
    with path.open("rb") as f:
        header = f.readline()
        for out, share in zip(outs, shares(rows, parts), strict=True):
            with out.open("wb") as o:
                o.write(header)
                for _ in range(share):
                    o.write(f.readline())
    return outs


async def upload(channel: aio.Channel, path: Path, metadata: tuple[tuple[str, str], ...]) -> file_asset_pb2.FileAsset:
    async def chunks() -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
        yield file_asset_pb2.UploadFileAssetRequest(metadata=file_asset_pb2.FileAssetMetadata(name=path.name))
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                yield file_asset_pb2.UploadFileAssetRequest(chunk=block)

    files = file_asset_pb2_grpc.FileAssetServiceStub(channel)
    return (await files.UploadFileAsset(chunks(), metadata=metadata)).file_asset


async def job_to_done(
    channel: aio.Channel, asset: file_asset_pb2.FileAsset, metadata: tuple[tuple[str, str], ...]
) -> batch_job_pb2.BatchJob:
    jobs = batch_job_pb2_grpc.BatchJobServiceStub(channel)
    job = (
        await jobs.CreateBatchJob(
            batch_job_pb2.CreateBatchJobRequest(
                data_source=batch_job_pb2.DataSource(type="FILE_ASSET", file_asset_id=asset.id),
                default_event_name="visit",
                columns=[batch_job_pb2.Column(**rule) for rule in RULES],  # type: ignore[arg-type]
            ),
            metadata=metadata,
        )
    ).batch_job
    last = job
    async for update in jobs.WatchBatchJob(batch_job_pb2.WatchBatchJobRequest(batch_id=job.id), metadata=metadata):
        last = update.batch_job
    return last


def assert_done(done: Sequence[batch_job_pb2.BatchJob], rows: Sequence[int]) -> None:
    """Every job DONE, having read its file's rows."""
    for job, expected in zip(done, rows, strict=True):
        assert batch_job_pb2.BatchJob.Status.Name(job.status) == "DONE", job
        assert job.rows_read == expected, job


async def run_jobs(files: list[Path], rows: list[int], workers: int) -> dict[str, float]:
    """One job per file, all at once, each created on a channel of its own
    (spread over the workers: the worker that creates a job runs it)."""
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        server = await start_server(Path(tmp) / "data", Path(tmp) / "server", workers)
        metadata = (("authorization", f"Bearer {server.token}"),)
        try:
            channels = [ch for _, ch in await channels_per_worker(server, len(files))]
            try:
                started = time.perf_counter()
                assets = [await upload(ch, path, metadata) for ch, path in zip(channels, files, strict=True)]
                upload_seconds = time.perf_counter() - started

                cpu_before, client_before = server.cpu_seconds(), time.process_time()
                started = time.perf_counter()
                done = await asyncio.gather(
                    *(job_to_done(ch, asset, metadata) for ch, asset in zip(channels, assets, strict=True))
                )
                job_seconds = time.perf_counter() - started
                server_cpu = (server.cpu_seconds() - cpu_before) / job_seconds
                client_cpu = (time.process_time() - client_before) / job_seconds
            finally:
                for ch in channels:
                    await ch.close()
            assert_done(done, rows)
            ids = {job.id for job in done}
            # The worker that read each job's file ("read": its last chunk stored).
            ran_on = {e["pid"] for e in server.log_entries() if e.get("msg") == "read" and e.get("job_id") in ids}
            rss_worker, rss_total = server.peak_rss_mib()
        finally:
            await server.stop()
    return {
        "upload_mbps": sum(a.size for a in assets) / 1e6 / upload_seconds,
        "job_seconds": job_seconds,
        "rows_per_s": sum(rows) / job_seconds,
        "events": float(sum(job.success_rows for job in done)),
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "job_workers": float(len(ran_on)),
        "rss_worker_mib": rss_worker,
        "rss_total_mib": rss_total,
    }


def raw_rates(path: Path, runs: int) -> tuple[float, float]:
    """The job's own events (encoded by the core, decoded before the clock
    starts) through a plain executemany, in transactions of the job's chunk
    size: (bare table, project's schema) rows/s, the store's own limit."""
    spec = _core.JobSpec(default_event_name="visit", columns=RULES)
    own: list[dict[str, object]] = []
    for chunk in _core.open_rows(path, "CSV", job_id="bench", spec=spec, chunk_rows=CHUNK_ROWS):
        for e in json.loads(chunk.encoded):
            own.append(
                {
                    "event_id": e[0],
                    "row_number": e[1],
                    "event_name": e[2],
                    "identity": e[3],
                    "data": json.dumps(e[4], separators=(",", ":")),
                }
            )
    assert bench_schema.TRANSACTION_ROWS["batch"] == CHUNK_ROWS
    return bench_schema.raw_rates("batch", len(own), own, runs=runs)


async def rss_job(path: Path, rows: int) -> dict[str, float]:
    """One job on `path` through a fresh 1-worker server, the worker's RSS
    sampled every 0.1 s while the job runs."""
    with tempfile.TemporaryDirectory(prefix="bench-jobs-rss-", dir=path.parent) as tmp:
        server = await start_server(Path(tmp) / "data", Path(tmp) / "server", 1)
        (pid,) = server.worker_pids
        metadata = (("authorization", f"Bearer {server.token}"),)
        samples: list[int] = []

        async def sample() -> None:
            while True:
                samples.append(vm_kib(pid, "VmRSS"))
                await asyncio.sleep(0.1)

        try:
            ch = channel(server.port)
            try:
                started = time.perf_counter()
                asset = await upload(ch, path, metadata)
                upload_seconds = time.perf_counter() - started
                after_upload = vm_kib(pid, "VmRSS")
                sampler = asyncio.create_task(sample())
                started = time.perf_counter()
                job = await job_to_done(ch, asset, metadata)
                job_seconds = time.perf_counter() - started
                sampler.cancel()
            finally:
                await ch.close()
            assert batch_job_pb2.BatchJob.Status.Name(job.status) == "DONE", job
            assert job.rows_read == rows, job
            hwm = vm_kib(pid, "VmHWM")
        finally:
            await server.stop()
    tenth = max(1, len(samples) // 10)
    return {
        "size_mb": asset.size / 1e6,
        "rows": float(rows),
        "upload_mbps": asset.size / 1e6 / upload_seconds,
        "job_seconds": job_seconds,
        "rows_per_s": rows / job_seconds,
        "hwm_mib": hwm / 1024,
        "rss_after_upload_mib": after_upload / 1024,
        "rss_max_mib": max(samples) / 1024,
        "rss_first_tenth_mib": max(samples[:tenth]) / 1024,
        "rss_last_tenth_mib": max(samples[-tenth:]) / 1024,
        "samples": float(len(samples)),
    }


def free_bytes(directory: Path) -> int:
    out = subprocess.run(["df", "-B1", "--output=avail", str(directory)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def rss(sizes_mb: list[int]) -> None:
    """`--rss`: one job on a file of each size, the worker's memory."""
    #: What a file needs on disk while its job runs: the file, its uploaded
    #: copy and the database its events make (about 4 times the file).
    need_factor = 6
    with tempfile.TemporaryDirectory(prefix="bench-jobs-rss-") as tmp:
        directory = Path(tmp)
        free = free_bytes(directory)
        print(f"{os.cpu_count()} cores; 1 worker; files in {directory} (df: {free / 1e9:,.1f} GB free there)")
        results = []
        for size in sizes_mb:
            if size * 1e6 * need_factor > free:
                print(
                    f"skipped ~{size:,} MB: it needs about {size * need_factor / 1e3:,.1f} GB free,"
                    f" {free / 1e9:,.1f} GB are"
                )
                continue
            rows = round(size * 1e6 / BYTES_PER_ROW)
            path = directory / f"people-{rows}.csv"
            started = time.perf_counter()
            generate(path, rows)
            print(
                f"generated {path.name}: {path.stat().st_size / 1e6:,.1f} MB in {time.perf_counter() - started:.0f} s"
            )
            results.append(asyncio.run(rss_job(path, rows)))
            path.unlink()
    if not results:
        return
    print()
    print(f"| {'measure':<40} | " + " | ".join(f"{r['size_mb']:>9,.0f} MB" for r in results) + " |")
    print(f"|{'-' * 42}|" + "|".join("-" * 13 + ":" for _ in results) + "|")
    lines = [
        ("rows", "rows", "{:,.0f}"),
        ("upload through gRPC, MB/s", "upload_mbps", "{:,.1f}"),
        ("CreateBatchJob to DONE, s", "job_seconds", "{:,.1f}"),
        ("rows/s", "rows_per_s", "{:,.0f}"),
        ("worker peak RSS (VmHWM), MiB", "hwm_mib", "{:,.0f}"),
        ("worker RSS after the upload, MiB", "rss_after_upload_mib", "{:,.0f}"),
        ("worker RSS during the job, max, MiB", "rss_max_mib", "{:,.0f}"),
        ("  max over the job's first 10 %, MiB", "rss_first_tenth_mib", "{:,.0f}"),
        ("  max over the job's last 10 %, MiB", "rss_last_tenth_mib", "{:,.0f}"),
        ("RSS samples (every 0.1 s)", "samples", "{:,.0f}"),
    ]
    for label, key, fmt in lines:
        print(row(label, [fmt.format(r[key]) for r in results]))


def worker_counts(text: str) -> list[int]:
    counts = [int(n) for n in text.split(",")]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a list of worker counts, such as 1,2")
    return counts


def columns(counts: list[int]) -> tuple[str, str]:
    """The header and rule of a table with a column per worker count."""
    return head([f"{n} worker{'s' if n > 1 else ''}" for n in counts])


def head(names: list[str]) -> tuple[str, str]:
    """The header and rule of a table with a column per name (of `row`'s widths)."""
    return (
        "| measure                                  | " + " | ".join(f"{n:>12}" for n in names) + " |",
        "|------------------------------------------|" + "|".join("-" * 13 + ":" for _ in names) + "|",
    )


def row(label: str, values: list[str]) -> str:
    return f"| {label:<40} | " + " | ".join(f"{v:>12}" for v in values) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=worker_counts, default=[1, 2], help="worker counts, comma-separated")
    parser.add_argument("--dir", type=Path, default=ROOT / "target" / "bench")
    parser.add_argument("--no-raw", action="store_true", help="skip the plain executemany baseline")
    parser.add_argument("--only", choices=("single", "concurrent"), help="run only one job, or only W at once")
    parser.add_argument("--rss", action="store_true", help="only the worker's RSS on one job per file of --rss-sizes")
    parser.add_argument(
        "--rss-sizes", type=lambda t: [int(n) for n in t.split(",")], default=[100, 1000], help="MB, comma-separated"
    )
    args = parser.parse_args()
    if args.rss:
        rss(args.rss_sizes)
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"people-{args.rows}.csv"
    generate(path, args.rows)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {path.name}, {args.rows:,} rows, {size_mb:,.1f} MB; median of {args.runs} runs; "
          f"{os.cpu_count()} cores")  # fmt: skip

    def median(jobs: int, workers: int) -> dict[str, float]:
        files, rows = split(path, args.rows, jobs), shares(args.rows, jobs)
        runs = [asyncio.run(run_jobs(files, rows, workers)) for _ in range(args.runs)]
        m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        m |= {key: max(r[key] for r in runs) for key in ("rss_worker_mib", "rss_total_mib")}
        m["job_workers"] = min(r["job_workers"] for r in runs)
        return m

    single: dict[int, dict[str, float]] = {}
    concurrent: dict[int, dict[str, float]] = {}
    for n in args.workers:
        if args.only in (None, "single"):
            single[n] = median(1, n)
        if args.only in (None, "concurrent"):
            # With one worker, W jobs at once is the one job.
            concurrent[n] = single[n] if n == 1 and n in single else median(n, n)

    header, rule = columns(args.workers)
    print()
    print(header)
    print(rule)
    for title, table in (
        (f"one job of {args.rows:,} rows", single),
        (f"W jobs of {args.rows:,}/W rows at once", concurrent),
    ):
        if not table:
            continue
        ms = [table[n] for n in args.workers]
        print(row(f"**{title}**", ["" for _ in ms]))
        print(row("upload through gRPC, MB/s", [f"{m['upload_mbps']:.1f}" for m in ms]))
        print(row("CreateBatchJob to (last) DONE, s", [f"{m['job_seconds']:.2f}" for m in ms]))
        print(row("rows/s end to end (all jobs)", [f"{m['rows_per_s']:,.0f}" for m in ms]))
        print(row("events stored", [f"{m['events']:,.0f}" for m in ms]))
        print(
            row(
                "workers that ran a job",
                [f"{m['job_workers']:.0f} of {n}" for n, m in zip(args.workers, ms, strict=True)],
            )
        )
        print(row("server CPU, cores (supervisor + workers)", [f"{m['server_cpu']:.2f}" for m in ms]))
        print(row("client CPU, cores", [f"{m['client_cpu']:.2f}" for m in ms]))
        print(row("peak RSS, largest worker, MiB", [f"{m['rss_worker_mib']:,.0f}" for m in ms]))
        print(row("peak RSS, all processes, MiB", [f"{m['rss_total_mib']:,.0f}" for m in ms]))
    first = args.workers[0]
    print()
    for title, table in (("one job", single), ("W jobs at once", concurrent)):
        for n in args.workers[1:]:
            if table:
                ratio = table[n]["rows_per_s"] / table[first]["rows_per_s"]
                print(f"{title}: rows/s with {n} workers / with {first} = {ratio:.2f}")
    if not args.no_raw:
        bare, schema = raw_rates(path, args.runs)
        print(
            "raw insert of the same events (bench_schema: executemany, transactions of 10,000, the store's"
            " settings, one process, no server):"
        )
        print(f"  bare rowid table, no index: {bare:,.0f} rows/s; project's schema: {schema:,.0f} rows/s")
        for title, table in (("one job", single), ("W jobs at once", concurrent)):
            for n in args.workers if table else []:
                job = table[n]["rows_per_s"]
                print(
                    f"{title}, {n} worker{'s' if n > 1 else ''}: rows/s / bare = {job / bare:.2f},"
                    f" / schema = {job / schema:.2f}"
                )
        print("target: >= 250,000 rows/s for one job of 1,000,000 rows")


if __name__ == "__main__":
    main()
