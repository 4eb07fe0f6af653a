"""`make bench-jobs`: a batch job end to end through a real server.

Starts `batchgrpc serve` as its own process (rate limits off, a fresh data
directory), uploads the reference CSV of `make bench-core` through
`UploadFileAsset` in 1 MiB chunks, runs a job on it to DONE (the same rules as
the core benchmark: a REQUIRED_VALUE email rule with the email check, a
number check on amount, a default event name), and prints:

  - upload MB/s,
  - rows/s from CreateBatchJob to DONE,
  - the server's peak RSS (VmHWM),

and, in the same run, the store's own limit: a plain `executemany` of the
same events (encoded by the core, decoded before the clock starts) into the
same schema with the same settings, in transactions of the job's chunk size.

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
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import ROOT, generate

from batchgrpc import _core
from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc, file_asset_pb2, file_asset_pb2_grpc
from batchgrpc.store.sqlite import connect, migrate

BATCHGRPC = str(Path(sys.executable).parent / "batchgrpc")
CHUNK_ROWS = 10_000
RULES = [
    {"type": "FULL_NAME_MATCH", "name": "email", "validation_policy": "REQUIRED_VALUE", "value_type": "EMAIL"},
    {"type": "FULL_NAME_MATCH", "name": "amount", "value_type": "NUMBER"},
]


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


async def start_server(data_dir: Path, log: Path) -> tuple[asyncio.subprocess.Process, int, str]:
    env = {**os.environ, "BATCHGRPC_NO_RATE_LIMITS": "1"}
    with log.with_suffix(".out").open("wb") as out, log.with_suffix(".err").open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            # One process: the figures read its pid's CPU and RSS.
            BATCHGRPC, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--workers", "1",
            stdout=out, stderr=err, env=env,
        )  # fmt: skip
    # The server prints the first key, then logs "listening" with its port.
    for _ in range(600):
        token = re.search(r"token:\s+(bgk_\S+)", log.with_suffix(".out").read_text())
        for line in log.with_suffix(".err").read_text().splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if token and entry.get("msg") == "listening":
                return proc, int(entry["port"]), token.group(1)
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the server did not start: {log.with_suffix('.err').read_text()}")


async def run_job(path: Path, rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        proc, port, token = await start_server(Path(tmp) / "data", Path(tmp) / "server")
        metadata = (("authorization", f"Bearer {token}"),)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                files = file_asset_pb2_grpc.FileAssetServiceStub(channel)
                jobs = batch_job_pb2_grpc.BatchJobServiceStub(channel)

                async def chunks() -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
                    yield file_asset_pb2.UploadFileAssetRequest(
                        metadata=file_asset_pb2.FileAssetMetadata(name=path.name)
                    )
                    with path.open("rb") as f:
                        while block := f.read(1 << 20):
                            yield file_asset_pb2.UploadFileAssetRequest(chunk=block)

                started = time.perf_counter()
                asset = (await files.UploadFileAsset(chunks(), metadata=metadata)).file_asset
                upload_seconds = time.perf_counter() - started

                started = time.perf_counter()
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
                async for update in jobs.WatchBatchJob(
                    batch_job_pb2.WatchBatchJobRequest(batch_id=job.id), metadata=metadata
                ):
                    last = update.batch_job
                job_seconds = time.perf_counter() - started
            assert batch_job_pb2.BatchJob.Status.Name(last.status) == "DONE", last
            assert last.rows_read == rows, last
            rss = peak_rss_kib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    return {
        "upload_mbps": asset.size / 1e6 / upload_seconds,
        "job_seconds": job_seconds,
        "rows_per_s": rows / job_seconds,
        "events": float(last.success_rows),
        "rss_mib": rss / 1024,
    }


def raw_insert(path: Path) -> dict[str, float]:
    """The same events through a plain executemany: the store's own limit."""
    batches = []
    spec = _core.JobSpec(default_event_name="visit", columns=RULES)
    for chunk in _core.open_rows(path, "CSV", job_id="bench", spec=spec, chunk_rows=CHUNK_ROWS):
        now = time.time()
        batches.append(
            [
                (e[0], "default", "BATCH_JOB", "bench", e[1], e[2], now, "", e[3], json.dumps(e[4]), None, "", "")
                for e in json.loads(chunk.encoded)
            ]
        )
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as tmp:
        conn = connect(Path(tmp) / "raw.sqlite3")
        migrate(conn)
        started = time.perf_counter()
        for rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO events (event_id, account, source, job_id, row_number, event_name, event_time,"
                " profile_id, identity, data, value, value_currency, unique_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        conn.close()
    events = sum(len(b) for b in batches)
    return {"seconds": seconds, "events_per_s": events / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=ROOT / "target" / "bench")
    parser.add_argument("--no-raw", action="store_true", help="skip the plain executemany baseline")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"people-{args.rows}.csv"
    generate(path, args.rows)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {path.name}, {args.rows:,} rows, {size_mb:,.1f} MB; median of {args.runs} runs; "
          f"{os.cpu_count()} cores")  # fmt: skip

    runs = [asyncio.run(run_job(path, args.rows)) for _ in range(args.runs)]
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    peak = max(r["rss_mib"] for r in runs)
    print()
    print("| measure                               |        value |")
    print("|---------------------------------------|-------------:|")
    print(f"| upload through gRPC                   | {median['upload_mbps']:>7.1f} MB/s |")
    print(f"| job, CreateBatchJob to DONE           | {median['job_seconds']:>9.2f} s |")
    print(f"| job rows/s end to end                 | {median['rows_per_s']:>12,.0f} |")
    print(f"| events stored by the job              | {median['events']:>12,.0f} |")
    print(f"| server peak RSS                       | {peak:>8,.0f} MiB |")
    if not args.no_raw:
        raws = [raw_insert(path) for _ in range(args.runs)]
        raw = statistics.median(r["events_per_s"] for r in raws)
        print(f"| plain executemany, events/s           | {raw:>12,.0f} |")
        print()
        print(f"job rows/s / raw insert events/s = {median['rows_per_s'] / raw:.2f}  (target ≥ 0.60)")


if __name__ == "__main__":
    main()
