"""File assets, reports and audience lists on a real server."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from batchgrpc import server
from batchgrpc.batches.v6 import batch_job_pb2, file_asset_pb2, report_pb2

from ..conftest import Harness, make_config, rich_error
from .batches_client import Client, status


@pytest.fixture
def client(harness: Harness) -> Client:
    return Client(harness.channel, harness.admin.token)


async def test_upload_get_list_delete(harness: Harness, client: Client) -> None:
    content = b"email,event_name\n" + b"".join(b"u%d@example.com,e\n" % i for i in range(100_000))
    asset = await client.upload(content, "people.PSV", tags=["a", "b"], chunk_size=100_000)
    assert (asset.name, asset.Format.Name(asset.format), asset.Status.Name(asset.status)) == (
        "people.PSV",
        "PSV",
        "AVAILABLE",
    )
    assert (asset.size, asset.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    # On disk, whole, under the data directory.
    assert (harness.config.data_dir / "files" / asset.id).read_bytes() == content

    got = (
        await client.files.GetFileAsset(
            file_asset_pb2.GetFileAssetRequest(file_asset_id=asset.id), metadata=client.metadata
        )
    ).file_asset
    assert got == asset
    explicit = await client.upload(b"[]", "export.txt", format="JSON")
    listed = await client.files.ListFileAssets(file_asset_pb2.ListFileAssetsRequest(), metadata=client.metadata)
    assert [a.id for a in listed.file_assets] == [explicit.id, asset.id]
    by_tag = await client.files.ListFileAssets(
        file_asset_pb2.ListFileAssetsRequest(tags=["b"]), metadata=client.metadata
    )
    assert [a.id for a in by_tag.file_assets] == [asset.id]

    other = Client(harness.channel, (await harness.key(["batches:read", "batches:write"], account="o")).token)
    with pytest.raises(aio.AioRpcError) as caught:
        await other.files.GetFileAsset(
            file_asset_pb2.GetFileAssetRequest(file_asset_id=asset.id), metadata=other.metadata
        )
    error = rich_error(caught.value)
    assert (error.code, error.info.reason, error.info.metadata["code"]) == (
        grpc.StatusCode.NOT_FOUND,
        "DATA_SOURCE_NOT_FOUND",
        "file_asset_not_found",
    )

    deleted = (
        await client.files.DeleteFileAsset(
            file_asset_pb2.DeleteFileAssetRequest(file_asset_id=asset.id), metadata=client.metadata
        )
    ).file_asset
    assert deleted.id == asset.id
    assert not (harness.config.data_dir / "files" / asset.id).exists()
    with pytest.raises(aio.AioRpcError) as caught:
        await client.files.DeleteFileAsset(
            file_asset_pb2.DeleteFileAssetRequest(file_asset_id=asset.id), metadata=client.metadata
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_uploads_are_refused_and_leave_nothing(harness: Harness, client: Client) -> None:
    async def only(
        *messages: file_asset_pb2.UploadFileAssetRequest,
    ) -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
        for m in messages:
            yield m

    meta = file_asset_pb2.UploadFileAssetRequest(metadata=file_asset_pb2.FileAssetMetadata(name="a.csv"))
    chunk = file_asset_pb2.UploadFileAssetRequest(chunk=b"a,b\n")
    cases = [
        (only(chunk), "metadata"),
        (only(meta), "chunk"),  # empty file
        (only(meta, chunk, meta), "metadata"),
        (
            only(
                file_asset_pb2.UploadFileAssetRequest(metadata=file_asset_pb2.FileAssetMetadata(name="a.xlsx")), chunk
            ),
            "metadata.format",
        ),
        (
            only(file_asset_pb2.UploadFileAssetRequest(metadata=file_asset_pb2.FileAssetMetadata(name="")), chunk),
            "metadata.name",
        ),
    ]
    for messages, field in cases:
        with pytest.raises(aio.AioRpcError) as caught:
            await client.files.UploadFileAsset(messages, metadata=client.metadata)
        error = rich_error(caught.value)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT, field
        assert error.bad_request is not None
        assert error.bad_request.field_violations[0].field == field
    listed = await client.files.ListFileAssets(file_asset_pb2.ListFileAssetsRequest(), metadata=client.metadata)
    assert list(listed.file_assets) == []
    assert list((harness.config.data_dir / "files").iterdir()) == []


async def test_an_upload_over_the_maximum_is_refused(tmp_path: Path) -> None:
    running = await server.start(make_config(tmp_path / "data", max_upload_bytes=1000))
    try:
        assert running.first_admin_key is not None
        async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            client = Client(channel, running.first_admin_key.token)
            assert (await client.upload(b"x" * 1000, "a.csv")).size == 1000
            with pytest.raises(aio.AioRpcError) as caught:
                await client.upload(b"x" * 1001, "a.csv", chunk_size=300)
            error = rich_error(caught.value)
            assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_TOO_LARGE")
            assert len(list((tmp_path / "data" / "files").iterdir())) == 1
    finally:
        await server.stop(running, 0)


async def test_upload_is_idempotent_on_request_id(client: Client) -> None:
    first = await client.upload(b"a\n1\n", request_id="u-1")
    again = await client.upload(b"a\n1\n", request_id="u-1")
    assert first == again
    listed = await client.files.ListFileAssets(file_asset_pb2.ListFileAssetsRequest(), metadata=client.metadata)
    assert len(listed.file_assets) == 1


async def test_a_file_an_unfinished_job_reads_cannot_be_deleted(client: Client) -> None:
    asset = await client.upload(
        b"id,event_name\n" + b"".join(b"%d,e\n" % i for i in range(300_000)), chunk_size=1 << 20
    )
    job = await client.create(asset.id)
    with pytest.raises(aio.AioRpcError) as caught:
        await client.files.DeleteFileAsset(
            file_asset_pb2.DeleteFileAssetRequest(file_asset_id=asset.id), metadata=client.metadata
        )
    error = rich_error(caught.value)
    assert (error.code, error.info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DATA_SOURCE_IN_USE")
    assert error.info.metadata["batch_job_ids"] == job.id
    assert status(await client.wait(job.id)) == "DONE"
    await client.files.DeleteFileAsset(
        file_asset_pb2.DeleteFileAssetRequest(file_asset_id=asset.id), metadata=client.metadata
    )


async def test_a_report_is_filled_once(client: Client) -> None:
    report = await client.report(b"a\n1\n")
    assert report.Status.Name(report.status) == "DONE"

    async def again() -> AsyncIterator[report_pb2.UploadReportResultRequest]:
        yield report_pb2.UploadReportResultRequest(report_id=report.id)
        yield report_pb2.UploadReportResultRequest(chunk=b"b\n2\n")

    with pytest.raises(aio.AioRpcError) as caught:
        await client.reports.UploadReportResult(again(), metadata=client.metadata)
    assert rich_error(caught.value).info.reason == "DATA_SOURCE_ALREADY_COMPLETE"
    with pytest.raises(aio.AioRpcError) as caught:
        await client.reports.CreateReport(report_pb2.CreateReportRequest(name="no format"), metadata=client.metadata)
    assert rich_error(caught.value).bad_request.field_violations[0].field == "format"  # type: ignore[union-attr]
    listed = await client.reports.ListReports(report_pb2.ListReportsRequest(), metadata=client.metadata)
    assert [r.id for r in listed.reports] == [report.id]


async def test_an_audience_list_needs_to_be_ready(client: Client) -> None:
    from batchgrpc.batches.v6 import audience_list_pb2

    building = (
        await client.lists.CreateAudienceList(
            audience_list_pb2.CreateAudienceListRequest(name="l", format="CSV"), metadata=client.metadata
        )
    ).audience_list
    assert building.Status.Name(building.status) == "BUILDING"
    with pytest.raises(aio.AioRpcError) as caught:
        await client.create(data_source=batch_job_pb2.DataSource(type="AUDIENCE_LIST", audience_list_id=building.id))
    assert rich_error(caught.value).info.reason == "DATA_SOURCE_NOT_READY"
    with pytest.raises(aio.AioRpcError) as caught:
        await client.lists.CreateAudienceList(
            audience_list_pb2.CreateAudienceListRequest(name="l", format="CSV", event_columns=[""]),
            metadata=client.metadata,
        )
    assert rich_error(caught.value).bad_request.field_violations[0].field.startswith("event_columns")  # type: ignore[union-attr]
