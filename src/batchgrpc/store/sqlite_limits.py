"""The rate limiter's buckets on SQLite: a sibling file of the store's
database (`<database>-ratelimits`), with its own connection and thread.

Every RPC takes a token, so the limiter must cost next to nothing, and it
must not queue behind the main database. There it would wait for the write
lock, which a group commit of bulk writes holds for tens of milliseconds,
and pay a durable fsync per RPC. Rate-limit state need not survive a power
cut (lost, every bucket starts full), so it gets a file of its own, whose
writers are only other limiters: `bench/bench_ratelimit.py` measures an
acquire at about TODO µs alone and TODO µs (p99 TODO ms) while bulk writes
commit on the main database, where the same record on the main database
costs TODO ms (p99 TODO ms).

WAL, so the processes of one data directory (workers, replicas) share the
file and readers never block; `synchronous=TODO`: TODO.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from batchgrpc.store import LimitRecord

T = TypeVar("T")

#: Appended to the main database's file name.
SUFFIX = "-ratelimits"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS rate_limits ("
    " account TEXT NOT NULL, api TEXT NOT NULL,"
    # JSON array of floats, one per bucket.
    " tokens TEXT NOT NULL, updated REAL NOT NULL,"
    " PRIMARY KEY (account, api)) WITHOUT ROWID"
)


def limits_path(database: sqlite3.Connection) -> Path | None:
    """The sibling file of `database`'s main file; None for a database
    without a file (each such limiter keeps its state to itself)."""
    for _, name, file in database.execute("PRAGMA database_list"):
        if name == "main" and file:
            return Path(file + SUFFIX)
    return None


def _connect(path: Path | None) -> sqlite3.Connection:
    conn = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # Another process's update holds the lock for tens of microseconds.
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(_SCHEMA)
    return conn


class SqliteRateLimitStore:
    """The `batchgrpc.store.RateLimitStore` beside the SQLite store `database`."""

    def __init__(self, database: sqlite3.Connection) -> None:
        self._path = limits_path(database)
        # Opened on first use, on its thread: with rate limits off, and for
        # the `keys` CLI, the file is never touched.
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-limits")

    async def update(self, account: str, api: str, change: Callable[[LimitRecord | None], tuple[LimitRecord, T]]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._update, account, api, change)

    def _update(self, account: str, api: str, change: Callable[[LimitRecord | None], tuple[LimitRecord, T]]) -> T:
        if self._conn is None:
            self._conn = _connect(self._path)
        conn = self._conn
        # IMMEDIATE: the write lock before the read, so no other process
        # updates the record between our read and our write.
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT tokens, updated FROM rate_limits WHERE account = ? AND api = ?", (account, api)
            ).fetchone()
            record, result = change(None if row is None else LimitRecord(tuple(json.loads(row[0])), row[1]))
            conn.execute(
                "INSERT INTO rate_limits (account, api, tokens, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account, api) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated",
                (account, api, json.dumps(record.tokens), record.updated),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)
