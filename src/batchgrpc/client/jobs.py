"""`batchgrpc jobs create|watch|list|get|cancel|errors` and `batchgrpc run`."""

from __future__ import annotations

import csv
import functools
import io
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc
from batchgrpc.client import files
from batchgrpc.client.connection import UNAVAILABLE_BACKOFF, Connection, Failure
from batchgrpc.client.failures import CommandFailed, Exit
from batchgrpc.client.output import Output, as_dict

pb = batch_job_pb2
Status = pb.BatchJob.Status
Column = pb.Column

#: How each terminal status ends `jobs watch` and `run`.
EXIT_BY_STATUS = {
    Status.DONE: Exit.OK,
    Status.FAILED: Exit.JOB_FAILED,
    Status.CANCELED: Exit.JOB_CANCELED,
    Status.EXPIRED: Exit.JOB_CANCELED,
}
#: Row errors asked for per page (the server's most).
ERRORS_PAGE = 1000
ERROR_CSV_COLUMNS = ("row_number", "byte_offset", "column", "reason", "message")


@dataclass(frozen=True)
class JobOptions:
    """How a job turns rows into events (the create request's fields but the source)."""

    name: str = ""
    event_name: str = ""
    default_event_name: str = ""
    event_columns: Sequence[str] = ()
    event_data: Sequence[str] = ()
    columns: Sequence[str] = ()
    tags: Sequence[str] = ()
    extra: dict[str, str] = field(default_factory=dict)


def column_rule(spec: str) -> batch_job_pb2.Column:
    """`NAME[:POLICY[:VALUE_TYPE]]`, e.g. `email:REQUIRED_VALUE:EMAIL` or
    `age::INTEGER`, as a FULL_NAME_MATCH rule."""
    name, _, rest = spec.partition(":")
    policy, _, value_type = rest.partition(":")
    if not name or ":" in value_type:
        raise CommandFailed(f"--column {spec}: expected NAME[:POLICY[:VALUE_TYPE]]", Exit.USAGE)
    rule = Column(type=Column.Type.FULL_NAME_MATCH, name=name)
    for text, enum, attribute in (
        (policy, Column.ValidationPolicy, "validation_policy"),
        (value_type, Column.ValueType, "value_type"),
    ):
        if not text:
            continue
        try:
            setattr(rule, attribute, enum.Value(text.upper()))
        except ValueError:
            choices = ", ".join(n for n in (v.name for v in enum.DESCRIPTOR.values) if not n.endswith("_UNSPECIFIED"))
            raise CommandFailed(f"--column {spec}: {text} is not one of {choices}", Exit.USAGE) from None
    return rule


def _event_data(pairs: Sequence[str]) -> dict[str, str]:
    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandFailed(f"--event-data {pair}: expected KEY=VALUE", Exit.USAGE)
        data[key] = value
    return data


def create_request(source: batch_job_pb2.DataSource, options: JobOptions) -> batch_job_pb2.CreateBatchJobRequest:
    return pb.CreateBatchJobRequest(
        data_source=source,
        name=options.name,
        event_name=options.event_name,
        default_event_name=options.default_event_name,
        event_columns=options.event_columns,
        event_data=_event_data(options.event_data),
        columns=[column_rule(spec) for spec in options.columns],
        tags=options.tags,
        # One id for every attempt: a retry after a lost answer creates no second job.
        request_id=f"job-{uuid.uuid4()}",
    )


def _stub(conn: Connection) -> batch_job_pb2_grpc.BatchJobServiceStub:
    return batch_job_pb2_grpc.BatchJobServiceStub(conn.channel)


def create(conn: Connection, request: batch_job_pb2.CreateBatchJobRequest) -> batch_job_pb2.BatchJob:
    stub = _stub(conn)
    return conn.call("create job", lambda: stub.CreateBatchJob(request, metadata=conn.metadata)).batch_job


def get(conn: Connection, job_id: str) -> batch_job_pb2.BatchJob:
    stub = _stub(conn)
    request = pb.GetBatchJobRequest(batch_id=job_id)
    return conn.call(f"job {job_id}", lambda: stub.GetBatchJob(request, metadata=conn.metadata)).batch_job


def cancel(conn: Connection, job_id: str) -> batch_job_pb2.BatchJob:
    stub = _stub(conn)
    request = pb.CancelBatchJobRequest(batch_id=job_id)
    # Canceling twice is refused (already CANCELED), so a repeat is harmless.
    return conn.call(f"cancel {job_id}", lambda: stub.CancelBatchJob(request, metadata=conn.metadata)).batch_job


