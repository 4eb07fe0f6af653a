"""A small client for the batch-job tests: upload, create, wait, read back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from grpc import aio

from batchgrpc.batches.v6 import (
    audience_list_pb2,
    audience_list_pb2_grpc,
    batch_job_pb2,
    batch_job_pb2_grpc,
    file_asset_pb2,
    file_asset_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
)
from batchgrpc.events.v1 import event_pb2, event_pb2_grpc

from ..conftest import REVISION

TERMINAL = {"DONE", "FAILED", "CANCELED", "EXPIRED"}


class Client:
    def __init__(self, channel: aio.Channel, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.jobs = batch_job_pb2_grpc.BatchJobServiceStub(channel)
        self.files = file_asset_pb2_grpc.FileAssetServiceStub(channel)
        self.reports = report_pb2_grpc.ReportServiceStub(channel)
        self.lists = audience_list_pb2_grpc.AudienceListServiceStub(channel)
        self.events = event_pb2_grpc.EventServiceStub(channel)

    async def upload(
        self,
        content: bytes,
        name: str = "people.csv",
        *,
        format: str = "",
        tags: Iterable[str] = (),
        chunk_size: int = 64 * 1024,
        request_id: str = "",
    ) -> file_asset_pb2.FileAsset:
        async def messages() -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
            yield file_asset_pb2.UploadFileAssetRequest(
                metadata=file_asset_pb2.FileAssetMetadata(
                    name=name, format=format or None, tags=tags, request_id=request_id
                )
            )
            for start in range(0, len(content), chunk_size):
                yield file_asset_pb2.UploadFileAssetRequest(chunk=content[start : start + chunk_size])

        response = await self.files.UploadFileAsset(messages(), metadata=self.metadata)
        return response.file_asset

    async def report(self, content: bytes, fmt: str = "CSV") -> report_pb2.Report:
        report = (
            await self.reports.CreateReport(
                report_pb2.CreateReportRequest(name="r", format=fmt), metadata=self.metadata
            )
        ).report

        async def messages() -> AsyncIterator[report_pb2.UploadReportResultRequest]:
            yield report_pb2.UploadReportResultRequest(report_id=report.id)
            yield report_pb2.UploadReportResultRequest(chunk=content)

        return (await self.reports.UploadReportResult(messages(), metadata=self.metadata)).report

    async def audience_list(self, content: bytes, **fields: Any) -> audience_list_pb2.AudienceList:
        created = await self.lists.CreateAudienceList(
            audience_list_pb2.CreateAudienceListRequest(name="l", format="CSV", **fields), metadata=self.metadata
        )

        async def messages() -> AsyncIterator[audience_list_pb2.UploadAudienceListMembersRequest]:
            yield audience_list_pb2.UploadAudienceListMembersRequest(audience_list_id=created.audience_list.id)
            yield audience_list_pb2.UploadAudienceListMembersRequest(chunk=content)

        return (await self.lists.UploadAudienceListMembers(messages(), metadata=self.metadata)).audience_list

    async def create(self, file_asset_id: str = "", **fields: Any) -> batch_job_pb2.BatchJob:
        if file_asset_id:
            fields["data_source"] = batch_job_pb2.DataSource(type="FILE_ASSET", file_asset_id=file_asset_id)
        response = await self.jobs.CreateBatchJob(batch_job_pb2.CreateBatchJobRequest(**fields), metadata=self.metadata)
        return response.batch_job

    async def get(self, job_id: str) -> batch_job_pb2.BatchJob:
        return (
            await self.jobs.GetBatchJob(batch_job_pb2.GetBatchJobRequest(batch_id=job_id), metadata=self.metadata)
        ).batch_job

    async def wait_for(
        self,
        job_id: str,
        until: Callable[[batch_job_pb2.BatchJob], bool] = lambda job: status(job) in TERMINAL,
        seconds: float = 60.0,
    ) -> batch_job_pb2.BatchJob:
        """The job as the watch stream first shows it matching `until`."""
        async with asyncio.timeout(seconds):
            request = batch_job_pb2.WatchBatchJobRequest(batch_id=job_id)
            async for update in self.jobs.WatchBatchJob(request, metadata=self.metadata):
                if until(update.batch_job):
                    return update.batch_job
        raise AssertionError(f"the watch of {job_id} ended without a match")

    async def wait(self, job_id: str) -> batch_job_pb2.BatchJob:
        """The job once it reaches a terminal status, read with GetBatchJob."""
        await self.wait_for(job_id)
        return await self.get(job_id)

    async def run(self, content: bytes, name: str = "people.csv", **fields: Any) -> batch_job_pb2.BatchJob:
        asset = await self.upload(content, name)
        job = await self.create(asset.id, **fields)
        return await self.wait(job.id)

    async def events_of(self, job_id: str = "", metric: str = "") -> list[event_pb2.Event]:
        found: list[event_pb2.Event] = []
        token = ""
        while True:
            page = await self.events.ListEvents(
                event_pb2.ListEventsRequest(job_id=job_id, metric=metric, page_size=1000, page_token=token),
                metadata=(*self.metadata, REVISION),
            )
            found += page.events
            token = page.next_page_token
            if not token:
                return found

    async def row_errors(self, job_id: str) -> list[batch_job_pb2.RowError]:
        found: list[batch_job_pb2.RowError] = []
        token = ""
        while True:
            page = await self.jobs.ListBatchJobRowErrors(
                batch_job_pb2.ListBatchJobRowErrorsRequest(batch_id=job_id, page_token=token), metadata=self.metadata
            )
            found += page.row_errors
            token = page.next_page_token
            if not token:
                return found


def status(job: batch_job_pb2.BatchJob) -> str:
    return batch_job_pb2.BatchJob.Status.Name(job.status)
