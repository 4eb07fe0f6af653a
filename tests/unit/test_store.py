"""The SQLite store and request_id idempotency, on a real database file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from batchgrpc.errors import InvalidArgument, RequestIdReused, RequestInProgress
from batchgrpc.idempotency import Idempotency, fingerprint
from batchgrpc.owner import process_owner, start_ticks
from batchgrpc.store import ApiKey, ClaimState
from batchgrpc.store.migrations import MIGRATIONS
from batchgrpc.store.sqlite import DATABASE_NAME, SchemaTooNew, SqliteStore
from batchgrpc.track.v2 import tracking_pb2


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


async def test_keys_round_trip_and_revoke_once(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    try:
        key = ApiKey("bgk_a", "acme", b"h" * 32, frozenset({"events:read"}), False, 10.0)
        await store.keys.create(key)
        assert await store.keys.get("bgk_a") == key
        assert await store.keys.list("other") == []
        revoked = await store.keys.revoke("bgk_a", 20.0)
        assert revoked is not None
        assert revoked.revoked_time == 20.0
        again = await store.keys.revoke("bgk_a", 30.0)
        assert again is not None
        assert again.revoked_time == 20.0
        assert await store.keys.revoke("bgk_missing", 30.0) is None
        assert not await store.keys.create_if_none(ApiKey("bgk_b", "x", b"", frozenset(), False, 1.0))
    finally:
        await store.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_same_request_id_returns_the_first_result_and_creates_once(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    clock = Clock()
    idem = Idempotency(store.idempotency, ttl_seconds=24 * 3600, clock=clock)
    created = []

    async def create() -> tracking_pb2.GetSystemTimeResponse:
        created.append(1)
        return tracking_pb2.GetSystemTimeResponse(success=True, time=len(created))

    try:
        kwargs = {
            "method": "/m",
            "request_id": "r1",
            "request": b"same",
            "response_type": tracking_pb2.GetSystemTimeResponse,
        }
        first = await idem.once(account="acme", create=create, **kwargs)  # type: ignore[arg-type]
        clock.now += 23 * 3600
        second = await idem.once(account="acme", create=create, **kwargs)  # type: ignore[arg-type]
        assert first == second
        assert len(created) == 1
        # Another account's identical id is its own.
        await idem.once(account="other", create=create, **kwargs)  # type: ignore[arg-type]
        assert len(created) == 2
        # Past 24 h the id is forgotten.
        clock.now += 2 * 3600
        third = await idem.once(account="acme", create=create, **kwargs)  # type: ignore[arg-type]
        assert third.time == 3
    finally:
        await store.close()


async def test_a_failed_first_call_leaves_nothing_and_a_concurrent_retry_waits(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    idem = Idempotency(store.idempotency, ttl_seconds=3600)
    release = asyncio.Event()

    async def slow() -> tracking_pb2.GetSystemTimeResponse:
        await release.wait()
        return tracking_pb2.GetSystemTimeResponse(success=True)

    async def failing() -> tracking_pb2.GetSystemTimeResponse:
        raise InvalidArgument("bad")

    kwargs = {"account": "a", "method": "/m", "request": b"r", "response_type": tracking_pb2.GetSystemTimeResponse}
    try:
        with pytest.raises(InvalidArgument):
            await idem.once(request_id="f", create=failing, **kwargs)  # type: ignore[arg-type]
        claim = await store.idempotency.claim(
            "a", "/m", "f", fingerprint=b"", owner="o", now=1e12, ttl=1e13, stale_after=60
        )
        assert claim.state is ClaimState.NEW

        first = asyncio.create_task(idem.once(request_id="s", create=slow, **kwargs))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        with pytest.raises(RequestInProgress) as caught:
            await idem.once(request_id="s", create=slow, **kwargs)  # type: ignore[arg-type]
        assert caught.value.retry_after == 1.0
        release.set()
        assert (await first).success

        with pytest.raises(InvalidArgument, match="128"):
            await idem.once(request_id="x" * 129, create=slow, **kwargs)  # type: ignore[arg-type]
    finally:
        await store.close()


async def test_a_reused_request_id_with_another_request_is_refused(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    idem = Idempotency(store.idempotency, ttl_seconds=3600)
    created = []

    async def create() -> tracking_pb2.GetSystemTimeResponse:
        created.append(1)
        return tracking_pb2.GetSystemTimeResponse(success=True)

    kwargs = {"account": "a", "method": "/m", "request_id": "r", "response_type": tracking_pb2.GetSystemTimeResponse}
    try:
        await idem.once(request=tracking_pb2.GetSystemTimeRequest(project_token="p"), create=create, **kwargs)  # type: ignore[arg-type]
        with pytest.raises(RequestIdReused):
            await idem.once(request=tracking_pb2.GetSystemTimeRequest(project_token="q"), create=create, **kwargs)  # type: ignore[arg-type]
        await idem.once(request=tracking_pb2.GetSystemTimeRequest(project_token="p"), create=create, **kwargs)  # type: ignore[arg-type]
        assert len(created) == 1
    finally:
        await store.close()


async def test_a_claim_of_a_dead_process_is_taken_over_at_once(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    # A process that ran and is gone: its pid and start time name nobody now.
    child = await asyncio.create_subprocess_exec("true")
    await child.wait()
    dead = f"{process_owner().split('/')[0]}/{child.pid}/1"
    alive = f"{process_owner().split('/')[0]}/1/{start_ticks(1)}"
    elsewhere = "another-host/123/456"
    kwargs = {"account": "a", "method": "/m", "request": b"r", "response_type": tracking_pb2.GetSystemTimeResponse}

    async def create() -> tracking_pb2.GetSystemTimeResponse:
        return tracking_pb2.GetSystemTimeResponse(success=True)

    try:
        for request_id, owner in (("dead", dead), ("alive", alive), ("elsewhere", elsewhere)):
            claim = await store.idempotency.claim(
                "a", "/m", request_id, fingerprint=fingerprint(b"r"), owner=owner, now=time.time(), ttl=3600,
                stale_after=60,
            )  # fmt: skip
            assert claim.state is ClaimState.NEW
        idem = Idempotency(store.idempotency, ttl_seconds=3600)
        # The dead process's call runs at once; the others still hold theirs.
        assert (await idem.once(request_id="dead", create=create, **kwargs)).success  # type: ignore[arg-type]
        for request_id in ("alive", "elsewhere"):
            with pytest.raises(RequestInProgress):
                await idem.once(request_id=request_id, create=create, **kwargs)  # type: ignore[arg-type]
        # And a restart frees every claim of a dead process before serving.
        await store.idempotency.claim(
            "a", "/m", "dead2", fingerprint=b"", owner=dead, now=time.time(), ttl=3600, stale_after=60
        )
        assert await idem.release_abandoned() == 1
        assert set(await store.idempotency.pending_owners()) == {alive, elsewhere}
    finally:
        await store.close()


async def test_concurrent_writes_share_a_commit_and_a_failing_one_rolls_back_alone(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    try:
        await store.write(lambda conn: conn.execute("CREATE TABLE t (v TEXT)"))
        statements: list[str] = []
        await store.run(lambda conn: conn.set_trace_callback(statements.append))

        def insert(value: str, fail: bool = False) -> object:
            def _insert(conn: sqlite3.Connection) -> str:
                conn.execute("INSERT INTO t VALUES (?)", (value,))
                if fail:
                    raise ValueError(value)
                return value

            return store.write(_insert)

        # Hold the database thread so that the three writes queue up and
        # are applied as one group.
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()
        blocker = store.run(lambda _: asyncio.run_coroutine_threadsafe(gate.wait(), loop).result())
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
