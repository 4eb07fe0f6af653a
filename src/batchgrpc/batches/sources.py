"""The data sources a batch job reads: file assets, reports, audience lists.

All three are a stored file plus a record. A file asset is uploaded in one
client stream (metadata first); a report or an audience list is created
first (PENDING / BUILDING), then its content is streamed in by the service
that produces it, and it is DONE / READY when the stream completes.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from batchgrpc import core, paging
from batchgrpc.batches import convert
from batchgrpc.batches.files import Files, infer_format
from batchgrpc.batches.status import UNFINISHED_NAMES
from batchgrpc.batches.v6 import (
    audience_list_pb2,
    audience_list_pb2_grpc,
    file_asset_pb2,
    file_asset_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
)
from batchgrpc.errors import (
    DataSourceComplete,
    DataSourceInUse,
    DataSourceNotFound,
    FieldViolation,
    InvalidArgument,
    RequestIdReused,
    UploadInProgress,
)
from batchgrpc.idempotency import Idempotency
from batchgrpc.interceptor import Context, current_principal
from batchgrpc.store import DataSource, SourceInUse, Store

Format = file_asset_pb2.FileAsset.Format


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def check_tags(tags: Any, field: str = "tags") -> None:
    """Upstream's rule for tags: each should have a value. (Their lengths,
    like every field's, are held to `batchgrpc.requests.LIMITS` before a
    servicer runs.)"""
    violations = [FieldViolation(f"{field}[{i}]", "should have a value") for i, tag in enumerate(tags) if not tag]
    if violations:
        raise InvalidArgument("Invalid tags.", violations=violations)


def format_name(value: int, field: str = "format") -> str:
    if value == Format.FORMAT_UNSPECIFIED:
        raise InvalidArgument(
            "format is required: CSV, PSV, JSON or JSONL.",
            violations=[FieldViolation(field, "one of CSV, PSV, JSON, JSONL")],
        )
    return Format.Name(value)


async def _chunks(messages: AsyncIterator[Any], field: str) -> AsyncIterator[bytes]:
    """The `chunk` of every message after the first."""
    async for message in messages:
        if message.WhichOneof("content") != "chunk":
            raise InvalidArgument(
                f"Only the first message may carry {field}; every later one carries a chunk.",
                violations=[FieldViolation(field, "only in the first message")],
            )
        yield message.chunk


async def _same_content(first: file_asset_pb2.FileAsset, chunks: AsyncIterator[bytes]) -> None:
    """A replayed upload must send the same bytes as the first: they are
    hashed as they arrive (and not kept), then compared."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > first.size:
            break
        digest.update(chunk)
    if size != first.size or digest.hexdigest() != first.sha256:
        raise RequestIdReused(
            "This request_id was used to upload a different file; send a new request_id for a new file.",
            violations=[FieldViolation("metadata.request_id", "already used with a different file")],
        )


def _not_found(kind: str, source_id: str) -> DataSourceNotFound:
    label = kind.replace("_", " ")
    return DataSourceNotFound(
        f"{label.capitalize()} not found", metadata={f"{kind}_id": source_id}, upstream=f"{kind}_not_found"
    )


def _empty_file(kind: str) -> InvalidArgument:
    return InvalidArgument(
        "The uploaded file is empty.",
        violations=[FieldViolation("chunk", "at least one non-empty chunk")],
        upstream=f"{kind}_input_file_missing",
    )


