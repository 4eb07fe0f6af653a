"""The PostgreSQL store, for replicas that share nothing but the database:
psycopg 3, async, on a connection pool.

Every operation is one transaction on a pooled connection (`read`, `write`),
so no state lives in a replica: what one replica commits, the next read of
any replica sees. Where two replicas may race for one row (a request id, a
rate-limit bucket), the statement itself settles it: `INSERT ... ON
CONFLICT` and row locks (`FOR UPDATE`), never a read then a blind write.

Every store protocol is here and passes the store contract suite. `--store
postgresql://...` is still refused (`factory.py`) until uploaded file bytes
live in the database, so that any replica's job can read any upload.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

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
    LimitRecord,
    ProfileStore,
    RateLimitStore,
    UploadStore,
)
from batchgrpc.store.postgres_schema import MIGRATIONS

T = TypeVar("T")

Connection = psycopg.AsyncConnection[tuple[Any, ...]]

#: The store's commit spans' attributes.
_POSTGRESQL = {"db.system.name": "postgresql"}
#: The advisory lock every replica takes to migrate: one at a time.
_MIGRATION_LOCK = 0x62617463_68677270  # "batchgrp"
#: Connections per replica: its RPCs, job runners, relay and heartbeat.
POOL_SIZE = 8
#: How long `ping` waits for the database: far longer than a round trip
#: under load, short enough that health turns NOT_SERVING within seconds.
PING_SECONDS = 2.0


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer batchgrpc than this one."""


async def migrate(conn: Connection) -> int:
    """Applies the migrations not applied yet, in one transaction under an
    advisory lock; returns the schema version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = await (await conn.execute("SELECT version FROM schema_version")).fetchone()
        version = 0 if row is None else int(row[0])
        if version > len(MIGRATIONS):
            raise SchemaTooNew(
                f"database schema version {version} is newer than this batchgrpc understands ({len(MIGRATIONS)})"
            )
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                await conn.execute(statement)
        if row is None:
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS),))
        else:
            await conn.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS),))
    return len(MIGRATIONS)


class PostgresStore:
    """The store protocols on one PostgreSQL database."""

    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self._pool = pool
        # Here, not at the top: those modules use this one's types.
        from batchgrpc.store.postgres_jobs import (
            PostgresDataSourceStore,
            PostgresEventLog,
            PostgresJobStore,
            PostgresLeaseStore,
        )
        from batchgrpc.store.postgres_profiles import PostgresBulkJobStore, PostgresProfileStore
        from batchgrpc.store.postgres_uploads import PostgresUploadStore

        # Typed as the protocols: that is all the rest of the code may use.
        self.keys: KeyStore = PostgresKeyStore(self)
        self.idempotency: IdempotencyStore = PostgresIdempotencyStore(self)
        self.limits: RateLimitStore = PostgresRateLimitStore(self)
        self.sources: DataSourceStore = PostgresDataSourceStore(self)
        self.jobs: JobStore = PostgresJobStore(self)
        self.events: EventLog = PostgresEventLog(self)
        self.leases: LeaseStore = PostgresLeaseStore(self)
        self.profiles: ProfileStore = PostgresProfileStore(self)
        self.bulk_jobs: BulkJobStore = PostgresBulkJobStore(self)
        self.uploads: UploadStore | None = PostgresUploadStore(self)

    @classmethod
    async def open(cls, conninfo: str, *, pool_size: int = POOL_SIZE) -> PostgresStore:
        """Connects (failing with the server's own words when it cannot) and
        migrates."""
        # One connection first: a pool that cannot connect says only that it
        # timed out, this says what the server (or the network) said.
        first = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        await first.close()
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            conninfo, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True}
        )
        await pool.open(wait=True, timeout=10)
        try:
            async with pool.connection() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def read(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Runs `fn(connection)` in a read-only transaction."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION READ ONLY")
            return await fn(conn)

    async def write(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Runs `fn(connection)` as one transaction, committed before it returns."""
        with tracing.span("store.commit", _POSTGRESQL):
            async with self._pool.connection() as conn, conn.transaction():
                return await fn(conn)

    async def ping(self) -> None:
        # The pool waits up to 30 s for a connection while the server is
        # down (and keeps trying to make one): health must hear sooner.
        async with asyncio.timeout(PING_SECONDS), self._pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()


_KEY_COLUMNS = "key_id, account, secret_hash, scopes, public, created_time, revoked_time"


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, account, secret_hash, scopes, public, created, revoked = row
    return ApiKey(
        key_id=key_id,
        account=account,
        secret_hash=bytes(secret_hash),
        scopes=frozenset(json.loads(scopes)),
        public=public,
        created_time=created,
        revoked_time=revoked,
    )


async def _insert_key(conn: Connection, key: ApiKey) -> None:
    await conn.execute(
        "INSERT INTO accounts (account, created_time) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (key.account, key.created_time),
    )
    await conn.execute(
        f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            key.key_id,
            key.account,
            key.secret_hash,
            json.dumps(sorted(key.scopes)),
            key.public,
            key.created_time,
            key.revoked_time,
        ),
    )


class PostgresKeyStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def create(self, key: ApiKey) -> None:
        await self._store.write(lambda conn: _insert_key(conn, key))

    async def create_if_none(self, key: ApiKey) -> bool:
        async def _create(conn: Connection) -> bool:
            # Two replicas starting on an empty database: the lock makes the
            # second see the first's key instead of adding its own.
            await conn.execute("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE")
            if await (await conn.execute("SELECT 1 FROM api_keys LIMIT 1")).fetchone():
                return False
            await _insert_key(conn, key)
            return True

        return await self._store.write(_create)

    async def get(self, key_id: str) -> ApiKey | None:
        async def _get(conn: Connection) -> ApiKey | None:
            cursor = await conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,))
            row = await cursor.fetchone()
            return _key(row) if row else None

        return await self._store.read(_get)

    async def list(self, account: str | None = None) -> builtins.list[ApiKey]:
        async def _list(conn: Connection) -> builtins.list[ApiKey]:
            if account is None:
                cursor = await conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_time, key_id")
            else:
                cursor = await conn.execute(
                    f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE account = %s ORDER BY created_time, key_id",
                    (account,),
                )
            return [_key(row) for row in await cursor.fetchall()]

        return await self._store.read(_list)

    async def revoke(self, key_id: str, now: float) -> ApiKey | None:
        async def _revoke(conn: Connection) -> ApiKey | None:
            cursor = await conn.execute(
                f"UPDATE api_keys SET revoked_time = coalesce(revoked_time, %s) WHERE key_id = %s"
                f" RETURNING {_KEY_COLUMNS}",
                (now, key_id),
            )
            row = await cursor.fetchone()
            return _key(row) if row else None

        return await self._store.write(_revoke)


class PostgresIdempotencyStore:
    def __init__(self, store: PostgresStore) -> None:
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
        async def _claim(conn: Connection) -> Claim:
            await conn.execute("DELETE FROM idempotency WHERE created_time < %s", (now - ttl,))
            # Claims the id, or takes over a stale pending claim; with neither,
            # returns no row and the claim as it stands is read below. One
            # statement, so two replicas racing for an id cannot both win.
            cursor = await conn.execute(
                "INSERT INTO idempotency (account, method, request_id, state, created_time, fingerprint, owner)"
                " VALUES (%s, %s, %s, 'pending', %s, %s, %s)"
                " ON CONFLICT (account, method, request_id) DO UPDATE"
                " SET state = 'pending', response = NULL, created_time = excluded.created_time,"
                " fingerprint = excluded.fingerprint, owner = excluded.owner"
                " WHERE idempotency.state = 'pending' AND idempotency.created_time < %s"
                " RETURNING 1",
                (account, method, request_id, now, fingerprint, owner, now - stale_after),
            )
            if await cursor.fetchone():
                return Claim(ClaimState.NEW)
            cursor = await conn.execute(
                "SELECT state, response, fingerprint, owner FROM idempotency"
                " WHERE account = %s AND method = %s AND request_id = %s",
                (account, method, request_id),
            )
            row = await cursor.fetchone()
            assert row is not None, "a conflicting claim exists"
            state, response, first_fingerprint, first_owner = row
            first = None if first_fingerprint is None else bytes(first_fingerprint)
            if state == "done":
                return Claim(ClaimState.DONE, bytes(response), first)
            return Claim(ClaimState.PENDING, None, first, first_owner)

        return await self._store.write(_claim)

    async def complete(self, account: str, method: str, request_id: str, response: bytes, *, now: float) -> None:
        async def _complete(conn: Connection) -> None:
            await conn.execute(
                "UPDATE idempotency SET state = 'done', response = %s, created_time = %s"
                " WHERE account = %s AND method = %s AND request_id = %s",
                (response, now, account, method, request_id),
            )

        await self._store.write(_complete)

    async def release(self, account: str, method: str, request_id: str) -> None:
        async def _release(conn: Connection) -> None:
            await conn.execute(
                "DELETE FROM idempotency WHERE account = %s AND method = %s AND request_id = %s AND state = 'pending'",
                (account, method, request_id),
            )

        await self._store.write(_release)

    async def pending_owners(self) -> builtins.list[str]:
        async def _owners(conn: Connection) -> builtins.list[str]:
            cursor = await conn.execute(
                "SELECT DISTINCT owner FROM idempotency WHERE state = 'pending' AND owner IS NOT NULL ORDER BY owner"
            )
            return [owner for (owner,) in await cursor.fetchall()]

        return await self._store.read(_owners)

    async def release_owner(self, owner: str) -> int:
        async def _release(conn: Connection) -> int:
            cursor = await conn.execute("DELETE FROM idempotency WHERE state = 'pending' AND owner = %s", (owner,))
            return cursor.rowcount

        return await self._store.write(_release)


class PostgresRateLimitStore:
    """The buckets in the database: each update locks its row, so replicas
    take turns on one account's budget and never on two accounts'."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def update(self, account: str, api: str, change: Callable[[LimitRecord | None], tuple[LimitRecord, T]]) -> T:
        async def _update(conn: Connection) -> T:
            # A placeholder row to lock; `updated` < 0 says it holds no record yet.
            await conn.execute(
                "INSERT INTO rate_limits (account, api, tokens, updated) VALUES (%s, %s, '{}', -1)"
                " ON CONFLICT DO NOTHING",
                (account, api),
            )
            cursor = await conn.execute(
                "SELECT tokens, updated FROM rate_limits WHERE account = %s AND api = %s FOR UPDATE",
                (account, api),
            )
            row = await cursor.fetchone()
            assert row is not None, "the row was just made"
            record = None if row[1] < 0 else LimitRecord(tuple(row[0]), row[1])
            new, out = change(record)
            await conn.execute(
                "UPDATE rate_limits SET tokens = %s, updated = %s WHERE account = %s AND api = %s",
                (list(new.tokens), new.updated, account, api),
            )
            return out

        return await self._store.write(_update)

    async def close(self) -> None:
        """Nothing beside the store's own pool."""
