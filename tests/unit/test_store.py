"""What only the SQLite store has: its file, its migrations and group commit.
The protocols' behaviour is the contract suite's, `tests/store/`."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from batchgrpc.eventids import notification_id, profile_event_id, row_event_id
from batchgrpc.store.migrations import MIGRATIONS
from batchgrpc.store.sqlite import DATABASE_NAME, SchemaTooNew, SqliteStore


async def test_first_open_creates_a_wal_database_at_the_latest_schema(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "new" / "dir" / DATABASE_NAME)
    await store.close()
    conn = sqlite3.connect(tmp_path / "new" / "dir" / DATABASE_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"accounts", "api_keys", "idempotency"} <= tables


async def test_reopening_migrates_nothing_twice(tmp_path: Path) -> None:
    for _ in range(2):
        store = await SqliteStore.open(tmp_path / DATABASE_NAME)
        await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    await store.close()
    conn = sqlite3.connect(tmp_path / DATABASE_NAME)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew):
        await SqliteStore.open(tmp_path / DATABASE_NAME)


async def test_the_event_log_keeps_its_events_and_ids_through_the_v8_migration(tmp_path: Path) -> None:
    # A database as version 7 left it: text ids, a batch row's among them.
    conn = sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)
    for statements in MIGRATIONS[:7]:
        for step in statements:
            assert isinstance(step, str)
            conn.execute(step)
    conn.execute("PRAGMA user_version = 7")
    bulk = profile_event_id("acme", "01P", "Viewed", "u:1")
    high_bit = "f" + bulk[1:]  # an id whose halves are negative as integers
    rows = [
        (bulk, "BULK_CREATE", "bulk_1", 0, "01P"),
        (high_bit, "TRACKING", "", 0, "01P"),
        (row_event_id("job_1", 7), "BATCH_JOB", "job_1", 7, ""),
        (notification_id("job_1", "batch_job_created"), "NOTIFICATION", "", 0, ""),
    ]
    conn.executemany(
        "INSERT INTO events (event_id, account, source, job_id, row_number, event_name, event_time, profile_id,"
        " identity, data, value, value_currency, unique_id) VALUES (?, 'acme', ?, ?, ?, 'Viewed', 1.0, ?, '', '{}',"
        " NULL, '', '')",
        rows,
    )
    conn.close()
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    try:
        stored = await store.events.after(0, limit=10)
        assert [(e.event_id, e.source, e.job_id, e.row_number) for e in stored] == [r[:4] for r in rows]
        # A notification is still found by its id: stored once.
        assert await store.events.append([dataclasses.replace(stored[3], position=0)]) == 0
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / DATABASE_NAME)
    assert conn.execute("SELECT count(*) FROM events WHERE id_high IS NULL").fetchone() == (1,)


async def test_concurrent_writes_share_a_commit_and_a_failing_one_rolls_back_alone(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    try:
        await store.write(lambda conn: conn.execute("CREATE TABLE t (v TEXT)"))
        statements: list[str] = []
        loop = asyncio.get_running_loop()

        def on_writer(fn: Callable[[sqlite3.Connection], object]) -> asyncio.Future[object]:
            # SQLite's own: the writing thread and connection, under the protocol.
            return loop.run_in_executor(store._executor, fn, store._conn)

        await on_writer(lambda conn: conn.set_trace_callback(statements.append))

        def insert(value: str, fail: bool = False) -> object:
            def _insert(conn: sqlite3.Connection) -> str:
                conn.execute("INSERT INTO t VALUES (?)", (value,))
                if fail:
                    raise ValueError(value)
                return value

            return store.write(_insert)

        # Hold the writing thread so that the three writes queue up and are
        # applied as one group.
        gate = asyncio.Event()
        blocker = on_writer(lambda _: asyncio.run_coroutine_threadsafe(gate.wait(), loop).result())
        writes = asyncio.gather(insert("a"), insert("b", fail=True), insert("c"), return_exceptions=True)
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        a, b, c = await writes
        assert (a, c) == ("a", "c")
        assert isinstance(b, ValueError)
        rows = await store.run(lambda conn: [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")])
        assert rows == ["a", "c"]
        # One group: one transaction, one savepoint per write, one COMMIT.
        assert statements.count("BEGIN IMMEDIATE") == 1
        assert statements.count("SAVEPOINT write") == 3
        assert statements.count("ROLLBACK TO write") == 1
        assert statements.count("COMMIT") == 1
    finally:
        await store.close()
