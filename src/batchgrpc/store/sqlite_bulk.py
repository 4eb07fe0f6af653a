"""Bulk create jobs on SQLite: the stored request, its counts and errors.

`complete` applies the job's profile updates and events (`sqlite_profiles.ingest`)
and records the counts in one transaction, so a job is applied whole and once.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable

from batchgrpc.store import BulkJob, BulkTally, IngestBatch, IngestOutcome, Lease
from batchgrpc.store.rows import BULK_COLUMNS, BULK_INSERT_COLUMNS, bulk_of, bulk_values
from batchgrpc.store.sqlite_jobs import count_by_status
from batchgrpc.store.sqlite_profiles import ingest
from batchgrpc.store.sqlite_tx import Runs


def _get_bulk(conn: sqlite3.Connection, job_id: str) -> BulkJob | None:
    row = conn.execute(f"SELECT {BULK_COLUMNS} FROM bulk_jobs WHERE id = ?", (job_id,)).fetchone()
    return bulk_of(row) if row else None


class SqliteBulkJobStore:
    def __init__(self, store: Runs) -> None:
        self._store = store

    async def create(self, job: BulkJob, lease: Lease) -> None:
        def _create(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO bulk_jobs ({BULK_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                bulk_values(job, lease),
            )

        await self._store.write(_create)

    async def get(self, account: str, job_id: str) -> BulkJob | None:
        def _get(conn: sqlite3.Connection) -> BulkJob | None:
            job = _get_bulk(conn, job_id)
            return job if job is not None and job.account == account else None

        return await self._store.run(_get)

    async def start(self, job_id: str, *, holder: str, now: float) -> BulkJob | None:
        def _start(conn: sqlite3.Connection) -> BulkJob | None:
            if not _holds(conn, job_id, holder):
                return None
            conn.execute("UPDATE bulk_jobs SET status = 'PROCESSING' WHERE id = ? AND status = 'QUEUED'", (job_id,))
            job = _get_bulk(conn, job_id)
            return job if job is not None and job.status == "PROCESSING" else None

        return await self._store.write(_start)

    async def claim_next(self, *, owner: str, now: float, seconds: float) -> BulkJob | None:
        where = "status IN ('QUEUED', 'PROCESSING') AND (lease_owner IS NULL OR lease_expires < ?)"

        def _free(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(f"SELECT id FROM bulk_jobs WHERE {where} ORDER BY seq LIMIT 1", (now,)).fetchone()
            return row[0] if row else None

        # Most polls find nothing: a read costs no write lock.
        if await self._store.run(_free) is None:
            return None

        def _claim(conn: sqlite3.Connection) -> BulkJob | None:
            job_id = _free(conn)
            if job_id is None:
                return None
            conn.execute(
                "UPDATE bulk_jobs SET lease_owner = ?, lease_expires = ? WHERE id = ?", (owner, now + seconds, job_id)
            )
            return _get_bulk(conn, job_id)

        return await self._store.write(_claim)

    async def complete(
        self,
        job_id: str,
        batch: IngestBatch,
        *,
        tally: Callable[[BulkJob, builtins.list[IngestOutcome]], BulkTally],
        now: float,
        holder: str,
    ) -> tuple[BulkJob, builtins.list[IngestOutcome]] | None:
        def _complete(conn: sqlite3.Connection) -> tuple[BulkJob, list[IngestOutcome]] | None:
            job = _get_bulk(conn, job_id)
            if job is None or job.status != "PROCESSING" or not _holds(conn, job_id, holder):
                return None
            outcomes = ingest(conn, job.account, batch, now)
            counts = tally(job, outcomes)
            conn.execute(
                "UPDATE bulk_jobs SET status = 'COMPLETE', accepted_count = ?, deduplicated_count = ?,"
                " rejected_count = ?, errors = ?, completed_time = ?, request = x'',"
                " lease_owner = NULL, lease_expires = NULL WHERE id = ?",
                (
                    counts.accepted,
                    counts.deduplicated,
                    counts.rejected,
                    json.dumps([list(e) for e in counts.errors]),
                    now,
                    job_id,
                ),
            )
            done = _get_bulk(conn, job_id)
            assert done is not None
            return done, outcomes

        return await self._store.write(_complete)

    async def fail(self, job_id: str, message: str, now: float, *, holder: str) -> None:
        def _fail(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE bulk_jobs SET status = 'FAILED', completed_time = ?,"
                " errors = json_insert(errors, '$[#]', json_array('', 'INTERNAL', ?)),"
                " lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND lease_owner = ? AND status IN ('QUEUED', 'PROCESSING')",
                (now, message, job_id, holder),
            )

        await self._store.write(_fail)

    async def count_by_status(self) -> dict[str, int]:
        return await self._store.run(lambda conn: count_by_status(conn, "bulk_jobs"))


def _holds(conn: sqlite3.Connection, job_id: str, owner: str) -> bool:
    row = conn.execute("SELECT lease_owner FROM bulk_jobs WHERE id = ?", (job_id,)).fetchone()
    return row is not None and row[0] == owner
