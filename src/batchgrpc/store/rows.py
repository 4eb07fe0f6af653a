"""Rows to records and back, the same for every SQL backend: the column
lists the stores select, and the conversions of what comes back. JSON
columns hold text on both backends (the text the code wrote)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from batchgrpc.eventids import row_event_ids
from batchgrpc.store import BatchJob, BulkJob, DataSource, Event, Lease, Page, Profile
from batchgrpc.store.migrations import id_text

SOURCE_COLUMNS = (
    "seq, id, kind, account, name, format, status, tags, event_columns, event_data,"
    " size, sha256, created_time, updated_time, completed_time"
)

JOB_JSON = frozenset({"tags", "event_data", "event_columns", "columns", "scopes"})
JOB_FIELDS = (
    "id",
    "account",
    "name",
    "event_name",
    "default_event_name",
    "status",
    "tags",
    "event_data",
    "event_columns",
    "columns",
    "scopes",
    "source_type",
    "source_id",
    "source_ref_id",
    "source_format",
    "source_released",
    "success_rows",
    "failed_rows",
    "rows_read",
    "error_code",
    "error_message",
    "debug_message",
    "next_offset",
    "last_row",
    "created_time",
    "started_time",
    "completed_time",
    "updated_time",
    "traceparent",
)
#: The columns of a job's row, then its source's size (`BatchJob.source_size`),
#: which `batch_jobs` must be in scope for (a SELECT from it, or RETURNING).
JOB_COLUMNS = (
    "seq, " + ", ".join(JOB_FIELDS) + ", (SELECT size FROM data_sources WHERE data_sources.id = batch_jobs.source_id)"
)

EVENT_FIELDS = (
    "account",
    "source",
    "job_id",
    "row_number",
    "event_name",
    "event_time",
    "profile_id",
    "identity",
    "data",
    "value",
    "value_currency",
    "unique_id",
    "backfill",
    "metric_service",
    "traceparent",
)
EVENT_COLUMNS = "seq, id_high, id_low, " + ", ".join(EVENT_FIELDS)
#: The columns of the rows the core plans for a request's events (`IngestPlan.rows`).
INGESTED_EVENT_COLUMNS = (
    "id_high, id_low, account, source, job_id, row_number, event_name, event_time,"
    " profile_id, identity, data, value, value_currency, unique_id, dedup_key, backfill, metric_service"
)

BULK_COLUMNS = (
    "seq, id, account, status, event_count, accepted_count, deduplicated_count, rejected_count, errors,"
    " created_time, completed_time, request, traceparent"
)
#: What a new bulk job's row is created with (`bulk_values`).
BULK_INSERT_COLUMNS = (
    "id, account, status, event_count, rejected_count, errors, request, created_time, lease_owner, lease_expires,"
    " traceparent"
)
PROFILE_COLUMNS = "seq, id, account, attributes, customer_ids, created_time, updated_time"


def with_traceparent(names: str, rows: list[tuple[Any, ...]], traceparent: str) -> tuple[str, list[tuple[Any, ...]]]:
    """The columns and rows of a request's events with the request's
    traceparent added to each; as they are when it has none (tracing off),
    which then costs nothing."""
    if not traceparent:
        return names, rows
    return f"{names}, traceparent", [(*row, traceparent) for row in rows]


def page_of(rows: list[tuple[Any, ...]], limit: int, make: Any) -> Page[Any]:
    """Rows fetched with LIMIT limit+1, seq first: the page and the next cursor."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([make(r) for r in rows], rows[-1][0] if more and rows else None)


def source_of(row: tuple[Any, ...]) -> DataSource:
    (_, id_, kind, account, name, fmt, status, tags, columns, data, size, sha, created, updated, completed) = row
    return DataSource(
        id=id_,
        kind=kind,
        account=account,
        name=name,
        format=fmt,
        status=status,
        tags=tuple(json.loads(tags)),
        event_columns=tuple(json.loads(columns)),
        event_data=json.loads(data),
        size=size,
        sha256=sha,
        created_time=created,
        updated_time=updated,
        completed_time=completed,
    )


def source_values(source: DataSource) -> tuple[object, ...]:
    """The values of `SOURCE_COLUMNS` but `seq`, in order."""
    return (
        source.id,
        source.kind,
        source.account,
        source.name,
        source.format,
        source.status,
        json.dumps(list(source.tags)),
        json.dumps(list(source.event_columns)),
        json.dumps(source.event_data),
        source.size,
        source.sha256,
        source.created_time,
        source.updated_time,
        source.completed_time,
    )


def job_of(row: tuple[Any, ...]) -> BatchJob:
    values = dict(zip(JOB_FIELDS, row[1:-1], strict=True))
    values["source_size"] = row[-1] or 0
    for name in JOB_JSON:
        value = json.loads(values[name])
        values[name] = value if isinstance(value, dict) else tuple(value)
    values["source_released"] = bool(values["source_released"])
    return BatchJob(**values)


def job_value(name: str, value: object) -> object:
    """A job field as its column holds it."""
    if name in JOB_JSON:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return value


def events_of(rows: Sequence[tuple[Any, ...]]) -> list[Event]:
    """Events from rows of `EVENT_COLUMNS`. A batch row's id is not stored:
    it is computed from its job and row, for the whole page in one call."""
    rows_ids = iter(row_event_ids([(r[5], r[6]) for r in rows if r[1] is None]))
    events = []
    for r in rows:
        fields = dict(zip(EVENT_FIELDS, r[3:], strict=True))
        fields["backfill"] = bool(fields["backfill"])  # SQLite keeps an integer
        events.append(Event(next(rows_ids) if r[1] is None else id_text(r[1], r[2]), **fields, position=r[0]))
    return events


def bulk_of(row: tuple[Any, ...]) -> BulkJob:
    (_, id_, account, status, count, accepted, dedup, rejected, errors, created, completed, request, traceparent) = row
    return BulkJob(
        id=id_,
        account=account,
        status=status,
        event_count=count,
        accepted_count=accepted,
        deduplicated_count=dedup,
        rejected_count=rejected,
        errors=tuple(tuple(e) for e in json.loads(errors)),
        created_time=created,
        completed_time=completed,
        request=bytes(request),
        traceparent=traceparent,
    )


def bulk_values(job: BulkJob, lease: Lease) -> tuple[object, ...]:
    """The values of `BULK_INSERT_COLUMNS`, in order: a new job, held by
    the worker that stored it."""
    errors = json.dumps([list(e) for e in job.errors])
    return (job.id, job.account, job.status, job.event_count, job.rejected_count, errors, job.request,
            job.created_time, lease.owner, lease.expires, job.traceparent)  # fmt: skip


def profile_of(row: tuple[Any, ...]) -> Profile:
    _, id_, account, attributes, customer_ids, created, updated = row
    return Profile(id_, account, json.loads(attributes), json.loads(customer_ids), created, updated)