class FileAssetService(file_asset_pb2_grpc.FileAssetServiceServicer):
    def __init__(self, store: Store, files: Files, idempotency: Idempotency, clock: Callable[[], float]) -> None:
        self._store = store
        self._files = files
        self._idempotency = idempotency
        self._clock = clock

    async def UploadFileAsset(
        self, request_iterator: AsyncIterator[file_asset_pb2.UploadFileAssetRequest], context: Context
    ) -> file_asset_pb2.UploadFileAssetResponse:
        account = current_principal().account
        messages = aiter(request_iterator)
        first = await anext(messages, None)
        if first is None or first.WhichOneof("content") != "metadata":
            raise InvalidArgument(
                "The first message must carry the file's metadata.",
                violations=[FieldViolation("metadata", "required in the first message")],
                upstream="file_asset_input_file_missing",
            )
        meta = first.metadata
        if not meta.name:
            raise InvalidArgument(
                "metadata.name is required.", violations=[FieldViolation("metadata.name", "the file's name")]
            )
        check_tags(meta.tags, "metadata.tags")
        fmt = Format.Name(meta.format) if meta.format else infer_format(meta.name)
        if fmt is None:
            raise InvalidArgument(
                f"The format of {meta.name!r} cannot be told from its name; set metadata.format.",
                violations=[FieldViolation("metadata.format", "one of CSV, PSV, JSON, JSONL")],
                upstream="file_asset_format_not_supported",
            )

        async def upload() -> file_asset_pb2.UploadFileAssetResponse:
            source_id = new_id("file")
            received = await self._files.receive(source_id, _chunks(messages, "metadata"))
            if received.size == 0:
                await self._files.discard(source_id, received)
                raise _empty_file("file_asset")
            now = self._clock()
            source = DataSource(
                id=source_id,
                kind="file_asset",
                account=account,
                name=meta.name,
                format=fmt,
                status="AVAILABLE",
                tags=tuple(meta.tags),
                event_columns=(),
                event_data={},
                size=received.size,
                sha256=received.sha256,
                created_time=now,
                updated_time=now,
                completed_time=now,
            )
            try:
                await self._store.sources.create(source)
            except BaseException:
                await asyncio.shield(self._files.discard(source_id, received))
                raise
            return file_asset_pb2.UploadFileAssetResponse(file_asset=convert.file_asset(source))

        return await self._idempotency.once(
            account=account,
            method="UploadFileAsset",
            request_id=meta.request_id,
            request=meta,
            response_type=file_asset_pb2.UploadFileAssetResponse,
            create=upload,
            replayed=lambda first: _same_content(first.file_asset, _chunks(messages, "metadata")),
        )

    async def _get(self, source_id: str) -> DataSource:
        source = await self._store.sources.get(current_principal().account, "file_asset", source_id)
        if source is None:
            raise _not_found("file_asset", source_id)
        return source

    async def GetFileAsset(
        self, request: file_asset_pb2.GetFileAssetRequest, context: Context
    ) -> file_asset_pb2.GetFileAssetResponse:
        source = await self._get(request.file_asset_id)
        return file_asset_pb2.GetFileAssetResponse(file_asset=convert.file_asset(source))

    async def ListFileAssets(
        self, request: file_asset_pb2.ListFileAssetsRequest, context: Context
    ) -> file_asset_pb2.ListFileAssetsResponse:
        page = await self._store.sources.list(
            current_principal().account,
            "file_asset",
            name=request.name,
            tags=tuple(request.tags),
            cursor=paging.decode(request.page_token),
            limit=paging.page_size(request.page_size),
        )
        return file_asset_pb2.ListFileAssetsResponse(
            file_assets=[convert.file_asset(s) for s in page.items], next_page_token=paging.encode(page.next_cursor)
        )

    async def DeleteFileAsset(
        self, request: file_asset_pb2.DeleteFileAssetRequest, context: Context
    ) -> file_asset_pb2.DeleteFileAssetResponse:
        account = current_principal().account
        try:
            source = await self._store.sources.delete(
                account, "file_asset", request.file_asset_id, in_use=UNFINISHED_NAMES
            )
        except SourceInUse as e:
            raise DataSourceInUse(
                f"File asset {request.file_asset_id} is read by unfinished batch job(s) {', '.join(e.job_ids)}; "
                "cancel them or wait for them to finish.",
                metadata={"file_asset_id": request.file_asset_id, "batch_job_ids": ",".join(e.job_ids)},
            ) from None
        if source is None:
            raise _not_found("file_asset", request.file_asset_id)
        await self._files.remove(source.id)
        return file_asset_pb2.DeleteFileAssetResponse(file_asset=convert.file_asset(source))


class _Produced:
    """What reports and audience lists share: created empty, then filled by
    one upload stream, which completes them."""

    kind: str
    empty_status: str
    full_status: str

    def __init__(self, store: Store, files: Files, idempotency: Idempotency, clock: Callable[[], float]) -> None:
        self._store = store
        self._files = files
        self._idempotency = idempotency
        self._clock = clock
        #: Sources with an upload running in this process.
        self._uploading: set[str] = set()

    def _new(self, name: str, fmt: str, **extra: Any) -> DataSource:
        now = self._clock()
        return DataSource(
            id=new_id(self.kind.split("_")[0]),
            kind=self.kind,
            account=current_principal().account,
            name=name,
            format=fmt,
            status=self.empty_status,
            tags=(),
            event_columns=extra.get("event_columns", ()),
            event_data=extra.get("event_data", {}),
            size=0,
            sha256="",
            created_time=now,
            updated_time=now,
        )

    async def _get(self, source_id: str) -> DataSource:
        source = await self._store.sources.get(current_principal().account, self.kind, source_id)
        if source is None:
            raise _not_found(self.kind, source_id)
        return source

    async def _list(self, request: Any) -> Any:
        return await self._store.sources.list(
            current_principal().account,
            self.kind,
            name=request.name,
            tags=(),
            cursor=paging.decode(request.page_token),
            limit=paging.page_size(request.page_size),
        )

    async def _upload(self, request_iterator: AsyncIterator[Any], id_field: str) -> DataSource:
        messages = aiter(request_iterator)
        first = await anext(messages, None)
        if first is None or first.WhichOneof("content") != id_field:
            raise InvalidArgument(
                f"The first message must carry {id_field}.",
                violations=[FieldViolation(id_field, "required in the first message")],
            )
        source_id = getattr(first, id_field)
        source = await self._get(source_id)
        if source.status != self.empty_status:
            raise DataSourceComplete(
                f"{self.kind.replace('_', ' ').capitalize()} {source_id} is {source.status}: its content was "
                "uploaded already.",
                metadata={f"{self.kind}_id": source_id, "status": source.status},
            )
        if source_id in self._uploading:
            raise UploadInProgress(
                f"Another upload to {source_id} is running.", metadata={f"{self.kind}_id": source_id}, retry_after=1.0
            )
        self._uploading.add(source_id)
        try:
            received = await self._files.receive(source_id, _chunks(messages, id_field))
            if received.size == 0:
                await self._files.discard(source_id, received)
                raise _empty_file(self.kind)
            done = await self._store.sources.complete(
                source.account,
                self.kind,
                source_id,
                expect=self.empty_status,
                status=self.full_status,
                size=received.size,
                sha256=received.sha256,
                now=self._clock(),
            )
            if done is None:
                # Deleted or completed by another replica meanwhile.
                await self._files.discard(source_id, received)
                raise _not_found(self.kind, source_id)
            await self._files.settle(source_id, received)
        finally:
            self._uploading.discard(source_id)
        return done


