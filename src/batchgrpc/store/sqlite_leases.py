"""Leases on SQLite: the lease columns of batch and bulk jobs, and named
leases for singletons (the relay). Renewal and release go across all three,
so a worker's heartbeat is one write however much it holds."""

from __future__ import annotations

import builtins
import sqlite3

from batchgrpc.store.sqlite_tx import Runs

#: The tables whose rows carry `lease_owner` / `lease_expires`.
_LEASED = ("batch_jobs", "bulk_jobs")


class SqliteLeaseStore:
    def __init__(self, store: Runs) -> None:
        self._store = store

    async def acquire(self, name: str, owner: str, *, now: float, seconds: float) -> bool:
        def _acquire(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO leases (name, owner, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
                " WHERE leases.owner = excluded.owner OR leases.expires < ?",
                (name, owner, now + seconds, now),
            )
            row = conn.execute("SELECT owner FROM leases WHERE name = ?", (name,)).fetchone()
            return bool(row and row[0] == owner)

        return await self._store.write(_acquire)

    async def holds(self, name: str, owner: str, *, now: float) -> bool:
        def _holds(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT owner, expires FROM leases WHERE name = ?", (name,)).fetchone()
            return bool(row and row[0] == owner and row[1] >= now)

        return await self._store.run(_holds)

    async def renew(self, owner: str, *, now: float, seconds: float) -> int:
        def _renew(conn: sqlite3.Connection) -> int:
            renewed = conn.execute("UPDATE leases SET expires = ? WHERE owner = ?", (now + seconds, owner)).rowcount
            for table in _LEASED:
                renewed += conn.execute(
                    f"UPDATE {table} SET lease_expires = ? WHERE lease_owner = ?", (now + seconds, owner)
                ).rowcount
            return renewed

        return await self._store.write(_renew)

    async def owners(self) -> builtins.list[str]:
        def _owners(conn: sqlite3.Connection) -> builtins.list[str]:
            rows = conn.execute(
                "SELECT owner FROM leases UNION "
                + " UNION ".join(f"SELECT lease_owner FROM {t} WHERE lease_owner IS NOT NULL" for t in _LEASED)
            ).fetchall()
            return sorted(owner for (owner,) in rows)

        return await self._store.run(_owners)

    async def release_owner(self, owner: str) -> int:
        def _release(conn: sqlite3.Connection) -> int:
            released = conn.execute("DELETE FROM leases WHERE owner = ?", (owner,)).rowcount
            for table in _LEASED:
                released += conn.execute(
                    f"UPDATE {table} SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?", (owner,)
                ).rowcount
            return released

        return await self._store.write(_release)
