"""Issue 11, class 2: a row or a header made only of delimiters (or quoted
empties, or JSON keys) must not grow the server's memory with its size.

A data row and a header hold at most 10,000 fields and 1 MiB, every byte
counted. Each file here is 100 MB on one line, generated as it is uploaded
(1 MiB messages, never whole in memory). Past a cap the reader keeps nothing
and skips to the end of the record, so the server's peak RSS stays within
`RSS_BOUND` of what it was before the upload: the reader itself holds at
most a row's 1 MiB, its 10,000 fields and a 256 KiB input buffer; the rest
is the upload's gRPC messages, the chunk buffers and allocator slack
(measured: 18 to 22 MiB over idle). Before the fix the reader kept a field
range (16 bytes) per comma: the server peaked at 1,657 MiB for 100 MB of
commas, 1,654 MiB for the header, 594 MiB for quoted empties.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from batchgrpc.batches.v6 import batch_job_pb2, file_asset_pb2

from ..wire.batches_client import Client
from .served import Served, served, steadily

MIB = 1 << 20
#: The size of each hostile line.
SIZE = 100 * MIB
#: Most the server's peak RSS may rise over its RSS before the upload.
RSS_BOUND = 100 * MIB


async def lazily(head: bytes, unit: bytes, size: int, tail: bytes) -> AsyncIterator[bytes]:
    """`head`, then `unit` repeated to `size` bytes (whole units), then
    `tail`, in 1 MiB chunks made as they are sent."""
    chunk = unit * (MIB // len(unit))
    yield head
    for _ in range(size // len(chunk)):
        yield chunk
    yield tail


async def upload(s: Served, name: str, chunks: AsyncIterator[bytes]) -> str:
    """Streams `chunks` as a file asset; returns its id."""
    client = Client(s.channel, s.token)

    async def messages() -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
        yield file_asset_pb2.UploadFileAssetRequest(metadata=file_asset_pb2.FileAssetMetadata(name=name))
        async for chunk in chunks:
            yield file_asset_pb2.UploadFileAssetRequest(chunk=chunk)

    response = await client.files.UploadFileAsset(messages(), metadata=s.metadata)
    return response.file_asset.id


@dataclass(frozen=True)
class Shape:
    name: str
    head: bytes
    unit: bytes
    tail: bytes
    #: The job's end: status and error code.
    status: str
    error_code: str
    #: (row number, reason) of every row error.
    row_errors: tuple[tuple[int, str], ...]
    success_rows: int


def _keys(n: int) -> bytes:
    return b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(n)) + b"}\n"


SHAPES = [
    Shape("commas.csv", b"a,b\n", b",", b"\nx,y\n", "DONE", "", ((1, "TOO_MANY_FIELDS"),), 1),
    Shape("header.csv", b"", b",", b"\n1\n", "FAILED", "BAD_HEADER", (), 0),
    Shape("quoted.csv", b"a\n", b'"",', b'""\nok\n', "DONE", "", ((1, "TOO_MANY_FIELDS"),), 1),
    # Mixed: quoted CR LF inside empties, doubled quotes, then a real CRLF.
    Shape(
        "mixed.csv", b"\xef\xbb\xbfa\r\n", b'"\r\n","""",,', b"x\r\nok\r\n", "DONE", "", ((1, "TOO_MANY_FIELDS"),), 1
    ),
    # A line object of 10,001 keys (110 KB), then one of millions (100 MB).
    Shape(
        "keys.jsonl",
        _keys(10_001) + b"{",
        b'"k":0,',
        b'"k":0}\n{"a":1}\n',
        "DONE",
        "",
        ((1, "TOO_MANY_FIELDS"), (2, "ROW_TOO_LARGE")),
        1,
    ),
]


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
async def test_a_100_mb_line_of_delimiters_is_read_in_flat_memory(tmp_path: Path, shape: Shape) -> None:
    async with served(tmp_path) as s:
        client = Client(s.channel, s.token)
        idle = s.rss()

        async def attack() -> batch_job_pb2.BatchJob:
            asset = await upload(s, shape.name, lazily(shape.head, shape.unit, SIZE, shape.tail))
            job = await client.create(asset, event_name="e")
            return await client.wait(job.id)

        job, slowest = await steadily(s, attack)
        peak = s.peak_rss()
        errors = await client.row_errors(job.id)
    name = batch_job_pb2.BatchJob.Status.Name(job.status)
    assert (name, job.error_code) == (shape.status, shape.error_code), job.error_message
    assert tuple((e.row_number, e.reason) for e in errors) == shape.row_errors
    assert all(e.message for e in errors)
    assert job.success_rows == shape.success_rows
    assert peak - idle < RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB, {(peak - idle) / MIB:.0f} MiB over idle"
    assert slowest < 0.1, f"a ping took {slowest * 1000:.0f} ms"
