"""Data sources, batch jobs, leases and the event log on PostgreSQL.

As on SQLite (`sqlite_jobs.py`), a job's chunk is one transaction: its
events (unpacked by `json_array_elements` from the core's buffer), row
errors, counts and checkpoint. Claims take a free job with `FOR UPDATE SKIP
LOCKED`, so replicas polling together each take a different one.

Event positions: every transaction that inserts events takes one
transaction-level advisory lock first (`lock_events`), so the identity's
values are handed out in commit order. A reader of the outbox that has seen
position p never sees a smaller one appear later, which is what the relay's
"delivered up to p" needs. Taking it first, before any row lock, keeps two
transactions from waiting on each other.
"""

from __future__ import annotations

import builtins
import functools
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

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
from batchgrpc.store.postgres_sets import columns, copy_rows
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

if TYPE_CHECKING:
    from batchgrpc.store.postgres import Connection, PostgresStore

#: The advisory lock of every transaction that inserts events.
_EVENTS_LOCK = 0x62617463_68657674  # "batchevt"

#: The tables whose rows carry `lease_owner` / `lease_expires`.
_LEASED = ("batch_jobs", "bulk_jobs")


async def lock_events(conn: Connection) -> None:
    """Takes the event log's insert lock until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_EVENTS_LOCK,))


#: `unnest`'s element type for each column `insert_events` writes.
_NUMERIC = {"row_number": "bigint", "event_time": "float8", "value": "float8", "backfill": "boolean"}
_EVENT_TYPES = ("bigint", "bigint", *(_NUMERIC.get(f, "text") for f in EVENT_FIELDS))


async def insert_events(conn: Connection, events: Sequence[Event]) -> int:
    """Inserts events (the caller holds `lock_events`) in one statement, in
    their order; a notification already stored is not stored again.
    Returns how many were new."""
    if not events:
        return 0
    rows = [
        (*((None, None) if e.source == "BATCH_JOB" else id_halves(e.event_id)), *(getattr(e, f) for f in EVENT_FIELDS))
        for e in events
    ]
    arrays = ", ".join(f"%s::{kind}[]" for kind in _EVENT_TYPES)
    names = ", ".join(("id_high", "id_low", *EVENT_FIELDS))
    cursor = await conn.execute(
        f"INSERT INTO events ({names}) SELECT {names} FROM unnest({arrays})"
        f" WITH ORDINALITY AS t({names}, n) ORDER BY n ON CONFLICT DO NOTHING",
        columns(rows, len(_EVENT_TYPES)),
    )
    return cursor.rowcount


async def _get_job(conn: Connection, job_id: str, *, lock: bool = False) -> BatchJob | None:
    cursor = await conn.execute(
        f"SELECT {JOB_COLUMNS} FROM batch_jobs WHERE id = %s" + (" FOR UPDATE" if lock else ""), (job_id,)
    )
    row = await cursor.fetchone()
    return job_of(row) if row else None


async def _set(conn: Connection, job_id: str, changes: dict[str, object]) -> None:
    # Column names come from our own code, checked against the schema's list.
    assert set(changes) <= set(JOB_FIELDS), changes
    assignments = ", ".join(f"{name} = %s" for name in changes)
    values = [job_value(name, value) for name, value in changes.items()]
    await conn.execute(f"UPDATE batch_jobs SET {assignments} WHERE id = %s", (*values, job_id))


def _tags_clause(tags: tuple[str, ...], params: list[object]) -> str:
    if not tags:
        return ""
    params.append(json.dumps(list(tags)))
    return " AND tags::jsonb @> %s::jsonb"


class PostgresDataSourceStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def create(self, source: DataSource) -> None:
        async def _create(conn: Connection) -> None:
            await conn.execute(
                f"INSERT INTO data_sources ({SOURCE_COLUMNS.removeprefix('seq, ')})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                source_values(source),
            )

        await self._store.write(_create)

    async def get(self, account: str, kind: str, source_id: str) -> DataSource | None:
        async def _get(conn: Connection) -> DataSource | None:
            cursor = await conn.execute(
                f"SELECT {SOURCE_COLUMNS} FROM data_sources WHERE id = %s AND account = %s AND kind = %s",
                (source_id, account, kind),
            )
            row = await cursor.fetchone()
            return source_of(row) if row else None

        return await self._store.read(_get)

    async def list(
        self, account: str, kind: str, *, name: str, tags: tuple[str, ...], cursor: int | None, limit: int
    ) -> Page[DataSource]:
        async def _list(conn: Connection) -> Page[DataSource]:
            sql = f"SELECT {SOURCE_COLUMNS} FROM data_sources WHERE account = %s AND kind = %s"
            params: list[object] = [account, kind]
            if name:
                sql += " AND name = %s"
                params.append(name)
            sql += _tags_clause(tags, params)
            if cursor is not None:
                sql += " AND seq < %s"
                params.append(cursor)
            rows = await (await conn.execute(sql + " ORDER BY seq DESC LIMIT %s", (*params, limit + 1))).fetchall()
            return page_of(rows, limit, source_of)

        return await self._store.read(_list)

    async def complete(
        self, account: str, kind: str, source_id: str, *, expect: str, status: str, size: int, sha256: str, now: float
    ) -> DataSource | None:
        async def _complete(conn: Connection) -> DataSource | None:
            cursor = await conn.execute(
                "UPDATE data_sources SET status = %s, size = %s, sha256 = %s, updated_time = %s, completed_time = %s"
                f" WHERE id = %s AND account = %s AND kind = %s AND status = %s RETURNING {SOURCE_COLUMNS}",
                (status, size, sha256, now, now, source_id, account, kind, expect),
            )
            row = await cursor.fetchone()
            return source_of(row) if row else None

        return await self._store.write(_complete)

    async def delete(self, account: str, kind: str, source_id: str, *, in_use: tuple[str, ...]) -> DataSource | None:
        async def _delete(conn: Connection) -> DataSource | None:
            cursor = await conn.execute(
                f"SELECT {SOURCE_COLUMNS} FROM data_sources WHERE id = %s AND account = %s AND kind = %s FOR UPDATE",
                (source_id, account, kind),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            users = await (
                await conn.execute(
                    "SELECT id FROM batch_jobs WHERE account = %s AND source_id = %s AND status = ANY(%s) ORDER BY seq",
                    (account, source_id, list(in_use)),
                )
            ).fetchall()
            if users:
                raise SourceInUse([u for (u,) in users])
            await conn.execute("DELETE FROM data_sources WHERE id = %s", (source_id,))
            return source_of(row)

        return await self._store.write(_delete)


class PostgresJobStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def create(self, job: BatchJob, notification: Event) -> None:
        async def _create(conn: Connection) -> None:
            await lock_events(conn)
            await conn.execute(
                f"INSERT INTO batch_jobs ({', '.join(JOB_FIELDS)}) VALUES ({', '.join(['%s'] * len(JOB_FIELDS))})",
                tuple(job_value(f, getattr(job, f)) for f in JOB_FIELDS),
            )
            await insert_events(conn, [notification])

        await self._store.write(_create)

    async def get(self, job_id: str, account: str | None = None) -> BatchJob | None:
        async def _get(conn: Connection) -> BatchJob | None:
            job = await _get_job(conn, job_id)
            return job if job and (account is None or job.account == account) else None

        return await self._store.read(_get)

    async def list(self, account: str, where: JobFilter, *, cursor: int | None, limit: int) -> Page[BatchJob]:
        async def _list(conn: Connection) -> Page[BatchJob]:
            sql = f"SELECT {JOB_COLUMNS} FROM batch_jobs WHERE account = %s"
            params: list[object] = [account]
            if where.name:
                sql += " AND name = %s"
                params.append(where.name)
            if where.event_name:
                sql += " AND event_name = %s"
                params.append(where.event_name)
            sql += _tags_clause(where.tags, params)
            if where.statuses:
                sql += " AND status = ANY(%s)"
                params.append(list(where.statuses))
            if cursor is not None:
                sql += " AND seq < %s"
                params.append(cursor)
            rows = await (await conn.execute(sql + " ORDER BY seq DESC LIMIT %s", (*params, limit + 1))).fetchall()
            return page_of(rows, limit, job_of)

        return await self._store.read(_list)

    async def update(
        self, account: str, job_id: str, changes: dict[str, object], *, unless_status: tuple[str, ...], now: float
    ) -> tuple[BatchJob | None, bool]:
        assert set(changes) <= {"name", "tags", "scopes"}, changes

        async def _update(conn: Connection) -> tuple[BatchJob | None, bool]:
            job = await _get_job(conn, job_id, lock=True)
            if job is None or job.account != account:
                return None, False
            if job.status in unless_status:
                return job, False
            await _set(conn, job_id, {**changes, "updated_time": now})
            return await _get_job(conn, job_id), True

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
        async def _transition(conn: Connection) -> tuple[BatchJob | None, bool]:
            if notification is not None:
                await lock_events(conn)
            cursor = await conn.execute(
                f"SELECT {JOB_COLUMNS}, lease_owner FROM batch_jobs WHERE id = %s FOR UPDATE", (job_id,)
            )
            row = await cursor.fetchone()
            job = job_of(row[:-1]) if row else None
            if job is None or job.status not in allowed_from:
                return job, False
            if holder is not None and row is not None and row[-1] != holder:
                return job, False
            await _set(conn, job_id, {**(changes or {}), "status": to, "updated_time": now})
            if release:
                await conn.execute(
                    "UPDATE batch_jobs SET lease_owner = NULL, lease_expires = NULL WHERE id = %s", (job_id,)
                )
            after = await _get_job(conn, job_id)
            assert after is not None
            if notification is not None:
                await insert_events(conn, [notification(after)])
            return after, True

        return await self._store.write(_transition)

    async def record_chunk(self, chunk: JobChunk, *, account: str, while_status: str, holder: str) -> BatchJob | None:
        async def _record(conn: Connection) -> BatchJob | None:
            if chunk.good:
                await lock_events(conn)
            cursor = await conn.execute(
                "SELECT status, lease_owner FROM batch_jobs WHERE id = %s FOR UPDATE", (chunk.job_id,)
            )
            row = await cursor.fetchone()
            if row is None or row[0] != while_status or row[1] != holder:
                return None
            if chunk.good:
                # No id: a batch row's is its (job_id, row_number).
                await conn.execute(
                    "INSERT INTO events (account, source, job_id, row_number, event_name,"
                    " event_time, profile_id, identity, data, value, value_currency, unique_id, traceparent)"
                    " SELECT %s, 'BATCH_JOB', %s, (e->>1)::bigint, e->>2, %s, '', e->>3, e->>4, NULL, '', '', %s"
                    " FROM json_array_elements(convert_from(%s, 'UTF8')::json) WITH ORDINALITY AS t(e, n)"
                    " ORDER BY n",
                    (account, chunk.job_id, chunk.event_time, chunk.traceparent, chunk.encoded),
                )
            async with conn.cursor() as errors:
                await copy_rows(
                    errors,
                    "row_errors (job_id, row_number, byte_offset, column_name, reason, message)",
                    [(chunk.job_id, *issue) for issue in chunk.issues],
                )
            await conn.execute(
                "UPDATE batch_jobs SET rows_read = rows_read + %s, success_rows = success_rows + %s,"
                " failed_rows = failed_rows + %s, next_offset = %s, last_row = %s, updated_time = %s WHERE id = %s",
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
            return await _get_job(conn, chunk.job_id)

        return await self._store.write(_record)

    async def row_errors(self, job_id: str, *, cursor: int | None, limit: int) -> Page[RowError]:
        async def _errors(conn: Connection) -> Page[RowError]:
            rows = await (
                await conn.execute(
                    "SELECT seq, row_number, byte_offset, column_name, reason, message FROM row_errors"
                    " WHERE job_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                    (job_id, cursor or 0, limit + 1),
                )
            ).fetchall()
            return page_of(rows, limit, lambda r: RowError(*r[1:]))

        return await self._store.read(_errors)

    async def delete(self, account: str, job_id: str, *, allowed_from: tuple[str, ...]) -> tuple[BatchJob | None, bool]:
        async def _delete(conn: Connection) -> tuple[BatchJob | None, bool]:
            job = await _get_job(conn, job_id, lock=True)
            if job is None or job.account != account:
                return None, False
            if job.status not in allowed_from:
                return job, False
            await conn.execute("DELETE FROM row_errors WHERE job_id = %s", (job_id,))
            await conn.execute("DELETE FROM batch_jobs WHERE id = %s", (job_id,))
            return job, True

        return await self._store.write(_delete)

    async def claim(
        self, job_id: str, *, owner: str, now: float, seconds: float, statuses: tuple[str, ...]
    ) -> BatchJob | None:
        async def _claim(conn: Connection) -> BatchJob | None:
            cursor = await conn.execute(
                f"UPDATE batch_jobs SET lease_owner = %s, lease_expires = %s"
                " WHERE id = %s AND status = ANY(%s)"
                f" AND (lease_owner IS NULL OR lease_owner = %s OR lease_expires < %s) RETURNING {JOB_COLUMNS}",
                (owner, now + seconds, job_id, list(statuses), owner, now),
            )
            row = await cursor.fetchone()
            return job_of(row) if row else None

        return await self._store.write(_claim)

    async def claim_next(self, *, owner: str, now: float, seconds: float, statuses: tuple[str, ...]) -> BatchJob | None:
        async def _claim(conn: Connection) -> BatchJob | None:
            # SKIP LOCKED: replicas polling at once each take another job,
            # none waits on a job another is taking.
            cursor = await conn.execute(
                "UPDATE batch_jobs SET lease_owner = %s, lease_expires = %s WHERE seq = ("
                " SELECT seq FROM batch_jobs WHERE status = ANY(%s)"
                " AND (lease_owner IS NULL OR lease_expires < %s)"
                f" ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {JOB_COLUMNS}",
                (owner, now + seconds, list(statuses), now),
            )
            row = await cursor.fetchone()
            return job_of(row) if row else None

        return await self._store.write(_claim)

    async def release(self, job_id: str, owner: str) -> None:
        async def _release(conn: Connection) -> None:
            await conn.execute(
                "UPDATE batch_jobs SET lease_owner = NULL, lease_expires = NULL WHERE id = %s AND lease_owner = %s",
                (job_id, owner),
            )

        await self._store.write(_release)

    async def count_by_status(self) -> dict[str, int]:
        return await self._store.read(lambda conn: count_by_status(conn, "batch_jobs"))


class PostgresLeaseStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def acquire(self, name: str, owner: str, *, now: float, seconds: float) -> bool:
        async def _acquire(conn: Connection) -> bool:
            cursor = await conn.execute(
                "INSERT INTO leases (name, owner, expires) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
                " WHERE leases.owner = excluded.owner OR leases.expires < %s RETURNING 1",
                (name, owner, now + seconds, now),
            )
            return await cursor.fetchone() is not None

        return await self._store.write(_acquire)

    async def holds(self, name: str, owner: str, *, now: float) -> bool:
        async def _holds(conn: Connection) -> bool:
            cursor = await conn.execute("SELECT owner, expires FROM leases WHERE name = %s", (name,))
            row = await cursor.fetchone()
            return bool(row and row[0] == owner and row[1] >= now)

        return await self._store.read(_holds)

    async def renew(self, owner: str, *, now: float, seconds: float) -> int:
        # One transaction per table. Writers lock a job's row and the event
        # log's lock in either order (a chunk takes the events lock first, a
        # bulk job's completion its row first), so one transaction holding
        # rows of both job tables while it waits made a cycle with them:
        # PostgreSQL broke it by failing the heartbeat, and leases lapsed.
        async def _renew(conn: Connection, table: str, owner_column: str, expires_column: str) -> int:
            cursor = await conn.execute(
                f"UPDATE {table} SET {expires_column} = %s WHERE {owner_column} = %s",
                (now + seconds, owner),
            )
            return cursor.rowcount

        renewed = 0
        for table, owner_column, expires_column in (
            ("leases", "owner", "expires"),
            *((table, "lease_owner", "lease_expires") for table in _LEASED),
        ):
            renewed += await self._store.write(
                functools.partial(_renew, table=table, owner_column=owner_column, expires_column=expires_column)
            )
        return renewed

    async def owners(self) -> builtins.list[str]:
        async def _owners(conn: Connection) -> builtins.list[str]:
            union = " UNION ".join(f"SELECT lease_owner FROM {t} WHERE lease_owner IS NOT NULL" for t in _LEASED)
            rows = await (await conn.execute(f"SELECT owner FROM leases UNION {union}")).fetchall()
            return sorted(owner for (owner,) in rows)

        return await self._store.read(_owners)

    async def release_owner(self, owner: str) -> int:
        async def _release(conn: Connection) -> int:
            cursor = await conn.execute("DELETE FROM leases WHERE owner = %s", (owner,))
            released = cursor.rowcount
            for table in _LEASED:
                cursor = await conn.execute(
                    f"UPDATE {table} SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = %s",
                    (owner,),
                )
                released += cursor.rowcount
            return released

        return await self._store.write(_release)


async def count_by_status(conn: Connection, table: str) -> dict[str, int]:
    """Jobs of `table` per status (its status index answers it)."""
    rows = await (await conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status")).fetchall()
    return {status: int(n) for status, n in rows}


class PostgresEventLog:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def append(self, events: builtins.list[Event]) -> int:
        async def _append(conn: Connection) -> int:
            await lock_events(conn)
            return await insert_events(conn, events)

        return await self._store.write(_append)

    async def list(self, account: str, where: EventFilter, *, cursor: int | None, limit: int) -> Page[Event]:
        async def _list(conn: Connection) -> Page[Event]:
            sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE account = %s"
            params: list[object] = [account]
            for column, value in (
                ("job_id", where.job_id),
                ("profile_id", where.profile_id),
                ("event_name", where.event_name),
            ):
                if value:
                    # The `<> ''` matches the partial indexes' condition.
                    sql += f" AND {column} = %s AND {column} <> ''"
                    params.append(value)
            rows = await (
                await conn.execute(sql + " AND seq > %s ORDER BY seq LIMIT %s", (*params, cursor or 0, limit + 1))
            ).fetchall()
            page = page_of(rows, limit, lambda r: r)
            return Page(events_of(page.items), page.next_cursor)

        return await self._store.read(_list)

    async def get(self, account: str, position: int) -> Event | None:
        async def _get(conn: Connection) -> Event | None:
            row = await (
                await conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = %s AND account = %s", (position, account)
                )
            ).fetchone()
            return events_of([row])[0] if row else None

        return await self._store.read(_get)

    async def after(self, position: int, *, limit: int) -> builtins.list[Event]:
        async def _after(conn: Connection) -> builtins.list[Event]:
            rows = await (
                await conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (position, limit)
                )
            ).fetchall()
            return events_of(rows)

        return await self._store.read(_after)

    async def delivered(self, sink: str) -> int:
        async def _delivered(conn: Connection) -> int:
            row = await (await conn.execute("SELECT position FROM sink_positions WHERE sink = %s", (sink,))).fetchone()
            return int(row[0]) if row else 0

        return await self._store.read(_delivered)

    async def mark_delivered(self, sink: str, position: int, *, now: float) -> int:
        async def _mark(conn: Connection) -> int:
            cursor = await conn.execute(
                "INSERT INTO sink_positions (sink, position, updated_time) VALUES (%s, %s, %s)"
                " ON CONFLICT (sink) DO UPDATE SET position = greatest(sink_positions.position, excluded.position),"
                " updated_time = excluded.updated_time RETURNING position",
                (sink, position, now),
            )
            row = await cursor.fetchone()
            assert row is not None
            return int(row[0])

        return await self._store.write(_mark)

    async def last_position(self, job_id: str) -> int:
        async def _last(conn: Connection) -> int:
            row = await (
                await conn.execute(
                    "SELECT max(e.seq) FROM batch_jobs j JOIN events e"
                    " ON e.account = j.account AND e.job_id = j.id AND e.job_id <> '' WHERE j.id = %s",
                    (job_id,),
                )
            ).fetchone()
            return int(row[0] or 0) if row else 0

        return await self._store.read(_last)

    async def newest_position(self) -> int:
        async def _newest(conn: Connection) -> int:
            # The primary key's last entry.
            row = await (await conn.execute("SELECT max(seq) FROM events")).fetchone()
            return int(row[0] or 0) if row else 0

        return await self._store.read(_newest)
