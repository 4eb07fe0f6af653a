"""Profiles on SQLite: storage only. The rules (who a request is about,
merges, updates, event ids) are `batchgrpc.events.profiles`.

`profile_identifiers` maps each (kind, value) to one live profile; a merged
profile points at its survivor (`merged_into`), so its id still resolves.
`ingest` reads what a request touches in three statements, plans the whole
request in memory, and writes the plan a statement per kind of change.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from batchgrpc import core
from batchgrpc.events.profiles import (
    Identifier,
    Plan,
    ProfileState,
    Snapshot,
    StoredProfile,
    identifier_pairs,
    plan_ingest,
)
from batchgrpc.store import IngestBatch, IngestOutcome, Page, Profile, ProfileUpdate
from batchgrpc.store.sqlite_jobs import page_of
from batchgrpc.store.sqlite_tx import Runs

_PROFILE_COLUMNS = "seq, id, account, attributes, customer_ids, created_time, updated_time"

#: Longest merge chain followed; a longer one means a broken store.
_MAX_CHAIN = 64


def _profile(row: tuple[Any, ...]) -> Profile:
    _, id_, account, attributes, customer_ids, created, updated = row
    return Profile(id_, account, json.loads(attributes), json.loads(customer_ids), created, updated)


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


def _snapshot(conn: sqlite3.Connection, account: str, updates: Sequence[ProfileUpdate]) -> Snapshot:
    """The identifiers, profile ids and profiles `updates` name, as stored."""
    pairs = list(dict.fromkeys(pair for update in updates for pair in identifier_pairs(update)))
    named = list(dict.fromkeys(update.profile_id for update in updates if update.profile_id))
    identifiers: dict[Identifier, str] = {}
    if pairs:
        rows = conn.execute(
            # CROSS JOIN keeps json_each outside: a primary-key lookup per
            # identifier, not a scan of the account's identifiers.
            "SELECT i.kind, i.value, i.profile_id FROM json_each(?) AS j CROSS JOIN profile_identifiers AS i"
            " ON i.account = ? AND i.kind = j.value ->> 0 AND i.value = j.value ->> 1",
            (json.dumps(pairs), account),
        )
        identifiers = {(kind, value): profile_id for kind, value, profile_id in rows}
    resolved = _resolve_all(conn, account, named)
    wanted = list({*identifiers.values(), *resolved.values()})
    profiles = {}
    if wanted:
        rows = conn.execute(
            "SELECT seq, id, attributes, attribute_time, customer_ids FROM profiles"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(wanted),),
        )
        profiles = {
            id_: StoredProfile(seq, ProfileState(id_, json.loads(attrs), json.loads(times), json.loads(ids)))
            for seq, id_, attrs, times, ids in rows
        }
    return Snapshot(identifiers, resolved, profiles)


def _state_row(state: ProfileState) -> tuple[str, str, str]:
    return json.dumps(state.attributes), json.dumps(state.times), json.dumps(state.customer_ids)


def _write(conn: sqlite3.Connection, account: str, plan: Plan, batch: IngestBatch, now: float) -> list[IngestOutcome]:
    created = set(plan.created)
    # In creation order, so `seq` keeps their age.
    conn.executemany(
        "INSERT INTO profiles (id, account, attributes, attribute_time, customer_ids, merged_into,"
        " created_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(pid, account, *_state_row(plan.profiles[pid]), plan.merged_into.get(pid), now, now) for pid in plan.created],
    )
    conn.executemany(
        "UPDATE profiles SET attributes = ?, attribute_time = ?, customer_ids = ?, merged_into = ?,"
        " updated_time = ? WHERE id = ?",
        [
            (*_state_row(state), plan.merged_into.get(pid), now, pid)
            for pid, state in plan.profiles.items()
            if pid not in created
        ],
    )
    # What a merged profile had stored follows it to its survivor.
    moved = [(plan.live(pid), pid) for pid in plan.merged_into if pid not in created]
    conn.executemany("UPDATE profile_identifiers SET profile_id = ? WHERE profile_id = ?", moved)
    conn.executemany(
        "UPDATE events SET profile_id = ? WHERE account = ? AND profile_id = ? AND profile_id <> ''",
        [(live, account, pid) for live, pid in moved],
    )
    conn.executemany(
        "INSERT INTO profile_identifiers (account, kind, value, profile_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (account, kind, value) DO UPDATE SET profile_id = excluded.profile_id",
        [(account, kind, value, pid) for (kind, value), pid in plan.identifiers.items()],
    )
    return _store_events(conn, account, plan, batch)


def _store_events(conn: sqlite3.Connection, account: str, plan: Plan, batch: IngestBatch) -> list[IngestOutcome]:
    """Stores each event of the batch that is not a repeat, and settles the
    counts: the core drops the repeats within the request; one look-up
    finds those stored already, for the profiles that existed before."""
    found = core.event_rows(batch.events, account, plan.targets)
    repeats = list(found.repeats)
    rows = found.rows
    if found.lookups != b"[]":
        stored = conn.execute(
            "SELECT k.value ->> 0, k.value ->> 1 FROM json_each(CAST(? AS TEXT)) AS k WHERE EXISTS ("
            " SELECT 1 FROM events AS e WHERE e.account = ? AND e.profile_id = k.value ->> 2"
            " AND e.event_name = k.value ->> 3 AND e.dedup_key = k.value ->> 4 AND e.source = 'BULK_CREATE')",
            (found.lookups, account),
        ).fetchall()
        for _, item in stored:
            repeats[item] += 1
        if stored:
            repeated = {row for row, _ in stored}
            rows = [r for i, r in enumerate(rows) if i not in repeated]
    conn.executemany(
        "INSERT INTO events (id_high, id_low, account, source, job_id, row_number, event_name, event_time,"
        " profile_id, identity, data, value, value_currency, unique_id, dedup_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return plan.settle(batch.event_counts, repeats)


def ingest(conn: sqlite3.Connection, account: str, batch: IngestBatch, now: float) -> list[IngestOutcome]:
    """Upserts each item's profile and stores its events; runs inside the
    caller's transaction."""
    plan = plan_ingest(_snapshot(conn, account, batch.profiles), batch.profiles, now)
    return _write(conn, account, plan, batch, now)


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
            row = conn.execute(f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE id = ?", (hit[1],)).fetchone()
            return _profile(row)

        return await self._store.run(_get)

    async def list(self, account: str, identifiers: dict[str, str], *, cursor: int | None, limit: int) -> Page[Profile]:
        def _list(conn: sqlite3.Connection) -> Page[Profile]:
            sql = f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE account = ? AND merged_into IS NULL"
            params: list[object] = [account]
            for kind, value in identifiers.items():
                if value:
                    sql += (
                        " AND id IN (SELECT profile_id FROM profile_identifiers"
                        " WHERE account = ? AND kind = ? AND value = ?)"
                    )
                    params += [account, kind, value]
            rows = conn.execute(sql + " AND seq > ? ORDER BY seq LIMIT ?", (*params, cursor or 0, limit + 1)).fetchall()
            return page_of(rows, limit, _profile)

        return await self._store.run(_list)
