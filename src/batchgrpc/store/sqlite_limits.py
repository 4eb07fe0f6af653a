"""The rate limiter's buckets on SQLite: a sibling file of the store's
database (`<database>-ratelimits`), with its own connection and thread.

Every RPC takes a token, so the limiter must cost next to nothing, and it
must not queue behind the main database: there it would wait for the write
lock, which a group commit of bulk writes holds for tens of milliseconds,
and pay for a durable commit. Rate-limit state need not survive a power cut
(lost, every bucket starts full), so it gets a file of its own, written only
by limiters. `bench/bench_ratelimit.py acquire` on 2 busy cores: an acquire
takes about 0.1 ms at p50 (60-130 µs alone, 85-130 µs while bulk writes
commit on the main database; p99 2-7 ms, mostly the machine's noise); the
same record kept in the main database takes 0.5-1 ms alone and 300-640 ms
under those writes. Buckets in process memory took 5-8 µs, but are not
shared.

WAL, so that the processes of one data directory (workers, replicas) share
the file with a lock held for microseconds. `synchronous=NORMAL`: in WAL
mode a commit is then never synced (only a checkpoint, every 1000 pages, is),
and a power cut loses the last commits but never corrupts the file. OFF
measured no faster at p50 (it saves those checkpoint syncs), but could leave
a corrupt file after an OS crash, which would fail every RPC until deleted.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from batchgrpc.store import LimitRecord
from batchgrpc.store.sqlite_tx import enable_wal

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
    # Another process's update holds the lock for tens of microseconds.
    conn.execute("PRAGMA busy_timeout=5000")
    enable_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_SCHEMA)
    return conn


#: Most updates in one transaction: bounds how long another process waits
#: for the file's lock (each update takes microseconds).
MAX_GROUP = 256

_Change = Callable[[LimitRecord | None], tuple[LimitRecord, Any]]
_Pending = tuple[str, str, _Change, "asyncio.Future[Any]"]


class SqliteRateLimitStore:
    """The `batchgrpc.store.RateLimitStore` beside the SQLite store `database`.

    Updates that arrive while its thread is busy run together in one
    transaction, and their callers are woken together: under load an
    acquire costs a share of one thread hop and one commit, not one each.
    """

    def __init__(self, database: sqlite3.Connection) -> None:
        self._path = limits_path(database)
        # Opened on first use, on its thread: with rate limits off, and for
        # the `keys` CLI, the file is never touched.
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-limits")
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._scheduled = False

    async def update(self, account: str, api: str, change: Callable[[LimitRecord | None], tuple[LimitRecord, T]]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._pending.append((account, api, change, future))
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._executor.submit(self._drain, loop)
        return await future

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the thread: apply what is queued, group by group."""
        while True:
            with self._lock:
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                if not group:
                    self._scheduled = False
                    return
            outcomes = self._apply(group)
            loop.call_soon_threadsafe(_settle, [future for *_, future in group], outcomes)

    def _apply(self, group: list[_Pending]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        try:
            if self._conn is None:
                self._conn = _connect(self._path)
            conn = self._conn
            # IMMEDIATE: the write lock before the read, so no other process
            # updates a record between our read and our write. One read and
            # one write for the whole group: each call into SQLite hands the
            # interpreter lock back and forth with the busy event loop.
            conn.execute("BEGIN IMMEDIATE")
            keys = list(dict.fromkeys((account, api) for account, api, _, _ in group))
            # A join, not `(account, api) IN (VALUES ...)`: SQLite scans the
            # table for that, and searches the primary key for this.
            rows = conn.execute(
                f"SELECT r.account, r.api, r.tokens, r.updated FROM (VALUES {', '.join(['(?, ?)'] * len(keys))}) AS k"
                " JOIN rate_limits AS r ON r.account = k.column1 AND r.api = k.column2",
                [part for key in keys for part in key],
            ).fetchall()
            records = {
                (account, api): LimitRecord(tuple(json.loads(tokens)), updated)
                for account, api, tokens, updated in rows
            }
            changed: set[tuple[str, str]] = set()
            for account, api, change, _ in group:
                try:
                    # A key twice in the group: the second sees the first's record.
                    records[(account, api)], result = change(records.get((account, api)))
                except Exception as error:  # noqa: BLE001 - handed to its caller; the record stays as it was
                    outcomes.append((False, error))
                    continue
                changed.add((account, api))
                outcomes.append((True, result))
            conn.executemany(
                "INSERT INTO rate_limits (account, api, tokens, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account, api) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated",
                [
                    (account, api, json.dumps(records[(account, api)].tokens), records[(account, api)].updated)
                    for account, api in changed
                ],
            )
            conn.execute("COMMIT")
        except Exception as error:  # noqa: BLE001 - the group failed (the file, a lock timeout): every caller hears
            try:
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection is unusable anyway; the next group gets its own error
            return [(False, error)] * len(group)
        return outcomes

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)


def _settle(futures: list[asyncio.Future[Any]], outcomes: list[tuple[bool, Any]]) -> None:
    for future, (ok, value) in zip(futures, outcomes, strict=True):
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
