"""Issue 11, class 1: column rules whose patterns compile into large automata
must neither stall the event loop nor keep the server's memory.

Each pattern compiles within `_core.PATTERN_SIZE_LIMIT` (1 MiB) and a job's
patterns together within `_core.JOB_PATTERN_BUDGET` (16 MiB), once per job,
in a worker thread with the GIL released, and the allocator's free memory
is given back when a job ends or its patterns are refused. Before the fix
one CreateBatchJob of 100 rules of `\\w{1,100}\\w{1,100}` (each accepted under
the regex crate's default 10 MiB) held the event loop for 13.9 s and left
the server at 1,886 MiB (peak 2,326 MiB) before its job even compiled them
again; 100 rules of `\\w{1,18}` held it for 1 s (253 MiB).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from batchgrpc import _core
from batchgrpc.batches.v6 import batch_job_pb2

from ..conftest import rich_error
from ..wire.batches_client import Client, status
from .served import Served, responsive, served, steadily
from .test_rows import MIB, upload

Column = batch_job_pb2.Column
#: Heavy: about 11 MB compiled, over the cap.
OVER_CAP = r"\w{1,100}\w{1,100}"
#: Just under the cap: about 1.01 MB compiled.
UNDER_CAP = r"\w{1,18}"
#: Most the server's peak RSS may rise over idle while a job at the caps
#: reads 100 MB: its patterns (16 MiB), their search caches (at most 128 KiB
#: each), a row (1 MiB) and the chunk buffers, plus the upload's messages.
RSS_BOUND = 100 * MIB
#: How near idle the server's RSS must come back once the job is done.
RSS_AFTER_BOUND = 25 * MIB


def heavy_request(pattern: str, rules: int = 100) -> batch_job_pb2.CreateBatchJobRequest:
    request = batch_job_pb2.CreateBatchJobRequest(name="heavy", event_name="e")
    for _ in range(rules):
        request.columns.add(type=Column.PATTERN_NAME_MATCH, name_pattern=pattern, pattern=pattern)
    return request


async def nothing_stored(client: Client) -> None:
    listed = await client.jobs.ListBatchJobs(batch_job_pb2.ListBatchJobsRequest(), metadata=client.metadata)
    assert list(listed.batch_jobs) == []


@pytest.mark.parametrize(
    ("pattern", "field", "message"),
    [
        (OVER_CAP, "columns[0].name_pattern", "the pattern compiles to more than 1048576 bytes; simplify it"),
        # Each under its cap: the job's budget runs out at the 17th pattern.
        (UNDER_CAP, "columns[8].name_pattern", "the job's patterns together compile to more than 16777216 bytes"),
    ],
    ids=["over the cap", "under the cap, over the budget"],
)
async def test_heavy_patterns_are_refused_without_stalling_the_server(
    tmp_path: Path, pattern: str, field: str, message: str
) -> None:
    async with served(tmp_path) as s:
        client = Client(s.channel, s.token)
        idle = s.rss()
        asset = await client.upload(b"a,b\n1,2\n")
        stored = s.stored()
        request = heavy_request(pattern)
        request.data_source.CopyFrom(batch_job_pb2.DataSource(type="FILE_ASSET", file_asset_id=asset.id))
        # Ten at once, so that compiling in a worker thread is not enough:
        # the GIL must be released too.
        attacks = [client.jobs.CreateBatchJob(request, metadata=client.metadata) for _ in range(10)]
        results, slowest = await responsive(s, asyncio.gather(*attacks, return_exceptions=True))
        for result in results:
            assert isinstance(result, aio.AioRpcError), result
            error = rich_error(result)
            assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_JOB_SPEC")
            assert error.bad_request is not None
            assert [v.field for v in error.bad_request.field_violations] == [field]
            assert error.message.startswith(message), error.message
        assert slowest < 0.1, f"a ping took {slowest * 1000:.0f} ms"
        await nothing_stored(client)
        # Not even a request id: every table as it was.
        assert s.stored() == stored
        after = await settled_rss(s)
    assert after - idle < RSS_AFTER_BOUND, f"RSS {after / MIB:.0f} MiB after, idle {idle / MIB:.0f} MiB"


def rules_at_the_caps() -> list[Column]:
    """100 rules whose patterns take nearly the whole job budget: 15 just
    under the cap (they pick no column), the rest ordinary ones that check
    every value of the file."""
    rules = [
        Column(type=Column.PATTERN_NAME_MATCH, name_pattern=r"^zz" + UNDER_CAP, pattern=UNDER_CAP) for _ in range(7)
    ]
    rules.append(Column(type=Column.PATTERN_NAME_MATCH, name_pattern=r"^zz" + UNDER_CAP, pattern="x"))
    while len(rules) < 100:
        rules.append(
            Column(
                type=Column.PATTERN_NAME_MATCH,
                name_pattern=r"^c\d$",
                pattern=r"[0-9]{1,6}",
                validation_policy=Column.REQUIRED_VALUE,
            )
        )
    return rules


def as_dict(rule: Column) -> dict[str, object]:
    return {
        "type": Column.Type.Name(rule.type),
        "name_pattern": rule.name_pattern,
        "pattern": rule.pattern,
        "validation_policy": Column.ValidationPolicy.Name(rule.validation_policy),
    }


async def rows(count: int) -> AsyncIterator[bytes]:
    """A header, then `count` rows of 100 KB each (a blob column beside ten
    checked numbers), in 1 MiB chunks."""
    yield b"id,c0,c1,c2,c3,c4,c5,c6,c7,c8,c9,blob\n"
    row = b"1,2,3,4,5,6,7,8,9,10,11," + b"x" * 100_000 + b"\n"
    per_chunk = MIB // len(row)
    for _ in range(count // per_chunk):
        yield row * per_chunk
    yield row * (count % per_chunk)


async def test_a_job_at_the_caps_reads_100_mb_and_gives_its_memory_back(tmp_path: Path) -> None:
    rules = rules_at_the_caps()
    compiled = _core.JobSpec(columns=[as_dict(r) for r in rules]).pattern_bytes
    assert 0.9 * _core.JOB_PATTERN_BUDGET < compiled <= _core.JOB_PATTERN_BUDGET
    count = 1_000
    async with served(tmp_path) as s:
        client = Client(s.channel, s.token)
        idle = s.rss()

        async def run() -> batch_job_pb2.BatchJob:
            asset = await upload(s, "wide.csv", rows(count))
            job = await client.create(asset, event_name="e", event_columns=["id"], columns=rules)
            return await client.wait(job.id)

        job, slowest = await steadily(s, run)
        peak = s.peak_rss()
        after = await settled_rss(s)
    assert (status(job), job.success_rows, job.failed_rows) == ("DONE", count, 0), job.error_message
    assert slowest < 0.1, f"a ping took {slowest * 1000:.0f} ms"
    assert peak - idle < RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB, idle {idle / MIB:.0f} MiB"
    assert after - idle < RSS_AFTER_BOUND, f"RSS {after / MIB:.0f} MiB after the job, idle {idle / MIB:.0f} MiB"


async def settled_rss(s: Served) -> int:
    """The server's RSS once the finished job's task has let go of it."""
    rss = s.rss()
    for _ in range(20):
        await asyncio.sleep(0.1)
        rss = min(rss, s.rss())
    return rss
