"""Profiles and bulk jobs on PostgreSQL: storage only. The rules are the
core's (`batchgrpc.events.profiles`), as on SQLite (`sqlite_profiles.py`).

Replicas may ingest for one account at once; two of them creating a profile
for the same new email would make two people of one. So an ingest holds the
account's advisory lock for its transaction: one account's requests take
turns, different accounts' run side by side. The event log's lock
(`postgres_jobs.lock_events`) is taken last, only for the insert, and no
holder of it ever waits for an account.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from batchgrpc import core
from batchgrpc.events.profiles import settle
from batchgrpc.store import BulkJob, BulkTally, IngestBatch, IngestOutcome, Lease, Page, Profile
from batchgrpc.store.postgres_jobs import count_by_status, lock_events
from batchgrpc.store.postgres_sets import columns, copy_rows
from batchgrpc.store.rows import (
    BULK_COLUMNS,
    BULK_INSERT_COLUMNS,
    INGESTED_EVENT_COLUMNS,
    PROFILE_COLUMNS,
    bulk_of,
    bulk_values,
    page_of,
    profile_of,
    with_traceparent,
)

if TYPE_CHECKING:
    from batchgrpc.store.postgres import Connection, PostgresStore

#: Longest merge chain followed; a longer one means a broken store.
_MAX_CHAIN = 64


async def _resolve_all(conn: Connection, account: str, named: list[str]) -> list[tuple[str, str]]:
    """(named, live) for each of `named` that exists, following merge chains
    in one statement."""
    if not named:
        return []
    rows = await (
        await conn.execute(
            "WITH RECURSIVE chain (named, id, next, depth) AS ("
            " SELECT p.id, p.id, p.merged_into, 1 FROM profiles AS p WHERE p.id = ANY(%(ids)s) AND p.account = %(a)s"
            " UNION ALL"
            " SELECT c.named, p.id, p.merged_into, c.depth + 1 FROM chain AS c"
            " JOIN profiles AS p ON p.id = c.next AND p.account = %(a)s WHERE c.depth < %(max)s)"
            " SELECT named, id, next FROM chain WHERE next IS NULL OR depth = %(max)s",
            {"ids": named, "a": account, "max": _MAX_CHAIN},
        )
    ).fetchall()
    resolved = []
    for name, live, next_ in rows:
        if next_ is not None:
            raise RuntimeError(f"profile merge chain too long at {live}")
        resolved.append((name, live))
    return resolved


async def ingest(conn: Connection, account: str, batch: IngestBatch, now: float) -> list[IngestOutcome]:
    """Upserts each item's profile and stores its events, inside the
    caller's transaction: the core plans the request over what three
    statements read, a statement per kind of change writes it."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('profiles'), hashtext(%s))", (account,))
    # The core's calls off the event loop (this coroutine runs on it; on
    # SQLite they run on the store's writing thread).
    updates = await asyncio.to_thread(core.profile_updates, batch.profiles)
    identifiers: list[tuple[str, str, str]] = []
    if updates.pairs != b"[]":
        rows = await (
            await conn.execute(
                "SELECT i.kind, i.value, i.profile_id FROM json_array_elements(%s::json) AS j"
                " JOIN profile_identifiers AS i ON i.account = %s AND i.kind = j->>0 AND i.value = j->>1",
                (updates.pairs.decode(), account),
            )
        ).fetchall()
        identifiers = [tuple(r) for r in rows]
    resolved = await _resolve_all(conn, account, json.loads(updates.named))
    wanted = list({*(pid for _, _, pid in identifiers), *(live for _, live in resolved)})
    profiles: list[tuple[int, str, str, str, str]] = []
    if wanted:
        rows = await (
            await conn.execute(
                "SELECT seq, id, attributes, attribute_time, customer_ids FROM profiles WHERE id = ANY(%s)", (wanted,)
            )
        ).fetchall()
        profiles = [tuple(r) for r in rows]
    plan = await asyncio.to_thread(
        core.plan_ingest, updates, identifiers, resolved, profiles, batch.events, account, now
    )
    # Set-based: a statement per kind of change, never one per row. The
    # plan names each profile, merged profile and identifier once (a map in
    # the core), so no statement touches a row twice.
    async with conn.cursor() as cursor:
        # In creation order, so `seq` keeps their age.
        await copy_rows(
            cursor,
            "profiles (id, account, attributes, attribute_time, customer_ids, merged_into, created_time, updated_time)",
            plan.created,
        )
        if plan.updated:
            await cursor.execute(
                "UPDATE profiles AS p SET attributes = u.a, attribute_time = u.t, customer_ids = u.c,"
                " merged_into = u.m, updated_time = u.at"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::text[])"
                " AS u(a, t, c, m, at, id) WHERE p.id = u.id",
                columns(plan.updated, 6),
            )
        moved = columns(plan.moved, 2)
        if plan.moved:
            # What a merged profile had stored follows it to its survivor.
            await cursor.execute(
                "UPDATE profile_identifiers AS i SET profile_id = m.live"
                " FROM unnest(%s::text[], %s::text[]) AS m(live, merged) WHERE i.profile_id = m.merged",
                moved,
            )
        if plan.identifiers:
            await cursor.execute(
                "INSERT INTO profile_identifiers (account, kind, value, profile_id)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
                " ON CONFLICT (account, kind, value) DO UPDATE SET profile_id = excluded.profile_id",
                columns(plan.identifiers, 4),
            )
        if plan.removed:
            await cursor.execute(
                "DELETE FROM profile_identifiers AS i USING unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
                " AS r(account, kind, value, profile_id) WHERE (i.account, i.kind, i.value, i.profile_id)"
                " = (r.account, r.kind, r.value, r.profile_id)",
                columns(plan.removed, 4),
            )
        await lock_events(conn)
        if plan.moved:
            await cursor.execute(
                "UPDATE events AS e SET profile_id = m.live FROM unnest(%s::text[], %s::text[]) AS m(live, merged)"
                " WHERE e.account = %s AND e.profile_id = m.merged AND e.profile_id <> ''",
                (*moved, account),
            )
        repeats = list(plan.repeats)
        rows_to_store = plan.rows
        if plan.lookups != b"[]":
            stored = await (
                await conn.execute(
                    "SELECT (k->>0)::int, (k->>1)::int FROM json_array_elements(%s::json) AS k WHERE EXISTS ("
                    " SELECT 1 FROM events AS e WHERE e.account = %s AND e.profile_id = k->>2"
                    " AND e.event_name = k->>3 AND e.dedup_key = k->>4 AND e.source = 'BULK_CREATE')",
                    (plan.lookups.decode(), account),
                )
            ).fetchall()
            for _, item in stored:
                repeats[item] += 1
            if stored:
                repeated = {row for row, _ in stored}
                rows_to_store = [r for i, r in enumerate(rows_to_store) if i not in repeated]
        names, rows_to_store = with_traceparent(INGESTED_EVENT_COLUMNS, rows_to_store, batch.traceparent)
        await copy_rows(cursor, f"events ({names})", rows_to_store)
    return settle(plan.applied, batch.event_counts, repeats)


