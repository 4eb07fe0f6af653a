"""Data sources, batch jobs and the event log on SQLite.

A job's chunk of rows is stored in one transaction: its events (unpacked by
SQLite's `json_each` from the buffer the Rust core encoded, so Python never
sees an event), its row errors, its counts and its checkpoint. A crash
therefore loses a whole chunk or nothing, and a resumed job reads on from the
checkpoint with its counts exact: a row is never offered twice, so (job, row)
is its key and it needs no id index (its id is computed when it is read).
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable, Sequence

from batchgrpc.store import (
    BatchJob,
    DataSource,
    Event,
    EventFilter,
    JobChunk,
    JobFilter,
    Page,
    RowError,
    SourceInUse,
)
from batchgrpc.store.migrations import id_halves
from batchgrpc.store.rows import (
    EVENT_COLUMNS,
    EVENT_FIELDS,
    JOB_COLUMNS,
    JOB_FIELDS,
    SOURCE_COLUMNS,
    events_of,
    job_of,
    job_value,
    page_of,
    source_of,
    source_values,
)
from batchgrpc.store.sqlite_tx import Runs


def _stored_id(event: Event) -> tuple[int, int] | tuple[None, None]:
    # A batch row's id is its (job, row): not stored.
    return (None, None) if event.source == "BATCH_JOB" else id_halves(event.event_id)


def _insert_events(conn: sqlite3.Connection, events: Sequence[Event]) -> int:
    before = conn.total_changes
    conn.executemany(
        f"INSERT OR IGNORE INTO events (id_high, id_low, {', '.join(EVENT_FIELDS)})"
        f" VALUES ({', '.join('?' * (len(EVENT_FIELDS) + 2))})",
        [(*_stored_id(e), *(getattr(e, f) for f in EVENT_FIELDS)) for e in events],
    )
    return conn.total_changes - before


def _get_job(conn: sqlite3.Connection, job_id: str) -> BatchJob | None:
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM batch_jobs WHERE id = ?", (job_id,)).fetchone()
    return job_of(row) if row else None


class SqliteDataSourceStore:
    def __init__(self, store: Runs) -> None:
        self._store = store

    async def create(self, source: DataSource) -> None:
        def _create(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO data_sources ({SOURCE_COLUMNS.removeprefix('seq, ')})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                source_values(source),
            )

        await self._store.write(_create)

    async def get(self, account: str, kind: str, source_id: str) -> DataSource | None:
        def _get(conn: sqlite3.Connection) -> DataSource | None:
            row = conn.execute(
                f"SELECT {SOURCE_COLUMNS} FROM data_sources WHERE id = ? AND account = ? AND kind = ?",
                (source_id, account, kind),
            ).fetchone()
            return source_of(row) if row else None

        return await self._store.run(_get)

    async def list(
        self, account: str, kind: str, *, name: str, tags: tuple[str, ...], cursor: int | None, limit: int
    ) -> Page[DataSource]:
        def _list(conn: sqlite3.Connection) -> Page[DataSource]:
            sql = f"SELECT {SOURCE_COLUMNS} FROM data_sources WHERE account = ? AND kind = ?"
            params: list[object] = [account, kind]
            if name:
                sql += " AND name = ?"
                params.append(name)
            for tag in tags:
                sql += " AND EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)"
                params.append(tag)
            if cursor is not None:
                sql += " AND seq < ?"
                params.append(cursor)
            rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit + 1)).fetchall()
            return page_of(rows, limit, source_of)

        return await self._store.run(_list)

    async def complete(
        self, account: str, kind: str, source_id: str, *, expect: str, status: str, size: int, sha256: str, now: float
    ) -> DataSource | None:
        def _complete(conn: sqlite3.Connection) -> DataSource | None:
            changed = conn.execute(
                "UPDATE data_sources SET status = ?, size = ?, sha256 = ?, updated_time = ?, completed_time = ?"
                " WHERE id = ? AND account = ? AND kind = ? AND status = ?",
                (status, size, sha256, now, now, source_id, account, kind, expect),
            ).rowcount
            if not changed:
                return None
            row = conn.execute(f"SELECT {SOURCE_COLUMNS} FROM data_sources WHERE id = ?", (source_id,)).fetchone()
            return source_of(row)

        return await self._store.write(_complete)

    async def delete(self, account: str, kind: str, source_id: str, *, in_use: tuple[str, ...]) -> DataSource | None:
        def _delete(conn: sqlite3.Connection) -> DataSource | None:
            row = conn.execute(
                f"SELECT {SOURCE_COLUMNS} FROM data_sources WHERE id = ? AND account = ? AND kind = ?",
                (source_id, account, kind),
            ).fetchone()
            if row is None:
                return None
            users = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM batch_jobs WHERE account = ? AND source_id = ?"
                    f" AND status IN ({', '.join('?' * len(in_use))}) ORDER BY seq",
                    (account, source_id, *in_use),
                )
            ]
            if users:
                raise SourceInUse(users)
            conn.execute("DELETE FROM data_sources WHERE id = ?", (source_id,))
            return source_of(row)

        return await self._store.write(_delete)


class SqliteJobStore:
    def __init__(self, store: Runs) -> None:
        self._store = store

    async def create(self, job: BatchJob, notification: Event) -> None:
        def _create(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO batch_jobs ({', '.join(JOB_FIELDS)}) VALUES ({', '.join('?' * len(JOB_FIELDS))})",
                tuple(job_value(f, getattr(job, f)) for f in JOB_FIELDS),
            )
            _insert_events(conn, [notification])

        await self._store.write(_create)

    async def get(self, job_id: str, account: str | None = None) -> BatchJob | None:
        def _get(conn: sqlite3.Connection) -> BatchJob | None:
            job = _get_job(conn, job_id)
            return job if job and (account is None or job.account == account) else None

        return await self._store.run(_get)

    async def list(self, account: str, where: JobFilter, *, cursor: int | None, limit: int) -> Page[BatchJob]:
        def _list(conn: sqlite3.Connection) -> Page[BatchJob]:
            sql = f"SELECT {JOB_COLUMNS} FROM batch_jobs WHERE account = ?"
            params: list[object] = [account]
            if where.name:
                sql += " AND name = ?"
                params.append(where.name)
            if where.event_name:
                sql += " AND event_name = ?"
                params.append(where.event_name)
            for tag in where.tags:
                sql += " AND EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)"
                params.append(tag)
            if where.statuses:
                sql += f" AND status IN ({', '.join('?' * len(where.statuses))})"
                params.extend(where.statuses)
            if cursor is not None:
                sql += " AND seq < ?"
                params.append(cursor)
            rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit + 1)).fetchall()
            return page_of(rows, limit, job_of)

        return await self._store.run(_list)

    async def update(
        self, account: str, job_id: str, changes: dict[str, object], *, unless_status: tuple[str, ...], now: float
    ) -> tuple[BatchJob | None, bool]:
        assert set(changes) <= {"name", "tags", "scopes"}, changes

        def _update(conn: sqlite3.Connection) -> tuple[BatchJob | None, bool]:
            job = _get_job(conn, job_id)
            if job is None or job.account != account:
                return None, False
            if job.status in unless_status:
                return job, False
            _set(conn, job_id, {**changes, "updated_time": now})
            return _get_job(conn, job_id), True

        return await self._store.write(_update)

    async def transition(
        self,
        job_id: str,
        *,
        allowed_from: tuple[str, ...],
        to: str,
        now: float,
        changes: dict[str, object] | None = None,
        notification: Callable[[BatchJob], Event] | None = None,
        holder: str | None = None,
        release: bool = False,
    ) -> tuple[BatchJob | None, bool]:
        def _transition(conn: sqlite3.Connection) -> tuple[BatchJob | None, bool]:
            job = _get_job(conn, job_id)
            if job is None or job.status not in allowed_from:
                return job, False
            if holder is not None and not _holds(conn, job_id, holder):
                return job, False
            _set(conn, job_id, {**(changes or {}), "status": to, "updated_time": now})
            if release:
                conn.execute("UPDATE batch_jobs SET lease_owner = NULL, lease_expires = NULL WHERE id = ?", (job_id,))
            after = _get_job(conn, job_id)
            assert after is not None
            if notification is not None:
                _insert_events(conn, [notification(after)])
            return after, True

        return await self._store.write(_transition)

    async def record_chunk(self, chunk: JobChunk, *, account: str, while_status: str, holder: str) -> BatchJob | None:
        def _record(conn: sqlite3.Connection) -> BatchJob | None:
            row = conn.execute("SELECT status, lease_owner FROM batch_jobs WHERE id = ?", (chunk.job_id,)).fetchone()
            if row is None or row[0] != while_status or row[1] != holder:
                return None
            if chunk.good:
                # CAST: the buffer arrives as a BLOB, which newer SQLite
                # would read as JSONB; as TEXT it is the JSON it is.
                # No id: a batch row's is its (job_id, row_number).
                conn.execute(
                    "INSERT INTO events (account, source, job_id, row_number, event_name,"
                    " event_time, profile_id, identity, data, value, value_currency, unique_id, traceparent)"
                    " SELECT ?, 'BATCH_JOB', ?, value->>1, value->>2, ?, '', value->>3, value->>4,"
                    " NULL, '', '', ? FROM json_each(CAST(? AS TEXT))",
                    (account, chunk.job_id, chunk.event_time, chunk.traceparent, chunk.encoded),
                )
            if chunk.issues:
                conn.executemany(
                    "INSERT INTO row_errors (job_id, row_number, byte_offset, column_name, reason, message)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(chunk.job_id, *issue) for issue in chunk.issues],
                )
            conn.execute(
                "UPDATE batch_jobs SET rows_read = rows_read + ?, success_rows = success_rows + ?,"
                " failed_rows = failed_rows + ?, next_offset = ?, last_row = ?, updated_time = ? WHERE id = ?",
                (
                    chunk.rows,
                    chunk.good,
                    chunk.failed,
                    chunk.next_offset,
                    chunk.last_row,
                    chunk.event_time,
                    chunk.job_id,
                ),
            )
            return _get_job(conn, chunk.job_id)

        return await self._store.write(_record)

    async def row_errors(self, job_id: str, *, cursor: int | None, limit: int) -> Page[RowError]:
        def _errors(conn: sqlite3.Connection) -> Page[RowError]:
            rows = conn.execute(
                "SELECT rowid, row_number, byte_offset, column_name, reason, message FROM row_errors"
                " WHERE job_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
                (job_id, cursor or 0, limit + 1),
            ).fetchall()
            return page_of(rows, limit, lambda r: RowError(*r[1:]))

        return await self._store.run(_errors)

    async def delete(self, account: str, job_id: str, *, allowed_from: tuple[str, ...]) -> tuple[BatchJob | None, bool]:
        def _delete(conn: sqlite3.Connection) -> tuple[BatchJob | None, bool]:
            job = _get_job(conn, job_id)
            if job is None or job.account != account:
                return None, False
            if job.status not in allowed_from:
                return job, False
            conn.execute("DELETE FROM row_errors WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM batch_jobs WHERE id = ?", (job_id,))
            return job, True

        return await self._store.write(_delete)

    async def claim(
        self, job_id: str, *, owner: str, now: float, seconds: float, statuses: tuple[str, ...]
    ) -> BatchJob | None:
        def _claim(conn: sqlite3.Connection) -> BatchJob | None:
            changed = conn.execute(
                "UPDATE batch_jobs SET lease_owner = ?, lease_expires = ?"
                f" WHERE id = ? AND status IN ({', '.join('?' * len(statuses))})"
                " AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires < ?)",
                (owner, now + seconds, job_id, *statuses, owner, now),
            ).rowcount
            return _get_job(conn, job_id) if changed else None

        return await self._store.write(_claim)

    async def claim_next(self, *, owner: str, now: float, seconds: float, statuses: tuple[str, ...]) -> BatchJob | None:
        where = f"status IN ({', '.join('?' * len(statuses))}) AND (lease_owner IS NULL OR lease_expires < ?)"

        def _free(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                f"SELECT id FROM batch_jobs WHERE {where} ORDER BY seq LIMIT 1", (*statuses, now)
            ).fetchone()
            return row[0] if row else None

        # A read first: workers poll, and most polls find nothing to take,
        # which then costs no write lock.
        if await self._store.run(_free) is None:
            return None

        def _claim(conn: sqlite3.Connection) -> BatchJob | None:
            # Again inside the write: another worker may have taken it.
            job_id = _free(conn)
            if job_id is None:
                return None
            conn.execute(
                "UPDATE batch_jobs SET lease_owner = ?, lease_expires = ? WHERE id = ?",
                (owner, now + seconds, job_id),
            )
            return _get_job(conn, job_id)

        return await self._store.write(_claim)

    async def release(self, job_id: str, owner: str) -> None:
        def _release(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE batch_jobs SET lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = ?",
                (job_id, owner),
            )

        await self._store.write(_release)

    async def count_by_status(self) -> dict[str, int]:
        return await self._store.run(lambda conn: count_by_status(conn, "batch_jobs"))


def count_by_status(conn: sqlite3.Connection, table: str) -> dict[str, int]:
    """Jobs of `table` per status (its status index answers it)."""
    return {status: int(n) for status, n in conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status")}


def _holds(conn: sqlite3.Connection, job_id: str, owner: str) -> bool:
    row = conn.execute("SELECT lease_owner FROM batch_jobs WHERE id = ?", (job_id,)).fetchone()
    return row is not None and row[0] == owner


def _set(conn: sqlite3.Connection, job_id: str, changes: dict[str, object]) -> None:
    # Column names come from our own code, checked against the schema's list.
    assert set(changes) <= set(JOB_FIELDS), changes
    assignments = ", ".join(f"{name} = ?" for name in changes)
    values = [job_value(name, value) for name, value in changes.items()]
    conn.execute(f"UPDATE batch_jobs SET {assignments} WHERE id = ?", (*values, job_id))


class SqliteEventLog:
    def __init__(self, store: Runs) -> None:
        self._store = store

    async def append(self, events: builtins.list[Event]) -> int:
        def _append(conn: sqlite3.Connection) -> int:
            return _insert_events(conn, events)

        return await self._store.write(_append)

    async def list(self, account: str, where: EventFilter, *, cursor: int | None, limit: int) -> Page[Event]:
        def _list(conn: sqlite3.Connection) -> Page[Event]:
            sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE account = ?"
            params: list[object] = [account]
            for column, value in (
                ("job_id", where.job_id),
                ("profile_id", where.profile_id),
                ("event_name", where.event_name),
            ):
                if value:
                    # The `<> ''` matches the partial indexes' condition.
                    sql += f" AND {column} = ? AND {column} <> ''"
                    params.append(value)
            # Oldest first: a job's events come back in row order.
            rows = conn.execute(sql + " AND seq > ? ORDER BY seq LIMIT ?", (*params, cursor or 0, limit + 1)).fetchall()
            page = page_of(rows, limit, lambda r: r)
            return Page(events_of(page.items), page.next_cursor)

        return await self._store.run(_list)

    async def get(self, account: str, position: int) -> Event | None:
        def _get(conn: sqlite3.Connection) -> Event | None:
            row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ? AND account = ?", (position, account)
            ).fetchone()
            return events_of([row])[0] if row else None

        return await self._store.run(_get)

    async def after(self, position: int, *, limit: int) -> builtins.list[Event]:
        def _after(conn: sqlite3.Connection) -> builtins.list[Event]:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (position, limit)
            ).fetchall()
            return events_of(rows)

        return await self._store.run(_after)

    async def delivered(self, sink: str) -> int:
        def _delivered(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT position FROM sink_positions WHERE sink = ?", (sink,)).fetchone()
            return int(row[0]) if row else 0

        return await self._store.run(_delivered)

    async def mark_delivered(self, sink: str, position: int, *, now: float) -> int:
        def _mark(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO sink_positions (sink, position, updated_time) VALUES (?, ?, ?)"
                " ON CONFLICT (sink) DO UPDATE SET position = max(position, excluded.position),"
                " updated_time = excluded.updated_time",
                (sink, position, now),
            )
            return int(conn.execute("SELECT position FROM sink_positions WHERE sink = ?", (sink,)).fetchone()[0])

        return await self._store.write(_mark)

    async def last_position(self, job_id: str) -> int:
        def _last(conn: sqlite3.Connection) -> int:
            # Batch-row events only: the account is in the index's key, so
            # it comes from the job.
            row = conn.execute(
                "SELECT max(e.seq) FROM batch_jobs j JOIN events e"
                " ON e.account = j.account AND e.job_id = j.id AND e.job_id <> ''"
                " WHERE j.id = ?",
                (job_id,),
            ).fetchone()
            return int(row[0] or 0)

        return await self._store.run(_last)

    async def newest_position(self) -> int:
        def _newest(conn: sqlite3.Connection) -> int:
            # The rowid's maximum: the last entry of its B-tree.
            return int(conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0)

        return await self._store.run(_newest)