class ReportService(_Produced, report_pb2_grpc.ReportServiceServicer):
    kind = "report"
    empty_status = "PENDING"
    full_status = "DONE"

    async def CreateReport(
        self, request: report_pb2.CreateReportRequest, context: Context
    ) -> report_pb2.CreateReportResponse:
        fmt = format_name(request.format)

        async def create() -> report_pb2.CreateReportResponse:
            source = self._new(request.name, fmt)
            await self._store.sources.create(source)
            return report_pb2.CreateReportResponse(report=convert.report(source))

        return await self._idempotency.once(
            account=current_principal().account,
            method="CreateReport",
            request_id=request.request_id,
            request=request,
            response_type=report_pb2.CreateReportResponse,
            create=create,
        )

    async def UploadReportResult(
        self, request_iterator: AsyncIterator[report_pb2.UploadReportResultRequest], context: Context
    ) -> report_pb2.UploadReportResultResponse:
        source = await self._upload(request_iterator, "report_id")
        return report_pb2.UploadReportResultResponse(report=convert.report(source))

    async def GetReport(self, request: report_pb2.GetReportRequest, context: Context) -> report_pb2.GetReportResponse:
        return report_pb2.GetReportResponse(report=convert.report(await self._get(request.report_id)))

    async def ListReports(
        self, request: report_pb2.ListReportsRequest, context: Context
    ) -> report_pb2.ListReportsResponse:
        page = await self._list(request)
        return report_pb2.ListReportsResponse(
            reports=[convert.report(s) for s in page.items], next_page_token=paging.encode(page.next_cursor)
        )


class AudienceListService(_Produced, audience_list_pb2_grpc.AudienceListServiceServicer):
    kind = "audience_list"
    empty_status = "BUILDING"
    full_status = "READY"

    async def CreateAudienceList(
        self, request: audience_list_pb2.CreateAudienceListRequest, context: Context
    ) -> audience_list_pb2.CreateAudienceListResponse:
        fmt = format_name(request.format)
        # The list's event settings are a job's defaults: the same rules hold.
        # No patterns to compile, so this is quick enough for the event loop.
        core.check_event_settings(list(request.event_columns), dict(request.event_data))

        async def create() -> audience_list_pb2.CreateAudienceListResponse:
            source = self._new(
                request.name,
                fmt,
                event_columns=tuple(request.event_columns),
                event_data=dict(request.event_data),
            )
            await self._store.sources.create(source)
            return audience_list_pb2.CreateAudienceListResponse(audience_list=convert.audience_list(source))

        return await self._idempotency.once(
            account=current_principal().account,
            method="CreateAudienceList",
            request_id=request.request_id,
            request=request,
            response_type=audience_list_pb2.CreateAudienceListResponse,
            create=create,
        )

    async def UploadAudienceListMembers(
        self, request_iterator: AsyncIterator[audience_list_pb2.UploadAudienceListMembersRequest], context: Context
    ) -> audience_list_pb2.UploadAudienceListMembersResponse:
        source = await self._upload(request_iterator, "audience_list_id")
        return audience_list_pb2.UploadAudienceListMembersResponse(audience_list=convert.audience_list(source))

    async def GetAudienceList(
        self, request: audience_list_pb2.GetAudienceListRequest, context: Context
    ) -> audience_list_pb2.GetAudienceListResponse:
        source = await self._get(request.audience_list_id)
        return audience_list_pb2.GetAudienceListResponse(audience_list=convert.audience_list(source))

    async def ListAudienceLists(
        self, request: audience_list_pb2.ListAudienceListsRequest, context: Context
    ) -> audience_list_pb2.ListAudienceListsResponse:
        page = await self._list(request)
        return audience_list_pb2.ListAudienceListsResponse(
            audience_lists=[convert.audience_list(s) for s in page.items],
            next_page_token=paging.encode(page.next_cursor),
        )
