"""Profiles on SQLite.

A profile is found by any of its identifiers (`profile_identifiers` maps each
(kind, value) to one profile). When one request names identifiers of two
profiles, they are one person: the older profile absorbs the newer (its
identifiers, the attributes it lacks, its events), and the newer one points
at it (`merged_into`), so its id still resolves.

Events get ids derived from (account, profile, name, dedup key), so a repeat
is stored once and counted as deduplicated, never dropped silently.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import secrets
import sqlite3
from typing import Any

from batchgrpc.store import (
    IngestItem,
    IngestOutcome,
    NewEvent,
    Page,
    Profile,
    ProfileUpdate,
)
from batchgrpc.store.sqlite_jobs import page_of
from batchgrpc.store.sqlite_tx import Runs

_PROFILE_COLUMNS = "seq, id, account, attributes, customer_ids, created_time, updated_time"


def new_profile_id() -> str:
    # Klaviyo's ids are 26 upper-case characters; ours look alike.
    return "01" + secrets.token_hex(12).upper()


def event_id(account: str, profile_id: str, event: NewEvent) -> str:
    key = "\x1f".join((account, profile_id, event.event_name, event.dedup_key))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _profile(row: tuple[Any, ...]) -> Profile:
    _, id_, account, attributes, customer_ids, created, updated = row
    return Profile(id_, account, json.loads(attributes), json.loads(customer_ids), created, updated)


def _resolve(conn: sqlite3.Connection, account: str, profile_id: str) -> tuple[int, str] | None:
    """(seq, id) of the profile `profile_id` is now, following merges."""
    for _ in range(64):
        row = conn.execute(
            "SELECT seq, id, merged_into FROM profiles WHERE id = ? AND account = ?", (profile_id, account)
        ).fetchone()
        if row is None:
            return None
        if row[2] is None:
            return row[0], row[1]
        profile_id = row[2]
    raise RuntimeError(f"profile merge chain too long at {profile_id}")


def _identifier_pairs(update: ProfileUpdate) -> list[tuple[str, str]]:
    pairs = [(kind, value) for kind, value in update.identifiers.items() if value]
    pairs += [(f"customer:{name}", value) for name, value in update.customer_ids.items() if value]
    return pairs


def _merge(conn: sqlite3.Connection, account: str, survivor: str, other: str, now: float) -> None:
    """Folds profile `other` into `survivor`: one person."""
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT id, attributes, attribute_time, customer_ids FROM profiles WHERE id IN (?, ?)", (survivor, other)
        )
    }
    attributes, times, customer_ids = (json.loads(x) for x in rows[survivor])
    o_attributes, o_times, o_customer_ids = (json.loads(x) for x in rows[other])
    # The survivor's values stand; the other fills what it lacks.
    for key, value in o_attributes.items():
        if key == "properties":
            attributes["properties"] = {**value, **attributes.get("properties", {})}
        elif key not in attributes:
            attributes[key] = value
            times[key] = o_times.get(key, now)
    customer_ids = {**o_customer_ids, **customer_ids}
    conn.execute(
        "UPDATE profiles SET attributes = ?, attribute_time = ?, customer_ids = ?, updated_time = ? WHERE id = ?",
        (json.dumps(attributes), json.dumps(times), json.dumps(customer_ids), now, survivor),
    )
    conn.execute("UPDATE profile_identifiers SET profile_id = ? WHERE profile_id = ?", (survivor, other))
    conn.execute("UPDATE events SET profile_id = ? WHERE account = ? AND profile_id = ?", (survivor, account, other))
    conn.execute("UPDATE profiles SET merged_into = ?, updated_time = ? WHERE id = ?", (survivor, now, other))


def _apply(conn: sqlite3.Connection, profile_id: str, update: ProfileUpdate, now: float) -> None:
    attributes_text, times_text, customer_text = conn.execute(
        "SELECT attributes, attribute_time, customer_ids FROM profiles WHERE id = ?", (profile_id,)
    ).fetchone()
    attributes, times, customer_ids = json.loads(attributes_text), json.loads(times_text), json.loads(customer_text)
    at = now if update.timestamp is None else update.timestamp

    def newer(key: str) -> bool:
        # An update older than the stored value's never overwrites it.
        return bool(at >= times.get(key, float("-inf")))

    for key, value in {**update.identifiers, **update.attributes}.items():
        if value in ("", None) or not newer(key):
            continue
        if key == "location" and isinstance(value, dict):
            value = {**attributes.get("location", {}), **value}
        attributes[key] = value
        times[key] = at
    properties = dict(attributes.get("properties", {}))
    for key, value in update.properties.items():
        if newer(f"properties.{key}"):
            properties[key] = value
            times[f"properties.{key}"] = at
    for key, values in update.append.items():
        current = properties.get(key, [])
        current = list(current) if isinstance(current, list) else [current]
        properties[key] = current + (list(values) if isinstance(values, list) else [values])
    for key, values in update.unappend.items():
        remove = values if isinstance(values, list) else [values]
        if isinstance(properties.get(key), list):
            properties[key] = [v for v in properties[key] if v not in remove]
    for key in update.unset:
        properties.pop(key, None)
    if properties or "properties" in attributes:
        attributes["properties"] = properties
    customer_ids.update({k: v for k, v in update.customer_ids.items() if v})
    conn.execute(
        "UPDATE profiles SET attributes = ?, attribute_time = ?, customer_ids = ?, updated_time = ? WHERE id = ?",
        (json.dumps(attributes), json.dumps(times), json.dumps(customer_ids), now, profile_id),
    )


def _upsert(conn: sqlite3.Connection, account: str, update: ProfileUpdate, now: float) -> str | None:
    """The id of the one profile `update` is about (created, or merged into
    one); None when it names only a profile id that does not exist."""
    found: dict[str, int] = {}
    if update.profile_id and (hit := _resolve(conn, account, update.profile_id)) is not None:
        found[hit[1]] = hit[0]
    pairs = _identifier_pairs(update)
    for kind, value in pairs:
        row = conn.execute(
            "SELECT p.seq, p.id FROM profile_identifiers i JOIN profiles p ON p.id = i.profile_id"
            " WHERE i.account = ? AND i.kind = ? AND i.value = ?",
            (account, kind, value),
        ).fetchone()
        if row is not None:
            found[row[1]] = row[0]
    if not found:
        if not pairs:
            return None
        profile_id = new_profile_id()
        conn.execute(
            "INSERT INTO profiles (id, account, attributes, attribute_time, customer_ids, created_time, updated_time)"
            " VALUES (?, ?, '{}', '{}', '{}', ?, ?)",
            (profile_id, account, now, now),
        )
    else:
        # The oldest profile is the person; the others merge into it.
        profile_id = min(found, key=found.__getitem__)
        for other in found:
            if other != profile_id:
                _merge(conn, account, profile_id, other, now)
    conn.executemany(
        "INSERT INTO profile_identifiers (account, kind, value, profile_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (account, kind, value) DO UPDATE SET profile_id = excluded.profile_id",
        [(account, kind, value, profile_id) for kind, value in pairs],
    )
    _apply(conn, profile_id, update, now)
    return profile_id


def ingest(conn: sqlite3.Connection, account: str, items: list[IngestItem], now: float) -> list[IngestOutcome]:
    """Upserts each item's profile and stores its events; runs inside the
    caller's transaction."""
    outcomes = []
    for item in items:
        profile_id = _upsert(conn, account, item.profile, now)
        if profile_id is None:
            outcomes.append(IngestOutcome(error="no profile has this id"))
            continue
        pairs = _identifier_pairs(item.profile)
        # The event's identity key: the profile's first identifier, as sent.
        identity = pairs[0][1] if pairs else ""
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO events (event_id, account, source, job_id, row_number, event_name, event_time,"
            " profile_id, identity, data, value, value_currency, unique_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    event_id(account, profile_id, e),
                    account,
                    e.source,
                    e.job_id,
                    e.row_number,
                    e.event_name,
                    e.event_time,
                    profile_id,
                    identity,
                    e.data,
                    e.value,
                    e.value_currency,
                    e.unique_id,
                )
                for e in item.events
            ],
        )
        accepted = conn.total_changes - before
        outcomes.append(IngestOutcome(profile_id, "", accepted, len(item.events) - accepted))
    return outcomes


class SqliteProfileStore:
    def __init__(self, store: Runs) -> None:
        self._store = store

    async def ingest(self, account: str, items: builtins.list[IngestItem], now: float) -> builtins.list[IngestOutcome]:
        def _ingest(conn: sqlite3.Connection) -> list[IngestOutcome]:
            return ingest(conn, account, items, now)

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
