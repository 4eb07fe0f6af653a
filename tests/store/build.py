"""Records for the contract suite, with defaults a test overrides by name.

Times are a fake clock's: `T0` and offsets from it, passed as `now`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from batchgrpc import _core
from batchgrpc.store import ApiKey, BatchJob, BulkJob, DataSource, Event, JobChunk, Page

T = TypeVar("T")

#: The fake clock's start.
T0 = 1_800_000_000.0


def key(key_id: str, account: str = "acme", created: float = T0, **changes: Any) -> ApiKey:
    base = ApiKey(key_id, account, hashlib.sha256(key_id.encode()).digest(), frozenset({"events:read"}), False, created)
    return dataclasses.replace(base, **changes)


def source(source_id: str, account: str = "acme", kind: str = "file_asset", **changes: Any) -> DataSource:
    base = DataSource(
        id=source_id,
        kind=kind,
        account=account,
        name=f"name-{source_id}",
        format="CSV",
        status="PENDING",
        tags=(),
        event_columns=(),
        event_data={},
        size=0,
        sha256="",
        created_time=T0,
        updated_time=T0,
    )
    return dataclasses.replace(base, **changes)


def job(job_id: str, account: str = "acme", **changes: Any) -> BatchJob:
    base = BatchJob(
        id=job_id,
        account=account,
        name=f"name-{job_id}",
        event_name="imported",
        default_event_name="",
        status="PENDING",
        tags=(),
        event_data={},
        event_columns=(),
        columns=(),
        scopes=(),
        source_type="FILE_ASSET",
        source_id=f"src-{job_id}",
        source_ref_id=f"ref-{job_id}",
        source_format="CSV",
        created_time=T0,
        updated_time=T0,
    )
    return dataclasses.replace(base, **changes)


def event_id(label: str) -> str:
    """A real-looking event id (32 hex digits) named by a label."""
    return hashlib.sha256(label.encode()).hexdigest()[:32]


def label(stored: Event) -> str:
    """The label an `event` was made with; a notification's id otherwise."""
    return str(json.loads(stored.data).get("id", stored.event_id))


def event(label: str, account: str = "acme", **changes: Any) -> Event:
    """A tracked event, its id from `label`."""
    base = Event(
        event_id=event_id(label),
        account=account,
        source="TRACKING",
        event_name="viewed",
        event_time=T0,
        data=json.dumps({"id": label}),
    )
    return dataclasses.replace(base, **changes)


def notification(of: BatchJob, kind: str = "batch_job_created", now: float = T0) -> Event:
    """A job's notification as the runner makes one: no job_id, the id in data."""
    data = {"batch_job_id": of.id, "status": of.status, "success_rows": of.success_rows}
    return Event(
        event_id=hashlib.sha256(f"{of.id}:{kind}".encode()).hexdigest()[:32],
        account=of.account,
        source="NOTIFICATION",
        event_name=kind,
        event_time=now,
        data=json.dumps(data),
    )


def bulk_job(job_id: str, account: str = "acme", created: float = T0, **changes: Any) -> BulkJob:
    base = BulkJob(
        id=job_id,
        account=account,
        status="QUEUED",
        event_count=0,
        accepted_count=0,
        deduplicated_count=0,
        rejected_count=0,
        errors=(),
        created_time=created,
        completed_time=None,
        request=b"serialized request",
    )
    return dataclasses.replace(base, **changes)


def row_chunks(tmp_path: Path, job_id: str, rows: list[str], *, chunk_rows: int = 1000) -> list[_core.RowChunk]:
    """What the Rust core reads from a CSV of `email,amount` rows: real
    encoded buffers, with a row issue for every bad email or amount."""
    path = tmp_path / f"{job_id}.csv"
    path.write_text("email,amount\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    spec = _core.JobSpec(
        event_name="imported",
        columns=[
            {"type": "FULL_NAME_MATCH", "name": "email", "validation_policy": "REQUIRED_VALUE", "value_type": "EMAIL"},
            {"type": "FULL_NAME_MATCH", "name": "amount", "value_type": "NUMBER"},
        ],
    )
    return list(_core.open_rows(path, "CSV", job_id=job_id, spec=spec, chunk_rows=chunk_rows))


def job_chunk(job_id: str, chunk: _core.RowChunk, event_time: float = T0) -> JobChunk:
    return JobChunk(
        job_id=job_id,
        encoded=chunk.encoded,
        issues=chunk.issues,
        rows=chunk.rows,
        good=chunk.good,
        failed=chunk.failed,
        next_offset=chunk.next_offset,
        last_row=chunk.last_row,
        event_time=event_time,
    )


async def pages(fetch: Callable[[int | None], Awaitable[Page[T]]], *, most: int = 100) -> list[list[T]]:
    """Every page of a list, following `next_cursor` from the first; a list
    whose cursor does not move on fails here instead of looping for ever."""
    found: list[list[T]] = []
    cursor: int | None = None
    while True:
        page = await fetch(cursor)
        found.append(page.items)
        if page.next_cursor is None:
            return found
        assert page.next_cursor != cursor, f"the cursor stays at {cursor}"
        assert len(found) < most, f"more than {most} pages"
        cursor = page.next_cursor
