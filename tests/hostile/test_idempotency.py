"""`request_id` under attack: the same id with another request is refused,
never answered with the first call's result; and the ids of calls a killed
server was running are free the moment it is back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from batchgrpc.batches.v6 import (
    audience_list_pb2,
    batch_job_pb2,
    file_asset_pb2,
    file_asset_pb2_grpc,
    report_pb2,
)
from batchgrpc.store.sqlite import DATABASE_NAME
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import Harness, bearer, rich_error
from ..wire.batches_client import Client
from .served import served

CSV = b"id,email\n1,a@example.com\n"


async def reused(call: object) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.info.reason == "REQUEST_ID_REUSED"
    assert error.bad_request is not None
    assert error.bad_request.field_violations[0].field.endswith("request_id")


async def test_creates_refuse_a_reused_request_id_with_another_request(harness: Harness) -> None:
    client = Client(harness.channel, harness.admin.token)
    md = client.metadata
    report = report_pb2.CreateReportRequest(name="a", format="CSV", request_id="r")
    first = (await client.reports.CreateReport(report, metadata=md)).report
    await reused(
        client.reports.CreateReport(report_pb2.CreateReportRequest(name="b", format="CSV", request_id="r"), metadata=md)
    )
    assert (await client.reports.CreateReport(report, metadata=md)).report.id == first.id

    listed = audience_list_pb2.CreateAudienceListRequest(name="a", format="CSV", request_id="l")
    await client.lists.CreateAudienceList(listed, metadata=md)
    await reused(
        client.lists.CreateAudienceList(
            audience_list_pb2.CreateAudienceListRequest(name="a", format="CSV", event_columns=["x"], request_id="l"),
            metadata=md,
        )
    )

    asset = await client.upload(CSV)
    source = batch_job_pb2.DataSource(type="FILE_ASSET", file_asset_id=asset.id)
    job = batch_job_pb2.CreateBatchJobRequest(data_source=source, default_event_name="e", request_id="j")
    created = (await client.jobs.CreateBatchJob(job, metadata=md)).batch_job
    other = batch_job_pb2.CreateBatchJobRequest(data_source=source, default_event_name="f", request_id="j")
    await reused(client.jobs.CreateBatchJob(other, metadata=md))
    assert (await client.jobs.CreateBatchJob(job, metadata=md)).batch_job.id == created.id
    jobs = await client.jobs.ListBatchJobs(batch_job_pb2.ListBatchJobsRequest(), metadata=md)
    assert [j.id for j in jobs.batch_jobs] == [created.id]

    track = tracking_pb2_grpc.TrackingServiceStub(harness.channel)
    batch = tracking_pb2.BatchRequest(project_token="default", request_id="t")
    batch.commands.add(name="system/time")
    await track.Batch(batch, metadata=bearer(harness.admin))
    batch.commands.add(name="system/time")
    await reused(track.Batch(batch, metadata=bearer(harness.admin)))


async def test_an_upload_replay_must_send_the_same_file(harness: Harness) -> None:
    client = Client(harness.channel, harness.admin.token)
    first = await client.upload(CSV, request_id="u")
    assert (await client.upload(CSV, request_id="u", chunk_size=7)).id == first.id
    await reused(client.upload(CSV + b"2,b@example.com\n", request_id="u"))
    await reused(client.upload(CSV[:-1], request_id="u"))
    await reused(client.upload(CSV, name="other.csv", request_id="u"))
    listed = await client.files.ListFileAssets(file_asset_pb2.ListFileAssetsRequest(), metadata=client.metadata)
    assert [a.id for a in listed.file_assets] == [first.id]


def _pending(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / DATABASE_NAME) as db:
        return [r[0] for r in db.execute("SELECT request_id FROM idempotency WHERE state = 'pending'")]


async def test_a_killed_servers_request_ids_are_free_when_it_is_back(tmp_path: Path) -> None:
    """SIGKILL in the middle of an upload with a request_id: the restarted
    server runs the retry at once (it used to say "still being processed"
    for 60 s), and the file is stored once."""
    async with served(tmp_path) as first:
        stub = file_asset_pb2_grpc.FileAssetServiceStub(first.channel)
        hold = asyncio.Event()

        async def stalled() -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
            yield file_asset_pb2.UploadFileAssetRequest(
                metadata=file_asset_pb2.FileAssetMetadata(name="people.csv", request_id="kill-me")
            )
            yield file_asset_pb2.UploadFileAssetRequest(chunk=CSV[:10])
            await hold.wait()

        upload = asyncio.ensure_future(stub.UploadFileAsset(stalled(), metadata=first.metadata))
        async with asyncio.timeout(10):
            while _pending(first.data_dir) != ["kill-me"]:  # noqa: ASYNC110 - another process's database
                await asyncio.sleep(0.02)
        first.proc.kill()
        await first.proc.wait()
        with pytest.raises(aio.AioRpcError):
            await upload
    async with served(tmp_path, name="second", again=first) as second:
        client = Client(second.channel, second.token)
        asset = await client.upload(CSV, request_id="kill-me")
        assert asset.size == len(CSV)
        assert (await client.upload(CSV, request_id="kill-me")).id == asset.id
        listed = await client.files.ListFileAssets(file_asset_pb2.ListFileAssetsRequest(), metadata=client.metadata)
        assert [a.id for a in listed.file_assets] == [asset.id]
        assert any(line["msg"] == "released abandoned request ids" for line in second.log_lines())
