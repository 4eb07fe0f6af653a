"""The embedded store: one SQLite database file in WAL mode (by default in
the data directory; `store/factory.py` opens it from its URL).

Writes run on one dedicated thread that owns the writing connection, so the
event loop never waits on disk and SQLite sees a single writer per process;
reads run on a second thread with a connection of their own. WAL lets them
read while a write is in progress, here or in another process: when another
worker holds the database's write lock, this one's writes wait for it, and
its reads (every RPC's key lookup among them) and the work around them go
on, so the waiting writes pile up into one larger group instead of the whole
process stalling behind the lock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from batchgrpc import tracing
from batchgrpc.store import (
    ApiKey,
    BulkJobStore,
    Claim,
    ClaimState,
    DataSourceStore,
    EventLog,
    IdempotencyStore,
    JobStore,
    KeyStore,
    LeaseStore,
    ProfileStore,
    RateLimitStore,
    UploadStore,
)
from batchgrpc.store.migrations import MIGRATIONS
from batchgrpc.store.sqlite_bulk import SqliteBulkJobStore
from batchgrpc.store.sqlite_jobs import SqliteDataSourceStore, SqliteEventLog, SqliteJobStore
from batchgrpc.store.sqlite_leases import SqliteLeaseStore
from batchgrpc.store.sqlite_limits import SqliteRateLimitStore
from batchgrpc.store.sqlite_profiles import SqliteProfileStore
from batchgrpc.store.sqlite_tx import GroupCommit, enable_wal

T = TypeVar("T")

#: The store's commit spans' attributes.
_SQLITE = {"db.system.name": "sqlite"}

#: The database file's name in the data directory (the default store URL's).
DATABASE_NAME = "batchgrpc.db"


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer batchgrpc than this one."""


def connect(path: Path) -> sqlite3.Connection:
    """Opens the database with the settings every connection needs."""
    # Autocommit mode: every transaction below is explicit.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    enable_wal(conn)
    # FULL: a commit is on disk before the RPC that made it returns.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    # 64 MiB of page cache (the default is 2 MiB): event ids are random, so
    # their index takes inserts all over; with its pages in memory a chunk
    # of events costs CPU, not reads.
    conn.execute("PRAGMA cache_size=-65536")
    return conn


def _open_reader(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    # A reader never writes: a bug that tries fails instead of taking the lock.
    conn.execute("PRAGMA query_only=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Applies the migrations not applied yet; returns the schema version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise SchemaTooNew(
                f"database schema version {version} is newer than this batchgrpc understands ({len(MIGRATIONS)})"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for step in statements:
                if isinstance(step, str):
                    conn.execute(step)
                else:
                    step(conn)
            conn.execute(f"PRAGMA user_version={number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


class SqliteStore:
    """The `batchgrpc.store.Store` on SQLite."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        reader: sqlite3.Connection,
        reads: ThreadPoolExecutor,
    ) -> None:
        self._conn = conn
        self._executor = executor
        self._reader = reader
        self._reads = reads
        self._writes = GroupCommit(conn, executor)
        # Typed as the protocols: that is all the rest of the code may use.
        self.keys: KeyStore = SqliteKeyStore(self)
        self.idempotency: IdempotencyStore = SqliteIdempotencyStore(self)
        self.sources: DataSourceStore = SqliteDataSourceStore(self)
        self.jobs: JobStore = SqliteJobStore(self)
        self.events: EventLog = SqliteEventLog(self)
        self.profiles: ProfileStore = SqliteProfileStore(self)
        self.bulk_jobs: BulkJobStore = SqliteBulkJobStore(self)
        self.leases: LeaseStore = SqliteLeaseStore(self)
        self.limits: RateLimitStore = SqliteRateLimitStore(conn)
        #: Files stay in the data directory: one machine's, like this file.
        self.uploads: UploadStore | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Opens (creating and migrating as needed) the database file `path`;
        its directory is created (0700) when missing."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()

        def _open() -> sqlite3.Connection:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            conn = connect(path)
            try:
                migrate(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
        try:
            conn = await loop.run_in_executor(executor, _open)
            try:
                reader = await loop.run_in_executor(reads, _open_reader, path)
            except BaseException:
                await loop.run_in_executor(executor, conn.close)
                raise
        except BaseException:
            executor.shutdown(wait=False)
            reads.shutdown(wait=False)
            raise
        return cls(conn, executor, reader, reads)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn(connection)` on the store's reading thread: `fn` reads
        only, and sees every write committed before it starts."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, fn, self._reader)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn(connection)` as one atomic write, committed (possibly with
        other writes) before it returns."""
        with tracing.span("store.commit", _SQLITE):
            return await self._writes.write(fn)

    async def ping(self) -> None:
        # Through the reader, the way every RPC's key lookup goes; a read
        # of the database header, so a file that cannot be read fails it.
        await self.run(lambda conn: conn.execute("PRAGMA user_version").fetchone())

    async def close(self) -> None:
        await self.limits.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._reads, self._reader.close)
        self._reads.shutdown(wait=True)
        await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)
        self._writes.close()


def _key_from_row(row: tuple) -> ApiKey:  # type: ignore[type-arg]
    key_id, account, secret_hash, scopes, public, created, revoked = row
    return ApiKey(
        key_id=key_id,
        account=account,
        secret_hash=secret_hash,
        scopes=frozenset(json.loads(scopes)),
        public=bool(public),
        created_time=created,
        revoked_time=revoked,
    )


_KEY_COLUMNS = "key_id, account, secret_hash, scopes, public, created_time, revoked_time"


def _insert_key(conn: sqlite3.Connection, key: ApiKey) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO accounts (account, created_time) VALUES (?, ?)",
        (key.account, key.created_time),
    )
    conn.execute(
        f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            key.key_id,
            key.account,
            key.secret_hash,
            json.dumps(sorted(key.scopes)),
            int(key.public),
            key.created_time,
            key.revoked_time,
        ),
    )


class SqliteKeyStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def create(self, key: ApiKey) -> None:
        def _create(conn: sqlite3.Connection) -> None:
            _insert_key(conn, key)

        await self._store.write(_create)

    async def create_if_none(self, key: ApiKey) -> bool:
        def _create(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone():
                return False
            _insert_key(conn, key)
            return True

        return await self._store.write(_create)

    async def get(self, key_id: str) -> ApiKey | None:
        def _get(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            return _key_from_row(row) if row else None

        return await self._store.run(_get)

    async def list(self, account: str | None = None) -> list[ApiKey]:
        def _list(conn: sqlite3.Connection) -> list[ApiKey]:
            sql = f"SELECT {_KEY_COLUMNS} FROM api_keys"
            params: tuple[str, ...] = ()
            if account is not None:
                sql += " WHERE account = ?"
                params = (account,)
            return [_key_from_row(r) for r in conn.execute(sql + " ORDER BY created_time, key_id", params)]

        return await self._store.run(_list)

    async def revoke(self, key_id: str, now: float) -> ApiKey | None:
        def _revoke(conn: sqlite3.Connection) -> ApiKey | None:
            conn.execute(
                "UPDATE api_keys SET revoked_time = ? WHERE key_id = ? AND revoked_time IS NULL",
                (now, key_id),
            )
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            return _key_from_row(row) if row else None

        return await self._store.write(_revoke)


class SqliteIdempotencyStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def claim(
        self,
        account: str,
        method: str,
        request_id: str,
        *,
        fingerprint: bytes,
        owner: str,
        now: float,
        ttl: float,
        stale_after: float,
    ) -> Claim:
        def _claim(conn: sqlite3.Connection) -> Claim:
            # Forget what is past the TTL, here rather than in a sweeper:
            # the index makes it cheap and nothing else needs to run.
            conn.execute("DELETE FROM idempotency WHERE created_time < ?", (now - ttl,))
            row = conn.execute(
                "SELECT state, response, created_time, fingerprint, owner FROM idempotency"
                " WHERE account = ? AND method = ? AND request_id = ?",
                (account, method, request_id),
            ).fetchone()
            if row is not None:
                state, response, created, first_fingerprint, first_owner = row
                if state == "done":
                    return Claim(ClaimState.DONE, response, first_fingerprint)
                if created >= now - stale_after:
                    return Claim(ClaimState.PENDING, None, first_fingerprint, first_owner)
            conn.execute(
                "INSERT OR REPLACE INTO idempotency"
                " (account, method, request_id, state, created_time, fingerprint, owner)"
                " VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                (account, method, request_id, now, fingerprint, owner),
            )
            return Claim(ClaimState.NEW)

        return await self._store.write(_claim)

    async def complete(self, account: str, method: str, request_id: str, response: bytes, *, now: float) -> None:
        def _complete(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE idempotency SET state = 'done', response = ?, created_time = ?"
                " WHERE account = ? AND method = ? AND request_id = ?",
                (response, now, account, method, request_id),
            )

        await self._store.write(_complete)

    async def release(self, account: str, method: str, request_id: str) -> None:
        def _release(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM idempotency WHERE account = ? AND method = ? AND request_id = ? AND state = 'pending'",
                (account, method, request_id),
            )

        await self._store.write(_release)

    async def pending_owners(self) -> list[str]:
        def _owners(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT owner FROM idempotency WHERE state = 'pending' AND owner IS NOT NULL"
            ).fetchall()
            return [owner for (owner,) in rows]

        return await self._store.run(_owners)

    async def release_owner(self, owner: str) -> int:
        def _release(conn: sqlite3.Connection) -> int:
            cursor = conn.execute("DELETE FROM idempotency WHERE state = 'pending' AND owner = ?", (owner,))
            return cursor.rowcount

        return await self._store.write(_release)
