"""`make bench-core`: the Rust core's row pipeline against pure-Python peers.

Generates a deterministic CSV (person_id, email, first_name, last_name, city,
amount, ts, event_name), then times, each in its own process so peak RSS is
its own, the median of several runs of:

  (a) core   batchgrpc._core: parse, a REQUIRED_VALUE email rule with an email
             check, a number check on amount, event building and encoding
  (b) plain  csv.DictReader + re + json.dumps, the way a user would write it
  (c) best   csv.reader + precompiled regex + orjson
  (d) csv    the Rust csv crate parsing the file and nothing else (the limit)

Prints rows/s, MB/s and peak RSS, and the ratios core/(b), core/(c), core/(d).
A program that prints figures, not a test: nothing here fails on time.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST = ["Ann", "Bob", "Čeněk", "Dana", "Eve", "Filip", "Greta", "Hana", "Ivan", "Jana"]
LAST = ["Novák", "Smith", "O'Neil", "Dvořák", "Lee", "García", "Müller", "Kim"]
CITY = ["Prague", "Brno", "New York", "São Paulo", "Zürich", "Tokyo", "Lagos, Nigeria"]
EVENTS = ["purchase", "signup", "visit", ""]


def generate(path: Path, rows: int) -> None:
    """Deterministic rows of about 100 bytes; some quoted, some empty events."""
    if path.exists() and path.stat().st_size > 0 and path.with_suffix(".rows").read_text() == str(rows):
        return
    rng = random.Random(42)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("person_id,email,first_name,last_name,city,amount,ts,event_name\n")
        lines = []
        for i in range(1, rows + 1):
            first, last, city = rng.choice(FIRST), rng.choice(LAST), rng.choice(CITY)
            city = f'"{city}"' if "," in city else city
            amount = f"{rng.randrange(0, 100000) / 100:.2f}"
            day = f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
            ts = f"{day}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z"
            email = f"{first.lower()}.{last.lower().replace(chr(39), '')}{i}@example.com"
            lines.append(f"{i},{email},{first},{last},{city},{amount},{ts},{rng.choice(EVENTS)}\n")
            if len(lines) == 10_000:
                f.write("".join(lines))
                lines.clear()
        f.write("".join(lines))
    path.with_suffix(".rows").write_text(str(rows))


# --- the contenders, each run as `python bench_core.py --run NAME FILE` ----------


def run_core(path: str) -> int:
    from batchgrpc import _core

    reader = _core.open_rows(
        path,
        "CSV",
        job_id="bench",
        spec=_core.JobSpec(
            default_event_name="visit",
            columns=[
                {
                    "type": "FULL_NAME_MATCH",
                    "name": "email",
                    "validation_policy": "REQUIRED_VALUE",
                    "value_type": "EMAIL",
                },
                {"type": "FULL_NAME_MATCH", "name": "amount", "value_type": "NUMBER"},
            ],
        ),
    )
    good = 0
    for chunk in reader:
        # The events as the store takes them: one encoded buffer per chunk.
        assert len(chunk.encoded) > 2 or chunk.event_count == 0
        good += chunk.event_count
    return good


EMAIL = r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"


def run_plain(path: str) -> int:
    import csv
    import hashlib
    import json
    import re

    good = 0
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.DictReader(f), start=1):
            email = row["email"]
            if not email or not re.match(EMAIL, email):
                continue
            try:
                float(row["amount"])
            except ValueError:
                continue
            name = row["event_name"] or "visit"
            data = {k: v for k, v in row.items() if k != "event_name"}
            event = {
                "event_id": hashlib.sha256(f"bench:{number}".encode()).hexdigest()[:32],
                "event_name": name,
                "identity": row["person_id"],
                "data": data,
            }
            json.dumps(event)
            good += 1
    return good


def run_best(path: str) -> int:
    import csv
    import re

    import orjson
    from xxhash import xxh3_128_hexdigest

    email_re = re.compile(EMAIL)
    good = 0
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        e_i, a_i, n_i = header.index("email"), header.index("amount"), header.index("event_name")
        data_cols = [(i, h) for i, h in enumerate(header) if h != "event_name"]
        for number, row in enumerate(reader, start=1):
            email = row[e_i]
            if not email or not email_re.match(email):
                continue
            try:
                float(row[a_i])
            except ValueError:
                continue
            event_id = xxh3_128_hexdigest(number.to_bytes(8, "little"), seed=7)
            orjson.dumps([event_id, number, row[n_i] or "visit", row[0], {h: row[i] for i, h in data_cols}])
            good += 1
    return good


RUNNERS = {"core": run_core, "plain": run_plain, "best": run_best}


def child(name: str, path: str) -> None:
    started = time.perf_counter()
    good = RUNNERS[name](path)
    seconds = time.perf_counter() - started
    print(f"{good} {seconds}")


# --- the driver ------------------------------------------------------------------


def measure(name: str, path: Path, rows: int) -> tuple[float, float, int]:
    """Runs one contender in a fresh process; returns (seconds, rows/s, peak RSS KiB)."""
    if name == "csv":
        binary = ROOT / "target" / "release" / "examples" / "csv_baseline"
        cmd = [str(binary), str(path)]
    else:
        cmd = [sys.executable, __file__, "--run", name, str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read().split()
    # wait4 gives this child's own peak RSS (KiB on Linux).
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    seconds = float(out[1])
    return seconds, rows / seconds, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=ROOT / "target" / "bench")
    parser.add_argument("--only", help="comma-separated contenders (core,plain,best,csv)")
    parser.add_argument("--run", nargs=2, metavar=("NAME", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        child(*args.run)
        return

    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"people-{args.rows}.csv"
    started = time.perf_counter()
    generate(path, args.rows)
    size_mb = path.stat().st_size / 1e6
    took = time.perf_counter() - started
    print(f"file: {path.name}, {args.rows:,} rows, {size_mb:,.1f} MB (generated or reused in {took:.1f} s)")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; median of {args.runs} runs each")
    contenders = (args.only or "core,plain,best,csv").split(",")
    results = {}
    for name in contenders:
        runs = [measure(name, path, args.rows) for _ in range(args.runs)]
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[2] for r in runs)
        results[name] = (seconds, args.rows / seconds, size_mb / seconds, peak)
    labels = {
        "core": "(a) core",
        "plain": "(b) plain Python",
        "best": "(c) best-effort Python",
        "csv": "(d) csv crate, parse only",
    }
    print()
    print(f"| {'contender':<28} | {'seconds':>8} | {'rows/s':>12} | {'MB/s':>8} | {'peak RSS':>10} |")
    print(f"|{'-' * 30}|{'-' * 10}:|{'-' * 14}:|{'-' * 10}:|{'-' * 12}:|")
    for name, (seconds, rps, mbps, peak) in results.items():
        rss = f"{peak / 1024:,.0f} MiB"
        print(f"| {labels[name]:<28} | {seconds:>8.2f} | {rps:>12,.0f} | {mbps:>8.1f} | {rss:>10} |")
    if "core" in results:
        print()
        core = results["core"][1]
        for name, target in (("plain", 10), ("best", 4), ("csv", 0.35)):
            if name in results:
                ratio = core / results[name][1]
                print(f"core/{labels[name].split()[0]} = {ratio:.2f}  (target ≥ {target})")


if __name__ == "__main__":
    main()
