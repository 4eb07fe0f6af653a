"""Profiles on SQLite: storage only. The rules (who a request is about,
merges, updates, event ids) are the core's (`batchgrpc.events.profiles`).

`profile_identifiers` maps each (kind, value) to one live profile; a merged
profile points at its survivor (`merged_into`), so its id still resolves.
`ingest` reads what a request touches in three statements, plans the whole
request in memory, and writes the plan a statement per kind of change.
"""

from __future__ import annotations

import builtins
import json
import sqlite3

from batchgrpc import core
from batchgrpc.events.profiles import settle
from batchgrpc.store import IngestBatch, IngestOutcome, Page, Profile
from batchgrpc.store.rows import INGESTED_EVENT_COLUMNS, PROFILE_COLUMNS, page_of, profile_of, with_traceparent
from batchgrpc.store.sqlite_tx import Runs

#: Longest merge chain followed; a longer one means a broken store.
_MAX_CHAIN = 64


def _resolve(conn: sqlite3.Connection, account: str, profile_id: str) -> tuple[int, str] | None:
    """(seq, id) of the profile `profile_id` is now, following merges."""
    for _ in range(_MAX_CHAIN):
        row = conn.execute(
            "SELECT seq, id, merged_into FROM profiles WHERE id = ? AND account = ?", (profile_id, account)
        ).fetchone()
        if row is None:
            return None
        if row[2] is None:
            return row[0], row[1]
        profile_id = row[2]
    raise RuntimeError(f"profile merge chain too long at {profile_id}")


def _resolve_all(conn: sqlite3.Connection, account: str, profile_ids: list[str]) -> dict[str, str]:
    """Each of `profile_ids` that exists -> the live profile it is now,
    following merge chains in one statement."""
    if not profile_ids:
        return {}
    rows = conn.execute(
        # `+p.account`: look the ids up by id, not the account's profiles by account.
        "WITH RECURSIVE chain (named, id, next, depth) AS ("
        " SELECT p.id, p.id, p.merged_into, 1 FROM profiles AS p"
        " WHERE p.id IN (SELECT value FROM json_each(?1)) AND +p.account = ?2"
        " UNION ALL"
        " SELECT c.named, p.id, p.merged_into, c.depth + 1 FROM chain AS c"
        " JOIN profiles AS p ON p.id = c.next AND +p.account = ?2 WHERE c.depth < ?3)"
        " SELECT named, id, next FROM chain WHERE next IS NULL OR depth = ?3",
        (json.dumps(profile_ids), account, _MAX_CHAIN),
    ).fetchall()
    resolved = {}
    for named, live, next_ in rows:
        if next_ is not None:
            raise RuntimeError(f"profile merge chain too long at {live}")
        resolved[named] = live
    return resolved


def _snapshot(
    conn: sqlite3.Connection, account: str, updates: core.ProfileUpdates
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], list[tuple[int, str, str, str, str]]]:
    """What `updates` touch, as stored: (kind, value, profile) per
    identifier they name that a profile has, (named, live) per profile id
    they name that exists, and the live profiles those lead to."""
    identifiers = []
    if updates.pairs != b"[]":
        identifiers = conn.execute(
            # CROSS JOIN keeps json_each outside: a primary-key lookup per
            # identifier, not a scan of the account's identifiers.
            "SELECT i.kind, i.value, i.profile_id FROM json_each(CAST(? AS TEXT)) AS j"
            " CROSS JOIN profile_identifiers AS i"
            " ON i.account = ? AND i.kind = j.value ->> 0 AND i.value = j.value ->> 1",
            (updates.pairs, account),
        ).fetchall()
    resolved = list(_resolve_all(conn, account, json.loads(updates.named)).items())
    wanted = list({*(pid for _, _, pid in identifiers), *(live for _, live in resolved)})
    profiles = []
    if wanted:
        profiles = conn.execute(
            "SELECT seq, id, attributes, attribute_time, customer_ids FROM profiles"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(wanted),),
        ).fetchall()
    return identifiers, resolved, profiles


