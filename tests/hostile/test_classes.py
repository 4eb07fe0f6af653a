"""One attack per class of issue 11 that the interceptor and the servicers
answer, each against a server process of its own: the exact status and
reason, other calls answered within 100 ms meanwhile, the server's memory
bounded, and nothing stored (every table of the store counted before and
after)."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio

from batchgrpc import requests
from batchgrpc.batches.v6 import batch_job_pb2, file_asset_pb2, report_pb2
from batchgrpc.events.v1 import event_pb2

from ..conftest import rich_error
from ..wire.batches_client import Client
from . import raw
from .served import Served, responsive, served
from .test_requests import error_texts

Attack = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Case:
    code: grpc.StatusCode
    reason: str
    #: Sets the scene (not measured) and returns the attack.
    prepare: Callable[[Served, Client], Awaitable[Attack]]


async def _malformed(s: Served, client: Client) -> Attack:
    create = s.channel.unary_unary("/batchgrpc.batches.v6.BatchJobService/CreateBatchJob")
    junk = b"\x0a\xff\xff\xff\x0f" + random.randbytes(256 << 10)
    return lambda: create(junk, metadata=s.metadata)


async def _many_tiny_fields(s: Served, client: Client) -> Attack:
    # 512 KiB of empty column rules: the most fields a request the server
    # decodes may have.
    create = s.channel.unary_unary("/batchgrpc.batches.v6.BatchJobService/CreateBatchJob")
    junk = b"\x3a\x00" * (requests.MAX_DECODED_BYTES // 2)
    return lambda: create(junk, metadata=s.metadata)


async def _oversized(s: Served, client: Client) -> Attack:
    create = s.channel.unary_unary("/batchgrpc.batches.v6.BatchJobService/CreateBatchJob")
    junk = b"\x3a\x00" * (4 << 20)
    return lambda: create(junk, metadata=s.metadata)


async def _undefined_enum(s: Served, client: Client) -> Attack:
    asset = await client.upload(b"id\n1\n")
    request = batch_job_pb2.CreateBatchJobRequest(
        data_source=batch_job_pb2.DataSource(type=7, file_asset_id=asset.id), default_event_name="e"
    )
    request.columns.add(type=1, name="id", validation_policy=42, value_type=9)
    return lambda: client.jobs.CreateBatchJob(request, metadata=client.metadata)


#: Random, so that any run of it found in an answer is an echo.
LONG = raw.random_text(80_000)


async def _long_values(s: Served, client: Client) -> Attack:
    # Under the byte cap, so each field's own limit answers.
    value = LONG
    request = batch_job_pb2.CreateBatchJobRequest(name=value, tags=[value] * 3, event_columns=[value], request_id=value)
    return lambda: client.jobs.CreateBatchJob(request, metadata=client.metadata)


async def _reused_request_id(s: Served, client: Client) -> Attack:
    await client.reports.CreateReport(
        report_pb2.CreateReportRequest(name="first", format="CSV", request_id="same"), metadata=client.metadata
    )
    other = report_pb2.CreateReportRequest(name="second", format="CSV", request_id="same")
    return lambda: client.reports.CreateReport(other, metadata=client.metadata)


async def _two_credentials(s: Served, client: Client) -> Attack:
    request = report_pb2.CreateReportRequest(name="r", format="CSV")
    twice = (*client.metadata, ("authorization", "Bearer bgk_x.y"))
    return lambda: client.reports.CreateReport(request, metadata=twice)


async def _too_many_tags(s: Served, client: Client) -> Attack:
    first = file_asset_pb2.UploadFileAssetRequest(
        metadata=file_asset_pb2.FileAssetMetadata(name="a.csv", tags=[f"t{i}" for i in range(100_000)])
    )

    async def only_metadata() -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
        # The metadata alone: a client still writing chunks when the server
        # has answered may see the transport's INTERNAL instead of the answer.
        yield first

    return lambda: client.files.UploadFileAsset(only_metadata(), metadata=client.metadata)


CASES = {
    "3-malformed-protobuf": Case(grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST", _malformed),
    "3-many-tiny-fields": Case(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", _many_tiny_fields),
    "3-8-mb-of-tiny-fields": Case(grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_TOO_LARGE", _oversized),
    "4-undefined-enum": Case(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", _undefined_enum),
    "6-long-values": Case(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", _long_values),
    "8-request-id-reused": Case(grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED", _reused_request_id),
    "9-two-credentials": Case(grpc.StatusCode.UNAUTHENTICATED, "AMBIGUOUS_CREDENTIALS", _two_credentials),
    # Past the decoder's byte cap before the tag count is even seen.
    "11-100000-tags": Case(grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_TOO_LARGE", _too_many_tags),
}


@pytest.mark.parametrize("name", CASES)
async def test_each_class_is_refused_without_stalling_growing_or_storing(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    async with served(tmp_path) as s:
        client = Client(s.channel, s.token)
        attack = await case.prepare(s, client)
        stored, rss = s.stored(), s.rss()

        async def ten_times() -> list[aio.AioRpcError]:
            errors = []
            for _ in range(10):
                with pytest.raises(aio.AioRpcError) as caught:
                    await attack()
                errors.append(caught.value)
            return errors

        errors, slowest = await responsive(s, ten_times())
        for error in errors:
            rich = rich_error(error)
            assert (rich.code, rich.info.reason) == (case.code, case.reason), rich
            assert raw.longest_echo(error_texts(error), LONG) <= 256
        assert slowest < 0.1, f"a ping took {slowest * 1000:.0f} ms"
        assert s.rss() - rss < 64 << 20, f"RSS grew by {(s.rss() - rss) >> 20} MiB"
        assert s.stored() == stored
        assert not [f for f in s.files() if f.endswith(".part")]


async def test_a_key_without_the_role_reads_nothing_of_the_job_on_any_path(tmp_path: Path) -> None:
    """Class 5 through a server process: the reader's key is made with the
    CLI on the server's data directory, as an operator would."""
    async with served(tmp_path) as s:
        admin = Client(s.channel, s.token)
        hidden = await admin.run(b"id\n1\n2\n", default_event_name="e", scopes=["CLIENT_SUPERUSER"])
        seen = await admin.run(b"id\n3\n", default_event_name="e")
        reader = Client(s.channel, await _cli_key(s, "batches:read", "events:read"))
        stored, rss = s.stored(), s.rss()

        async def read_everything() -> list[event_pb2.Event]:
            with pytest.raises(aio.AioRpcError) as caught:
                await reader.get(hidden.id)
            assert rich_error(caught.value).info.reason == "BATCH_JOB_NOT_FOUND"
            assert await reader.events_of(hidden.id) == []
            return await reader.events_of()

        events, slowest = await responsive(s, read_everything())
        assert {e.job_id for e in events if e.job_id} == {seen.id}
        assert hidden.id not in str([e.data for e in events])
        assert slowest < 0.1
        assert s.rss() - rss < 64 << 20
        assert s.stored() == stored


async def _cli_key(s: Served, *scopes: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "batchgrpc"), "keys", "create", "--data-dir", str(s.data_dir),
        "--account", "default", *[arg for scope in scopes for arg in ("--scope", scope)], "--json",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    return str(json.loads(out)["token"])