async def _resolve(conn: Connection, account: str, profile_id: str) -> str | None:
    hit = await _resolve_all(conn, account, [profile_id])
    return hit[0][1] if hit else None


class PostgresProfileStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def ingest(self, account: str, batch: IngestBatch, now: float) -> builtins.list[IngestOutcome]:
        return await self._store.write(lambda conn: ingest(conn, account, batch, now))

    async def get(self, account: str, profile_id: str) -> Profile | None:
        async def _get(conn: Connection) -> Profile | None:
            live = await _resolve(conn, account, profile_id)
            if live is None:
                return None
            row = await (
                await conn.execute(f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE id = %s", (live,))
            ).fetchone()
            return profile_of(row) if row else None

        return await self._store.read(_get)

    async def list(self, account: str, identifiers: dict[str, str], *, cursor: int | None, limit: int) -> Page[Profile]:
        async def _list(conn: Connection) -> Page[Profile]:
            sql = f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE account = %s AND merged_into IS NULL"
            params: list[object] = [account]
            for kind, value in identifiers.items():
                if value:
                    sql += (
                        " AND id IN (SELECT profile_id FROM profile_identifiers"
                        " WHERE account = %s AND kind = %s AND value = %s)"
                    )
                    params += [account, kind, value]
            rows = await (
                await conn.execute(sql + " AND seq > %s ORDER BY seq LIMIT %s", (*params, cursor or 0, limit + 1))
            ).fetchall()
            return page_of(rows, limit, profile_of)

        return await self._store.read(_list)


async def _get_bulk(conn: Connection, job_id: str, *, lock: bool = False) -> tuple[BulkJob, str | None] | None:
    """The job and its lease holder."""
    row = await (
        await conn.execute(
            f"SELECT {BULK_COLUMNS}, lease_owner FROM bulk_jobs WHERE id = %s" + (" FOR UPDATE" if lock else ""),
            (job_id,),
        )
    ).fetchone()
    return (bulk_of(row[:-1]), row[-1]) if row else None


class PostgresBulkJobStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def create(self, job: BulkJob, lease: Lease) -> None:
        async def _create(conn: Connection) -> None:
            await conn.execute(
                f"INSERT INTO bulk_jobs ({BULK_INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                bulk_values(job, lease),
            )

        await self._store.write(_create)

    async def get(self, account: str, job_id: str) -> BulkJob | None:
        async def _get(conn: Connection) -> BulkJob | None:
            found = await _get_bulk(conn, job_id)
            return found[0] if found is not None and found[0].account == account else None

        return await self._store.read(_get)

    async def start(self, job_id: str, *, holder: str, now: float) -> BulkJob | None:
        async def _start(conn: Connection) -> BulkJob | None:
            row = await (
                await conn.execute(
                    "UPDATE bulk_jobs SET status = 'PROCESSING' WHERE id = %s AND lease_owner = %s"
                    f" AND status IN ('QUEUED', 'PROCESSING') RETURNING {BULK_COLUMNS}",
                    (job_id, holder),
                )
            ).fetchone()
            return bulk_of(row) if row else None

        return await self._store.write(_start)

    async def claim_next(self, *, owner: str, now: float, seconds: float) -> BulkJob | None:
        async def _claim(conn: Connection) -> BulkJob | None:
            row = await (
                await conn.execute(
                    "UPDATE bulk_jobs SET lease_owner = %s, lease_expires = %s WHERE seq = ("
                    " SELECT seq FROM bulk_jobs WHERE status IN ('QUEUED', 'PROCESSING')"
                    " AND (lease_owner IS NULL OR lease_expires < %s)"
                    f" ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {BULK_COLUMNS}",
                    (owner, now + seconds, now),
                )
            ).fetchone()
            return bulk_of(row) if row else None

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
        async def _complete(conn: Connection) -> tuple[BulkJob, list[IngestOutcome]] | None:
            found = await _get_bulk(conn, job_id, lock=True)
            if found is None:
                return None
            job, owner = found
            if job.status != "PROCESSING" or owner != holder:
                return None
            outcomes = await ingest(conn, job.account, batch, now)
            counts = tally(job, outcomes)
            row = await (
                await conn.execute(
                    "UPDATE bulk_jobs SET status = 'COMPLETE', accepted_count = %s, deduplicated_count = %s,"
                    " rejected_count = %s, errors = %s, completed_time = %s, request = '',"
                    f" lease_owner = NULL, lease_expires = NULL WHERE id = %s RETURNING {BULK_COLUMNS}",
                    (
                        counts.accepted,
                        counts.deduplicated,
                        counts.rejected,
                        json.dumps([list(e) for e in counts.errors]),
                        now,
                        job_id,
                    ),
                )
            ).fetchone()
            assert row is not None
            return bulk_of(row), outcomes

        return await self._store.write(_complete)

    async def fail(self, job_id: str, message: str, now: float, *, holder: str) -> None:
        async def _fail(conn: Connection) -> None:
            await conn.execute(
                "UPDATE bulk_jobs SET status = 'FAILED', completed_time = %s,"
                " errors = (errors::jsonb || jsonb_build_array(jsonb_build_array('', 'INTERNAL', %s::text)))::text,"
                " lease_owner = NULL, lease_expires = NULL"
                " WHERE id = %s AND lease_owner = %s AND status IN ('QUEUED', 'PROCESSING')",
                (now, message, job_id, holder),
            )

        await self._store.write(_fail)

    async def count_by_status(self) -> dict[str, int]:
        return await self._store.read(lambda conn: count_by_status(conn, "bulk_jobs"))
