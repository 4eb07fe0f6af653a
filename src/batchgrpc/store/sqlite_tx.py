"""What every SQLite sub-store shares: the one thread that runs its
statements, and group commit for writes.

Every write is a function of the connection that must take effect whole or
not at all. Writes that arrive while the thread is busy wait, then run
together in one transaction, each inside its own savepoint, and share one
COMMIT: with `synchronous=FULL` that is one fsync for the group instead of
one per write. A write that raises is rolled back to its savepoint and gets
its exception; the others still commit. Nobody's write is acknowledged
before the COMMIT that makes it durable has returned.

Between processes (workers, replicas on one data dir) a group takes an
exclusive `flock` on `<database>-writer` before BEGIN IMMEDIATE and lets it
go after COMMIT. SQLite alone would have a process that finds the database
locked sleep and retry (1, 2, 5, ... 100 ms): with two busy writers the
lock then sat idle between them and two workers wrote less than one. The
kernel hands a flock to the next waiter the moment it is released, and the
writes that queued meanwhile go in one group.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from batchgrpc import tracing

T = TypeVar("T")

#: Most writes in one group: bounds how long the first waits for the COMMIT.
MAX_GROUP = 256


class Runs(Protocol):
    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn(connection)` on the store's reading thread and connection."""

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn(connection)` as one atomic, durable write; returns once
        it is committed. `fn` must not begin or end transactions."""


_Pending = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]


class GroupCommit:
    """Queues writes and applies them on the database thread in groups."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor
        database = conn.execute("PRAGMA database_list").fetchone()[2]
        # An in-memory database has no file, and no other process to wait for.
        self._writer = os.open(f"{database}-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if database else None
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._scheduled = False

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            # In the writer's context: the spans the write makes (the core's
            # plan) are children of its commit, on the database thread too.
            self._pending.append((tracing.carried(fn), future))
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._executor.submit(self._drain, loop)
        return await future

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the database thread: apply what is queued, group by group."""
        while True:
            with self._lock:
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                if not group:
                    self._scheduled = False
                    return
            try:
                outcomes = self._apply(group)
            except Exception as error:  # noqa: BLE001 - even the rollback failed: fail the group, keep draining
                outcomes = [(False, error)] * len(group)
            for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                loop.call_soon_threadsafe(_settle, future, ok, value)

    def close(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None

    def _apply(self, group: list[_Pending]) -> list[tuple[bool, Any]]:
        if self._writer is None:
            return self._transaction(group)
        fcntl.flock(self._writer, fcntl.LOCK_EX)
        try:
            return self._transaction(group)
        finally:
            fcntl.flock(self._writer, fcntl.LOCK_UN)

    def _transaction(self, group: list[_Pending]) -> list[tuple[bool, Any]]:
        conn = self._conn
        outcomes: list[tuple[bool, Any]] = []
        try:
            # IMMEDIATE: the write lock now, so no read inside can be made
            # stale by another connection's write before ours.
            conn.execute("BEGIN IMMEDIATE")
            for fn, _ in group:
                conn.execute("SAVEPOINT write")
                try:
                    outcomes.append((True, fn(conn)))
                    conn.execute("RELEASE write")
                except Exception as error:  # noqa: BLE001 - handed to the writer that raised it
                    conn.execute("ROLLBACK TO write")
                    conn.execute("RELEASE write")
                    outcomes.append((False, error))
            conn.execute("COMMIT")
        except Exception as error:  # noqa: BLE001 - the whole group failed: every writer hears of it
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(False, error)] * len(group)
        return outcomes


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def enable_wal(conn: sqlite3.Connection) -> None:
    """Puts `conn`'s database in WAL mode. Two processes opening a new file
    at once both turn WAL on, and SQLite answers "locked" to the second
    without calling its busy handler: it tries again, for up to a second."""
    for attempt in range(50):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 49:
                conn.close()
                raise
            time.sleep(0.02)