def list_jobs(
    conn: Connection, *, limit: int, name: str = "", tags: Sequence[str] = (), statuses: Sequence[str] = ()
) -> list[batch_job_pb2.BatchJob]:
    """Up to `limit` jobs, newest first, across as many pages as it takes."""
    stub = _stub(conn)
    try:
        wanted = [Status.Value(s.upper()) for s in statuses]
    except ValueError:
        choices = ", ".join(n for n in (v.name for v in Status.DESCRIPTOR.values) if n != "STATUS_UNSPECIFIED")
        raise CommandFailed(f"--status: expected one of {choices}", Exit.USAGE) from None
    jobs: list[batch_job_pb2.BatchJob] = []
    token = ""
    while len(jobs) < limit:
        request = pb.ListBatchJobsRequest(
            name=name,
            tags=tags,
            statuses=wanted,  # type: ignore[arg-type]  # enum numbers, checked above
            page_size=min(limit - len(jobs), 1000),
            page_token=token,
        )
        page = conn.call("list jobs", functools.partial(stub.ListBatchJobs, request, metadata=conn.metadata))
        jobs.extend(page.batch_jobs)
        token = page.next_page_token
        if not token:
            break
    return jobs[:limit]


def row_errors(conn: Connection, job_id: str) -> Iterator[batch_job_pb2.RowError]:
    """Every row error of the job, page after page, in row order."""
    stub = _stub(conn)
    token = ""
    while True:
        request = pb.ListBatchJobRowErrorsRequest(batch_id=job_id, page_size=ERRORS_PAGE, page_token=token)
        page = conn.call(
            f"row errors of {job_id}",
            functools.partial(stub.ListBatchJobRowErrors, request, metadata=conn.metadata),
        )
        yield from page.row_errors
        token = page.next_page_token
        if not token:
            return


def errors_csv(errors: Iterator[batch_job_pb2.RowError]) -> Iterator[str]:
    """The row errors as CSV text, a header first, one chunk per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ERROR_CSV_COLUMNS)
    for e in errors:
        writer.writerow([getattr(e, name) for name in ERROR_CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def status_name(job: batch_job_pb2.BatchJob) -> str:
    return Status.Name(job.status)


def progress_text(job: batch_job_pb2.BatchJob) -> str:
    return f"{status_name(job)}  rows {job.rows_read}  ok {job.success_rows}  failed {job.failed_rows}"


def describe(job: batch_job_pb2.BatchJob) -> str:
    text = (
        f"{job.id}  {status_name(job)}  {job.rows_read} rows read, "
        f"{job.success_rows} succeeded, {job.failed_rows} failed"
    )
    if job.error_code:
        text += f"\n  {job.error_code}: {job.error_message}"
        if job.debug_message:
            text += f" ({job.debug_message})"
    if job.failed_rows:
        text += f"\n  the failed rows: batchgrpc jobs errors {job.id}"
    return text


def watch(conn: Connection, out: Output, job_id: str, size: int | None = None) -> batch_job_pb2.BatchJob:
    """Follows the job to a terminal status with a bar of its source's bytes
    read (of `size`, when known before the first update); comes back after
    a dropped stream (a server restart)."""
    stub = _stub(conn)
    unavailable = iter(UNAVAILABLE_BACKOFF)
    job: batch_job_pb2.BatchJob | None = None
    with out.bar(f"job {job_id}", size, unit="bytes") as bar:
        while True:
            try:
                for update in stub.WatchBatchJob(pb.WatchBatchJobRequest(batch_id=job_id), metadata=conn.metadata):
                    job = update.batch_job
                    bar.update(job.bytes_read, job.bytes_total or None, progress_text(job))
                if job is not None and job.status in EXIT_BY_STATUS:
                    return job
                # The stream ended early (the server shut down gracefully).
                raise _StreamEnded()
            except grpc.RpcError as error:
                conn.wait_or_raise(f"watch {job_id}", Failure.of(error), unavailable)
            except _StreamEnded:
                conn.wait_or_raise(
                    f"watch {job_id}",
                    Failure(grpc.StatusCode.UNAVAILABLE, "the watch ended before the job did"),
                    unavailable,
                )


class _StreamEnded(Exception):
    pass


def run(conn: Connection, out: Output, path: Path, file_format: str | None, options: JobOptions) -> int:
    """Upload, create and watch: the exit code of the job's end."""
    asset = files.upload(conn, out, path, file_format=file_format)
    out.note(f"uploaded {files.describe(asset)}")
    job = create(conn, create_request(pb.DataSource(type=pb.DataSource.FILE_ASSET, file_asset_id=asset.id), options))
    out.note(f"created job {job.id}")
    job = watch(conn, out, job.id, asset.size)
    out.result(describe(job), job)
    return EXIT_BY_STATUS[job.status]


def print_errors(conn: Connection, out: Output, job_id: str, *, as_csv: bool) -> int:
    if as_csv:
        for text in errors_csv(row_errors(conn, job_id)):
            out.write(text)
        return Exit.OK
    errors = list(row_errors(conn, job_id))
    out.result(
        "\n".join(f"row {e.row_number}  {e.column or '-'}  {e.reason}  {e.message}" for e in errors)
        or f"{job_id} has no row errors",
        [as_dict(e) for e in errors],
    )
    return Exit.OK