def ingest(conn: sqlite3.Connection, account: str, batch: IngestBatch, now: float) -> list[IngestOutcome]:
    """Upserts each item's profile and stores its events; runs inside the
    caller's transaction. The core plans the whole request over what three
    statements read; a statement per kind of change writes it."""
    updates = core.profile_updates(batch.profiles)
    plan = core.plan_ingest(updates, *_snapshot(conn, account, updates), batch.events, account, now)
    # In creation order, so `seq` keeps their age.
    conn.executemany(
        "INSERT INTO profiles (id, account, attributes, attribute_time, customer_ids, merged_into,"
        " created_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        plan.created,
    )
    conn.executemany(
        "UPDATE profiles SET attributes = ?, attribute_time = ?, customer_ids = ?, merged_into = ?,"
        " updated_time = ? WHERE id = ?",
        plan.updated,
    )
    # What a merged profile had stored follows it to its survivor.
    conn.executemany("UPDATE profile_identifiers SET profile_id = ? WHERE profile_id = ?", plan.moved)
    conn.executemany(
        "UPDATE events SET profile_id = ? WHERE account = ? AND profile_id = ? AND profile_id <> ''",
        [(live, account, pid) for live, pid in plan.moved],
    )
    conn.executemany(
        "INSERT INTO profile_identifiers (account, kind, value, profile_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (account, kind, value) DO UPDATE SET profile_id = excluded.profile_id",
        plan.identifiers,
    )
    conn.executemany(
        "DELETE FROM profile_identifiers WHERE account = ? AND kind = ? AND value = ? AND profile_id = ?",
        plan.removed,
    )
    return _store_events(conn, account, plan, batch)


def _store_events(
    conn: sqlite3.Connection, account: str, plan: core.IngestPlan, batch: IngestBatch
) -> list[IngestOutcome]:
    """Stores each event of the plan that is not a repeat, and settles the
    counts: the core dropped the repeats within the request; one look-up
    finds those stored already, for the profiles that existed before."""
    repeats = list(plan.repeats)
    rows = plan.rows
    if plan.lookups != b"[]":
        stored = conn.execute(
            "SELECT k.value ->> 0, k.value ->> 1 FROM json_each(CAST(? AS TEXT)) AS k WHERE EXISTS ("
            " SELECT 1 FROM events AS e WHERE e.account = ? AND e.profile_id = k.value ->> 2"
            " AND e.event_name = k.value ->> 3 AND e.dedup_key = k.value ->> 4 AND e.source = 'BULK_CREATE')",
            (plan.lookups, account),
        ).fetchall()
        for _, item in stored:
            repeats[item] += 1
        if stored:
            repeated = {row for row, _ in stored}
            rows = [r for i, r in enumerate(rows) if i not in repeated]
    names, rows = with_traceparent(INGESTED_EVENT_COLUMNS, rows, batch.traceparent)
    conn.executemany(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * (names.count(',') + 1))})", rows)
    return settle(plan.applied, batch.event_counts, repeats)


class SqliteProfileStore:
    def __init__(self, store: Runs) -> None:
        self._store = store

    async def ingest(self, account: str, batch: IngestBatch, now: float) -> builtins.list[IngestOutcome]:
        def _ingest(conn: sqlite3.Connection) -> list[IngestOutcome]:
            return ingest(conn, account, batch, now)

        return await self._store.write(_ingest)

    async def get(self, account: str, profile_id: str) -> Profile | None:
        def _get(conn: sqlite3.Connection) -> Profile | None:
            hit = _resolve(conn, account, profile_id)
            if hit is None:
                return None
            row = conn.execute(f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE id = ?", (hit[1],)).fetchone()
            return profile_of(row)

        return await self._store.run(_get)

    async def list(self, account: str, identifiers: dict[str, str], *, cursor: int | None, limit: int) -> Page[Profile]:
        def _list(conn: sqlite3.Connection) -> Page[Profile]:
            sql = f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE account = ? AND merged_into IS NULL"
            params: list[object] = [account]
            for kind, value in identifiers.items():
                if value:
                    sql += (
                        " AND id IN (SELECT profile_id FROM profile_identifiers"
                        " WHERE account = ? AND kind = ? AND value = ?)"
                    )
                    params += [account, kind, value]
            rows = conn.execute(sql + " AND seq > ? ORDER BY seq LIMIT ?", (*params, cursor or 0, limit + 1)).fetchall()
            return page_of(rows, limit, profile_of)

        return await self._store.run(_list)
