"""What every SQLite sub-store shares: the thread that runs its statements,
and explicit write transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Runs(Protocol):
    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn(connection)` on the store's one database thread."""


class transaction:  # noqa: N801 - used like a function: `with transaction(conn):`
    """`with transaction(conn):` runs the block in one write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        # IMMEDIATE: take the write lock now, so a read inside the block
        # cannot be invalidated by another writer before the write.
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
