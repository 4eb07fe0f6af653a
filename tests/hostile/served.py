"""The hostile-input suite's server: `batchgrpc serve` as a process of its
own, so that its memory (VmRSS, VmHWM) is its own and a stalled event loop
shows as a slow answer to another client.

`responsive` runs a hostile call while a second client, in a process of its
own, pings the server, and returns the slowest ping: a test asserts it stays
under 100 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from grpc import aio

from .raw import stored

BATCHGRPC = str(Path(sys.executable).parent / "batchgrpc")
T = TypeVar("T")


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    port: int
    #: The first admin key's token (account "default", every scope).
    token: str
    channel: aio.Channel
    data_dir: Path
    logs: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def _status(self, field: str) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
        assert match, text
        return int(match.group(1)) * 1024

    def rss(self) -> int:
        """Resident bytes now."""
        return self._status("VmRSS")

    def peak_rss(self) -> int:
        """The most resident bytes since the process started."""
        return self._status("VmHWM")

    def stored(self) -> dict[str, int]:
        """Rows per table of the server's store (`raw.stored`)."""
        return stored(self.data_dir)

    def files(self) -> list[str]:
        """The data files and upload parts on disk."""
        return sorted(p.name for p in (self.data_dir / "files").iterdir())

    def log_lines(self) -> list[dict[str, object]]:
        """The server's JSON log so far."""
        return log_entries(self.logs.with_suffix(".err"))


def log_entries(path: Path) -> list[dict[str, object]]:
    """The JSON lines of a log file, but a last one still being written
    (a supervisor's workers write to it while the test reads)."""
    text = path.read_text(errors="replace")
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]


@asynccontextmanager
async def served(
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    name: str = "server",
    again: Served | None = None,
    workers: int = 1,
    token: str | None = None,
) -> AsyncIterator[Served]:
    """A fresh server process on a fresh data directory (or, `again`, on the
    data directory and key of an earlier one), rate limits off unless `env`
    turns them on; killed however the test ends. `token`: the key to call
    with when the store already has keys (no first key is printed).

    One worker unless told: the hostile suite measures the server process
    itself (its RSS, its pings), which `--workers N` would make a supervisor."""
    data_dir = again.data_dir if again is not None else tmp_path / f"{name}-data"
    logs = tmp_path / name
    environment = {**os.environ, "BATCHGRPC_NO_RATE_LIMITS": "1", **(env or {})}
    out, err = logs.with_suffix(".out"), logs.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            BATCHGRPC, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--workers", str(workers),
            *args,
            stdout=stdout, stderr=stderr, env=environment,
        )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            while True:
                assert proc.returncode is None, err.read_text()
                lines = log_entries(err)
                if listening := [e for e in lines if e["msg"] == "listening"]:
                    break
                await asyncio.sleep(0.05)
        if token is None and again is not None:
            token = again.token
        elif token is None:
            match = re.search(r"token:\s+(bgk_\S+)", out.read_text())
            assert match, out.read_text()
            token = match.group(1)
        async with aio.insecure_channel(f"127.0.0.1:{listening[0]['port']}") as channel:
            yield Served(proc, int(listening[0]["port"]), token, channel, data_dir, logs)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


#: The pinger: its own process, so that what the test process does (sending
#: 100 MB, say) does not slow the pings it measures. It pings until its
#: stdin closes, then prints the slowest ping and the count.
_PINGER = """
import asyncio, json, sys, time
from grpc import aio
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

async def main(address, token, every):
    metadata = (("authorization", "Bearer " + token),)
    request = tracking_pb2.GetSystemTimeRequest(project_token="default")
    loop = asyncio.get_running_loop()
    closed = loop.run_in_executor(None, sys.stdin.read)
    async with aio.insecure_channel(address) as channel:
        stub = tracking_pb2_grpc.TrackingServiceStub(channel)
        await stub.GetSystemTime(request, metadata=metadata)
        print("ready", flush=True)
        slowest, count = 0.0, 0
        while not closed.done() or count == 0:
            started = time.perf_counter()
            await stub.GetSystemTime(request, metadata=metadata, timeout=30)
            slowest = max(slowest, time.perf_counter() - started)
            count += 1
            await asyncio.sleep(every)
    print(json.dumps({"slowest": slowest, "count": count}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


async def responsive(served: Served, during: Awaitable[T], *, every: float = 0.02) -> tuple[T, float]:
    """Awaits `during` while another process calls GetSystemTime every
    `every` seconds; returns its result and the slowest ping in seconds (at
    least one ping is always measured)."""
    pinger = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PINGER, served.address, served.token, str(every),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert pinger.stdin is not None
    assert pinger.stdout is not None
    try:
        # Connected before the clock matters.
        assert (await asyncio.wait_for(pinger.stdout.readline(), 30)).strip() == b"ready"
        result = await during
    finally:
        pinger.stdin.close()
        out = await asyncio.wait_for(pinger.stdout.read(), 60)
        await pinger.wait()
    measured = json.loads(out)
    assert measured["count"] >= 1
    return result, float(measured["slowest"])


async def steadily(served: Served, attack: Callable[[], Awaitable[T]], *, bound: float = 0.1) -> tuple[T, float]:
    """`responsive` for the attacks that move 100 MB: one that sees a ping
    over `bound` is made again, once, and the second must not.

    Here a whole VM now and then stops for a few hundred milliseconds under
    such I/O: seen once in about ten runs, with the test process's own pings
    stopped as long as the server's. A stalled event loop stalls it every
    time; a stall of the machine does not come back at the same moment."""
    result, slowest = await responsive(served, attack())
    if slowest < bound:
        return result, slowest
    print(f"a ping took {slowest * 1000:.0f} ms; the attack is made once more", file=sys.stderr)
    return await responsive(served, attack())
