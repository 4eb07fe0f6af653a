"""Bulk create jobs on SQLite: the stored request, its counts and errors.

`complete` applies the job's profile updates and events (`sqlite_profiles.ingest`)
and records the counts in one transaction, so a job is applied whole and once.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from typing import Any

from batchgrpc.store import BulkJob, IngestItem, IngestOutcome
from batchgrpc.store.sqlite_profiles import ingest
from batchgrpc.store.sqlite_tx import Runs

_BULK_COLUMNS = (
    "seq, id, account, status, event_count, accepted_count, deduplicated_count, rejected_count, errors,"
    " created_time, completed_time, request"
)


def _bulk(row: tuple[Any, ...]) -> BulkJob:
    (_, id_, account, status, count, accepted, dedup, rejected, errors, created, completed, request) = row
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
        request=request,
    )


def _get_bulk(conn: sqlite3.Connection, job_id: str) -> BulkJob | None:
    row = conn.execute(f"SELECT {_BULK_COLUMNS} FROM bulk_jobs WHERE id = ?", (job_id,)).fetchone()
    return _bulk(row) if row else None


class SqliteBulkJobStore:
    def __init__(self, store: Runs) -> None:
        self._store = store

    async def create(self, job: BulkJob) -> None:
        def _create(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO bulk_jobs (id, account, status, event_count, rejected_count, errors, request,"
                " created_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.account,
                    job.status,
                    job.event_count,
                    job.rejected_count,
                    json.dumps([list(e) for e in job.errors]),
                    job.request,
                    job.created_time,
                ),
            )

        await self._store.write(_create)

    async def get(self, account: str, job_id: str) -> BulkJob | None:
        def _get(conn: sqlite3.Connection) -> BulkJob | None:
            job = _get_bulk(conn, job_id)
            return job if job is not None and job.account == account else None

        return await self._store.run(_get)

    async def start(self, job_id: str, now: float) -> BulkJob | None:
        def _start(conn: sqlite3.Connection) -> BulkJob | None:
            conn.execute("UPDATE bulk_jobs SET status = 'PROCESSING' WHERE id = ? AND status = 'QUEUED'", (job_id,))
            job = _get_bulk(conn, job_id)
            return job if job is not None and job.status == "PROCESSING" else None

        return await self._store.write(_start)

    async def complete(
        self, job_id: str, items: builtins.list[IngestItem], *, rejected: int, now: float
    ) -> tuple[BulkJob, builtins.list[IngestOutcome]]:
        def _complete(conn: sqlite3.Connection) -> tuple[BulkJob, list[IngestOutcome]]:
            job = _get_bulk(conn, job_id)
            assert job is not None
            outcomes = ingest(conn, job.account, items, now)
            accepted = sum(o.accepted for o in outcomes)
            dedup = sum(o.deduplicated for o in outcomes)
            errors = [list(e) for e in job.errors]
            total_rejected = rejected
            for item, outcome in zip(items, outcomes, strict=True):
                if outcome.error:
                    total_rejected += len(item.events)
                    errors.append([f"{item.pointer}/attributes/profile/data/id", "PROFILE_NOT_FOUND", outcome.error])
            conn.execute(
                "UPDATE bulk_jobs SET status = 'COMPLETE', accepted_count = ?, deduplicated_count = ?,"
                " rejected_count = ?, errors = ?, completed_time = ?, request = x'' WHERE id = ?",
                (accepted, dedup, total_rejected, json.dumps(errors), now, job_id),
            )
            done = _get_bulk(conn, job_id)
            assert done is not None
            return done, outcomes

        return await self._store.write(_complete)

    async def fail(self, job_id: str, message: str, now: float) -> None:
        def _fail(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE bulk_jobs SET status = 'FAILED', completed_time = ?,"
                " errors = json_insert(errors, '$[#]', json_array('', 'INTERNAL', ?)) WHERE id = ?",
                (now, message, job_id),
            )

        await self._store.write(_fail)

    async def unfinished(self) -> builtins.list[BulkJob]:
        def _unfinished(conn: sqlite3.Connection) -> list[BulkJob]:
            rows = conn.execute(
                f"SELECT {_BULK_COLUMNS} FROM bulk_jobs WHERE status IN ('QUEUED', 'PROCESSING') ORDER BY seq"
            ).fetchall()
            return [_bulk(r) for r in rows]

        return await self._store.run(_unfinished)
