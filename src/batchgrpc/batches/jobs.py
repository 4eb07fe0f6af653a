"""`BatchJobService`: batch jobs over a data source, as Extole's /v6/batches.

The servicer checks and records; the `JobRunner` does the reading. A job's
`scopes` restrict which roles may see or change it: a caller without one of
them gets NOT_FOUND, as for another account's job.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from batchgrpc import core, metrics, paging, tracing
from batchgrpc.auth import CLIENT_ADMIN, CLIENT_SUPERUSER, Principal
from batchgrpc.batches import convert
from batchgrpc.batches.runner import Changes, JobRunner, notification
from batchgrpc.batches.sources import check_tags, new_id
from batchgrpc.batches.status import DELETABLE, TERMINAL, Status, sources_of
from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc
from batchgrpc.errors import (
    BatchJobNotFound,
    DataSourceNotFound,
    DataSourceNotReady,
    DeleteNotAllowed,
    FieldViolation,
    InvalidArgument,
    InvalidJobSpec,
    InvalidStateTransition,
    UnauthorizedScopes,
)
from batchgrpc.idempotency import Idempotency
from batchgrpc.interceptor import Context, current_principal
from batchgrpc.memory import give_back_memory
from batchgrpc.store import BatchJob, DataSource, JobFilter, Store

pb = batch_job_pb2
SourceType = pb.DataSource.Type

#: Per data-source type: the oneof field, the store kind, and the status a
#: job needs it in.
_SOURCES: dict[int, tuple[str, str, str]] = {
    SourceType.FILE_ASSET: ("file_asset_id", "file_asset", "AVAILABLE"),
    SourceType.REPORT: ("report_id", "report", "DONE"),
    SourceType.AUDIENCE_LIST: ("audience_list_id", "audience_list", "READY"),
}
_BY_FIELD = {field: source_type for source_type, (field, _, _) in _SOURCES.items()}
#: Watchers get progress at most this often; status changes at once.
PROGRESS_INTERVAL = 0.25
_UPDATABLE = ("name", "tags", "scopes")


def roles(principal: Principal) -> frozenset[str]:
    """The caller's roles; a superuser holds the admin role too."""
    held = principal.scopes & {CLIENT_ADMIN, CLIENT_SUPERUSER}
    return held | {CLIENT_ADMIN} if CLIENT_SUPERUSER in held else held


def visible(job: BatchJob, principal: Principal) -> bool:
    return not job.scopes or bool(set(job.scopes) & roles(principal))


def _scope_names(scopes: Any, principal: Principal) -> tuple[str, ...]:
    names = []
    violations = []
    held = roles(principal)
    for i, scope in enumerate(scopes):
        if scope == pb.BatchJob.Scope.SCOPE_UNSPECIFIED:
            violations.append(FieldViolation(f"scopes[{i}]", "CLIENT_SUPERUSER or CLIENT_ADMIN"))
            continue
        name = pb.BatchJob.Scope.Name(scope)
        if name not in held:
            violations.append(FieldViolation(f"scopes[{i}]", f"the caller does not hold {name}"))
        names.append(name)
    if violations:
        raise UnauthorizedScopes("Attempt to update scopes to unauthorized values", violations=violations)
    return tuple(sorted(set(names)))


