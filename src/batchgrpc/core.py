"""The one face of the Rust core (`batchgrpc._core`) for the rest of the
service: the only module that imports it, and the one that decides what runs
off the event loop.

The rule: anything that may take more than a fraction of a millisecond runs
on a worker thread, where the core releases the interpreter, so the loop
keeps serving other calls meanwhile. Small inputs are checked inline, where a
hop to a thread would cost more than the work.

Each call is a trace span of its own (`core.<function>`), around the await.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from os import PathLike
from typing import TypeVar

from batchgrpc import _core, tracing
from batchgrpc._core import (
    BULK_EVENTS_MAX_EVENTS,
    BULK_EVENTS_MAX_REQUEST_BYTES,
    TRACK_MAX_COMMANDS,
    TRACK_MAX_REQUEST_BYTES,
    BulkRows,
    BulkValidation,
    IngestPlan,
    JobSpec,
    ProfileUpdates,
    RowChunk,
    RowReader,
    TrackBatch,
    TrackCommand,
)

__all__ = [
    "BULK_EVENTS_MAX_EVENTS",
    "BULK_EVENTS_MAX_REQUEST_BYTES",
    "TRACK_MAX_COMMANDS",
    "TRACK_MAX_REQUEST_BYTES",
    "BulkRows",
    "BulkValidation",
    "IngestPlan",
    "JobSpec",
    "ProfileUpdates",
    "RowChunk",
    "RowReader",
    "TrackBatch",
    "TrackCommand",
    "bulk_rows",
    "check_event_settings",
    "compile_job",
    "event_id",
    "event_ids",
    "next_chunk",
    "open_rows",
    "plan_ingest",
    "prepare_track_batch",
    "prepare_track_command",
    "profile_updates",
    "validate_bulk_request",
]

T = TypeVar("T")

#: Requests up to this size are checked on the event loop: the core takes
#: microseconds on them, less than a hop to a thread. Larger ones (a
#: tracking batch may be 40 MB, a bulk request 5 MB) go to a thread.
INLINE_BYTES = 64 * 1024


async def _sized(data: bytes, check: Callable[[bytes], T]) -> T:
    if len(data) <= INLINE_BYTES:
        return check(data)
    return await asyncio.to_thread(check, data)


async def validate_bulk_request(data: bytes, now: float, earliest: float) -> BulkValidation:
    """Upstream's bulk-create rules over the request's bytes, all at once;
    `earliest` is the earliest event time the request's revision takes."""
    with tracing.span("core.validate_bulk_request"):
        return await _sized(data, lambda d: _core.validate_bulk_request(d, now, earliest))


async def bulk_rows(request: bytes, job_id: str, rejected: set[tuple[int, int | None]], now: float) -> BulkRows:
    """A validated bulk request's profile updates and events, in the store's
    layout, without what partial success rejected."""
    with tracing.span("core.bulk_rows"):
        return await asyncio.to_thread(_core.bulk_rows, request, job_id, list(rejected), now)


def profile_updates(updates: bytes) -> ProfileUpdates:
    """A request's profile updates, parsed once for the store's reads and
    its plan. On the store's writing thread, never the event loop."""
    with tracing.span("core.profile_updates"):
        return _core.profile_updates(updates)


def plan_ingest(
    updates: ProfileUpdates,
    identifiers: Sequence[tuple[str, str, str]],
    resolved: Sequence[tuple[str, str]],
    profiles: Sequence[tuple[int, str, str, str, str]],
    events: bytes,
    account: str,
    now: float,
) -> IngestPlan:
    """The profile rules (`rust_core/src/profiles.rs`) over what the store
    read, and the events' rows: the store's writes for one request. Called
    on the store's writing thread, never the event loop (a 1,000-event
    request takes about a millisecond, the interpreter released)."""
    with tracing.span("core.plan_ingest"):
        return _core.plan_ingest(updates, identifiers, resolved, profiles, events, account, now)


async def prepare_track_batch(data: bytes, now: float) -> TrackBatch:
    """A tracking batch decoded, checked and normalised, command by command."""
    with tracing.span("core.prepare_track_batch"):
        return await _sized(data, lambda d: _core.prepare_track_batch(d, now))


async def prepare_track_command(kind: str, data: bytes, now: float) -> TrackBatch:
    """A single-command request as a batch of one."""
    with tracing.span("core.prepare_track_command"):
        return await _sized(data, lambda d: _core.prepare_track_command(kind, d, now))


async def compile_job(
    *,
    event_name: str,
    default_event_name: str,
    event_columns: list[str],
    event_data: dict[str, str],
    columns: list[dict[str, object]],
) -> JobSpec:
    """A job's rules and settings compiled (patterns take up to tens of ms)."""
    with tracing.span("core.compile_job"):
        return await asyncio.to_thread(
            _core.JobSpec,
            event_name=event_name,
            default_event_name=default_event_name,
            event_columns=event_columns,
            event_data=event_data,
            columns=columns,
        )


def check_event_settings(event_columns: list[str], event_data: dict[str, str]) -> None:
    """A job's event settings alone (no patterns: quick enough inline)."""
    _core.JobSpec(event_columns=event_columns, event_data=event_data)


def event_id(source: str, parts: Sequence[str]) -> str:
    """An event's id (`batchgrpc.eventids` has the layouts): a hash of a
    few short strings, microseconds, so inline."""
    return _core.event_id(source, parts)


def event_ids(source: str, keys: Sequence[Sequence[str]]) -> list[str]:
    """`event_id` for every key of a request, in one call (a bulk request's
    thousand ids cost tens of microseconds)."""
    return _core.event_ids(source, keys)


async def open_rows(
    path: str | PathLike[str],
    format: str,
    *,
    job_id: str,
    spec: JobSpec,
    chunk_rows: int,
    resume_offset: int,
    resume_row: int,
) -> RowReader:
    """A reader of a data file's rows from a checkpoint (opening reads the header)."""
    with tracing.span("core.open_rows"):
        return await asyncio.to_thread(
            _core.open_rows,
            path,
            format,
            job_id=job_id,
            spec=spec,
            chunk_rows=chunk_rows,
            resume_offset=resume_offset,
            resume_row=resume_row,
        )


async def next_chunk(reader: RowReader) -> RowChunk | None:
    """The reader's next chunk of rows, parsed, checked and encoded; None at the end."""
    with tracing.span("core.next_chunk"):
        return await asyncio.to_thread(next, reader, None)
