"""Stored records to the messages of `batchgrpc.batches.v6`, and back."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2

from batchgrpc.batches.v6 import audience_list_pb2, batch_job_pb2, file_asset_pb2, report_pb2
from batchgrpc.store import BatchJob, DataSource

Column = batch_job_pb2.Column


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(round(seconds * 1e9))
    return ts


def file_asset(s: DataSource) -> file_asset_pb2.FileAsset:
    return file_asset_pb2.FileAsset(
        id=s.id,
        name=s.name,
        format=s.format,
        tags=s.tags,
        status=s.status,
        size=s.size,
        sha256=s.sha256,
        created_time=timestamp(s.created_time),
        updated_time=timestamp(s.updated_time),
    )


def report(s: DataSource) -> report_pb2.Report:
    return report_pb2.Report(
        id=s.id,
        name=s.name,
        format=s.format,
        status=s.status,
        size=s.size,
        sha256=s.sha256,
        created_time=timestamp(s.created_time),
        completed_time=timestamp(s.completed_time),
    )


def audience_list(s: DataSource) -> audience_list_pb2.AudienceList:
    return audience_list_pb2.AudienceList(
        id=s.id,
        name=s.name,
        format=s.format,
        status=s.status,
        event_columns=s.event_columns,
        event_data=s.event_data,
        size=s.size,
        sha256=s.sha256,
        created_time=timestamp(s.created_time),
        completed_time=timestamp(s.completed_time),
    )


def rule_dict(column: Column) -> dict[str, Any]:
    """A column rule as the Rust core and the store take it: enum names, and
    only the fields that are set."""
    rule: dict[str, Any] = {"type": Column.Type.Name(column.type)}
    if column.validation_policy:
        rule["validation_policy"] = Column.ValidationPolicy.Name(column.validation_policy)
    if column.value_type:
        rule["value_type"] = Column.ValueType.Name(column.value_type)
    for name in ("name", "name_pattern", "prefix", "pattern"):
        if value := getattr(column, name):
            rule[name] = value
    if column.max_length:
        rule["max_length"] = column.max_length
    if column.allowed_values:
        rule["allowed_values"] = list(column.allowed_values)
    return rule


def column(rule: dict[str, Any]) -> Column:
    return Column(
        type=rule["type"],
        name=rule.get("name", ""),
        name_pattern=rule.get("name_pattern", ""),
        validation_policy=rule.get("validation_policy", "VALIDATION_POLICY_UNSPECIFIED"),
        prefix=rule.get("prefix", ""),
        value_type=rule.get("value_type", "VALUE_TYPE_UNSPECIFIED"),
        pattern=rule.get("pattern", ""),
        max_length=rule.get("max_length", 0),
        allowed_values=rule.get("allowed_values", ()),
    )


#: Statuses in which the whole data source has been read.
_READ_WHOLE = frozenset({"DISPATCHING", "DONE"})

_SOURCE_FIELDS = {"REPORT": "report_id", "AUDIENCE_LIST": "audience_list_id", "FILE_ASSET": "file_asset_id"}


def batch_job(job: BatchJob) -> batch_job_pb2.BatchJob:
    source = batch_job_pb2.DataSource(type=job.source_type, id=job.source_ref_id)
    setattr(source, _SOURCE_FIELDS[job.source_type], job.source_id)
    return batch_job_pb2.BatchJob(
        id=job.id,
        name=job.name,
        event_name=job.event_name,
        default_event_name=job.default_event_name,
        status=job.status,
        created_time=timestamp(job.created_time),
        started_time=timestamp(job.started_time),
        completed_time=timestamp(job.completed_time),
        tags=job.tags,
        event_data=job.event_data,
        event_columns=job.event_columns,
        columns=[column(rule) for rule in job.columns],
        data_source=source,
        scopes=list(job.scopes),
        success_rows=job.success_rows,
        failed_rows=job.failed_rows,
        rows_read=job.rows_read,
        error_code=job.error_code,
        error_message=job.error_message,
        debug_message=job.debug_message,
        # The checkpoint stops at the last row's end; what follows it (a
        # JSON array's closing bracket, blank lines) is read too by then.
        bytes_read=job.source_size if job.status in _READ_WHOLE else job.next_offset,
        bytes_total=job.source_size,
    )