class BatchJobService(batch_job_pb2_grpc.BatchJobServiceServicer):
    def __init__(
        self,
        store: Store,
        runner: JobRunner,
        changes: Changes,
        idempotency: Idempotency,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._runner = runner
        self._changes = changes
        self._idempotency = idempotency
        self._clock = clock

    # --- create -------------------------------------------------------------

    async def _source(self, data_source: pb.DataSource) -> tuple[int, DataSource]:
        """The data source a create request names, checked for use by a job."""
        chosen = data_source.WhichOneof("source")
        source_type = data_source.type or (_BY_FIELD[chosen] if chosen else 0)
        if source_type == SourceType.TYPE_UNSPECIFIED:
            raise InvalidArgument(
                "Data source is required",
                violations=[FieldViolation("data_source", "type and the id of a report, audience list or file asset")],
                upstream="batch_job_data_source_empty",
            )
        field, kind, ready = _SOURCES[source_type]
        source_id = getattr(data_source, field)
        if not source_id:
            raise InvalidArgument(
                f"{kind.replace('_', ' ').capitalize()} id is missing",
                violations=[FieldViolation(f"data_source.{field}", "required for this data source type")],
                upstream=f"batch_job_data_source_{kind}_id_missing",
            )
        source = await self._store.sources.get(current_principal().account, kind, source_id)
        if source is None:
            raise DataSourceNotFound(
                f"{kind.replace('_', ' ').capitalize()} not found",
                violations=[FieldViolation(f"data_source.{field}", "no such data source")],
                metadata={field: source_id},
                upstream=f"batch_job_data_source_{kind}_not_found",
            )
        if source.status != ready:
            raise DataSourceNotReady(
                f"{kind.replace('_', ' ').capitalize()} {source_id} is {source.status}; a batch job needs it {ready}.",
                metadata={field: source_id, "status": source.status},
            )
        return source_type, source

    async def CreateBatchJob(self, request: pb.CreateBatchJobRequest, context: Context) -> pb.CreateBatchJobResponse:
        principal = current_principal()
        check_tags(request.tags)
        scopes = _scope_names(request.scopes, principal)
        columns = [convert.rule_dict(c) for c in request.columns]
        source_type, source = await self._source(request.data_source)
        # An audience list's event settings are the defaults of jobs on it.
        event_columns = list(request.event_columns) or list(source.event_columns)
        event_data = {**source.event_data, **request.event_data}

        async def create() -> pb.CreateBatchJobResponse:
            # Compiled once, off the event loop (a job's patterns take up to
            # tens of milliseconds), and not for a replay; the runner reads
            # the file with this very spec.
            try:
                spec = await core.compile_job(
                    event_name=request.event_name,
                    default_event_name=request.default_event_name,
                    event_columns=event_columns,
                    event_data=event_data,
                    columns=columns,
                )
            except InvalidJobSpec:
                # What the refused patterns took, back to the system.
                await give_back_memory()
                raise
            now = self._clock()
            job = BatchJob(
                id=new_id("job"),
                account=principal.account,
                name=request.name,
                event_name=request.event_name,
                default_event_name=request.default_event_name,
                status="PENDING",
                tags=tuple(request.tags),
                event_data=event_data,
                event_columns=tuple(event_columns),
                columns=tuple(columns),
                scopes=scopes,
                source_type=SourceType.Name(source_type),
                source_id=source.id,
                source_ref_id=new_id("src"),
                source_format=source.format,
                source_size=source.size,
                created_time=now,
                updated_time=now,
                traceparent=tracing.current_traceparent(),
            )
            await self._store.jobs.create(job, notification(job, "batch_job_created", now))
            metrics.dispatched("NOTIFICATION")
            self._runner.submit(job.id, spec)
            return pb.CreateBatchJobResponse(batch_job=convert.batch_job(job))

        return await self._idempotency.once(
            account=principal.account,
            method="CreateBatchJob",
            request_id=request.request_id,
            request=request,
            response_type=pb.CreateBatchJobResponse,
            create=create,
            replayed=self._check_replay,
        )

    async def _check_replay(self, response: pb.CreateBatchJobResponse) -> None:
        # The first response goes only to a caller whose roles may see the
        # job now, as for every read; to another, the job is not there, and
        # the answer does not name it.
        job = await self._store.jobs.get(response.batch_job.id, current_principal().account)
        if job is None or not visible(job, current_principal()):
            raise BatchJobNotFound()

    # --- read -----------------------------------------------------------------

    async def _job(self, job_id: str) -> BatchJob:
        """The caller's job, or BATCH_JOB_NOT_FOUND (also for one its roles may not see)."""
        principal = current_principal()
        job = await self._store.jobs.get(job_id, principal.account) if job_id else None
        if job is None or not visible(job, principal):
            raise BatchJobNotFound(job_id)
        return job

    async def GetBatchJob(self, request: pb.GetBatchJobRequest, context: Context) -> pb.GetBatchJobResponse:
        return pb.GetBatchJobResponse(batch_job=convert.batch_job(await self._job(request.batch_id)))

    async def ListBatchJobs(self, request: pb.ListBatchJobsRequest, context: Context) -> pb.ListBatchJobsResponse:
        principal = current_principal()
        where = JobFilter(
            name=request.name,
            event_name=request.event_name,
            tags=tuple(request.tags),
            statuses=tuple(pb.BatchJob.Status.Name(s) for s in request.statuses if s),
        )
        page = await self._store.jobs.list(
            principal.account,
            where,
            cursor=paging.decode(request.page_token),
            limit=paging.page_size(request.page_size),
        )
        return pb.ListBatchJobsResponse(
            # Jobs the caller's roles may not see are left out (a page may
            # then be short; the token still goes on from the right place).
            batch_jobs=[convert.batch_job(j) for j in page.items if visible(j, principal)],
            next_page_token=paging.encode(page.next_cursor),
        )

    async def ListBatchJobRowErrors(
        self, request: pb.ListBatchJobRowErrorsRequest, context: Context
    ) -> pb.ListBatchJobRowErrorsResponse:
        job = await self._job(request.batch_id)
        page = await self._store.jobs.row_errors(
            job.id, cursor=paging.decode(request.page_token), limit=paging.page_size(request.page_size)
        )
        return pb.ListBatchJobRowErrorsResponse(
            row_errors=[
                pb.RowError(
                    row_number=e.row_number,
                    byte_offset=e.byte_offset,
                    column=e.column,
                    reason=e.reason,
                    message=e.message,
                )
                for e in page.items
            ],
            next_page_token=paging.encode(page.next_cursor),
        )

    async def WatchBatchJob(
        self, request: pb.WatchBatchJobRequest, context: Context
    ) -> AsyncIterator[pb.WatchBatchJobResponse]:
        job: BatchJob | None = await self._job(request.batch_id)
        sent_status = ""
        sent_progress: tuple[int, int, int] | None = None
        sent_at = 0.0
        while job is not None:
            progress = (job.rows_read, job.success_rows, job.failed_rows)
            now = time.monotonic()
            due = job.status != sent_status or (progress != sent_progress and now - sent_at >= PROGRESS_INTERVAL)
            if due:
                yield pb.WatchBatchJobResponse(batch_job=convert.batch_job(job))
                sent_status, sent_progress, sent_at = job.status, progress, now
            if job.status in TERMINAL:
                return
            # A change made here wakes the watch at once; one made by another
            # worker (or replica) is seen at the next read, so read as often
            # as progress may be sent.
            await self._changes.wait(job.id, PROGRESS_INTERVAL)
            job = await self._store.jobs.get(job.id)
            if job is not None and not visible(job, current_principal()):
                # Its scopes changed under the watch: from now on it is
                # not there for this caller.
                raise BatchJobNotFound(job.id)

    # --- change ---------------------------------------------------------------

    async def UpdateBatchJob(self, request: pb.UpdateBatchJobRequest, context: Context) -> pb.UpdateBatchJobResponse:
        principal = current_principal()
        job = await self._job(request.batch_id)
        if request.HasField("update_mask"):
            paths = list(request.update_mask.paths)
            wrong = [
                FieldViolation(f"update_mask.paths[{i}]", "only name, tags and scopes can change")
                for i, path in enumerate(paths)
                if path not in _UPDATABLE
            ]
            if wrong:
                raise InvalidArgument("Only name, tags and scopes of a batch job can change.", violations=wrong)
        else:
            # Without a mask, the fields given are the ones to change.
            paths = [name for name in _UPDATABLE if getattr(request, name)]
        check_tags(request.tags)
        changes: dict[str, object] = {}
        if "name" in paths:
            changes["name"] = request.name
        if "tags" in paths:
            changes["tags"] = tuple(request.tags)
        if "scopes" in paths:
            changes["scopes"] = _scope_names(request.scopes, principal)
        after, changed = await self._store.jobs.update(
            principal.account, job.id, changes, unless_status=tuple(TERMINAL), now=self._clock()
        )
        if after is None:
            raise BatchJobNotFound(job.id)
        if not changed:
            raise InvalidStateTransition(
                job.id,
                after.status,
                after.status,
                f"Batch job {job.id} is {after.status}: a finished job cannot be updated.",
            )
        self._changes.notify(job.id)
        return pb.UpdateBatchJobResponse(batch_job=convert.batch_job(after))

    async def _transition(self, job_id: str, allowed_from: tuple[str, ...], to: str, **changes: object) -> BatchJob:
        job = await self._job(job_id)
        now = self._clock()
        after, moved = await self._store.jobs.transition(
            job.id,
            allowed_from=allowed_from,
            to=to,
            now=now,
            changes=changes,
            notification=(lambda j: notification(j, "batch_job_finished", now)) if to == "CANCELED" else None,
        )
        if after is None:
            raise BatchJobNotFound(job_id)
        if not moved:
            raise InvalidStateTransition(job.id, after.status, to)
        if to == "CANCELED":
            metrics.dispatched("NOTIFICATION")
        self._changes.notify(job.id)
        return after

    async def CancelBatchJob(self, request: pb.CancelBatchJobRequest, context: Context) -> pb.CancelBatchJobResponse:
        job = await self._transition(
            request.batch_id, sources_of(Status.CANCELED), Status.CANCELED, completed_time=self._clock()
        )
        return pb.CancelBatchJobResponse(batch_job=convert.batch_job(job))

    async def ExpireBatchJob(self, request: pb.ExpireBatchJobRequest, context: Context) -> pb.ExpireBatchJobResponse:
        # The record stays; the data source is no longer referenced.
        job = await self._transition(request.batch_id, sources_of(Status.EXPIRED), Status.EXPIRED, source_released=True)
        return pb.ExpireBatchJobResponse(batch_job=convert.batch_job(job))

    async def DeleteBatchJob(self, request: pb.DeleteBatchJobRequest, context: Context) -> pb.DeleteBatchJobResponse:
        job = await self._job(request.batch_id)
        deleted, done = await self._store.jobs.delete(job.account, job.id, allowed_from=DELETABLE)
        if deleted is None:
            raise BatchJobNotFound(job.id)
        if not done:
            raise DeleteNotAllowed(job.id, deleted.status)
        self._changes.notify(job.id)
        return pb.DeleteBatchJobResponse(batch_job=convert.batch_job(deleted))
