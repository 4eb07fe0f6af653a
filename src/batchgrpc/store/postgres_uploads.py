"""Uploaded file bytes on PostgreSQL (`UploadStore`): storage only; the
streaming, counting and hashing are `batchgrpc.batches.files`'."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchgrpc.store import Upload

if TYPE_CHECKING:
    from batchgrpc.store.postgres import Connection, PostgresStore


class PostgresUploadStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def begin(self, upload_id: str, source_id: str, *, now: float) -> None:
        async def _begin(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO uploads (id, source_id, touched) VALUES (%s, %s, %s)", (upload_id, source_id, now)
            )

        await self._store.write(_begin)

    async def append(self, upload_id: str, seq: int, data: bytes, *, now: float) -> None:
        async def _append(conn: Connection) -> None:
            cursor = await conn.execute(
                "UPDATE uploads SET touched = %s, chunks = greatest(chunks, %s) WHERE id = %s AND NOT complete",
                (now, seq + 1, upload_id),
            )
            if cursor.rowcount != 1:
                raise LookupError(f"upload {upload_id} is complete or gone")
            await conn.execute(
                "INSERT INTO upload_chunks (upload_id, seq, data) VALUES (%s, %s, %s)", (upload_id, seq, data)
            )

        await self._store.write(_append)

    async def publish(self, upload_id: str, *, size: int, sha256: str) -> None:
        async def _publish(conn: Connection) -> None:
            cursor = await conn.execute(
                "UPDATE uploads SET complete = true, size = %s, sha256 = %s WHERE id = %s AND NOT complete",
                (size, sha256, upload_id),
            )
            if cursor.rowcount != 1:
                raise LookupError(f"upload {upload_id} is complete or gone")

        await self._store.write(_publish)

    async def find(self, source_id: str, sha256: str) -> Upload | None:
        async def _find(conn: Connection) -> Upload | None:
            cursor = await conn.execute(
                "SELECT id, source_id, size, sha256, chunks FROM uploads"
                " WHERE source_id = %s AND sha256 = %s AND complete ORDER BY touched DESC, id LIMIT 1",
                (source_id, sha256),
            )
            row = await cursor.fetchone()
            return Upload(*row) if row else None

        return await self._store.read(_find)

    async def chunk(self, upload_id: str, seq: int) -> bytes | None:
        async def _chunk(conn: Connection) -> bytes | None:
            cursor = await conn.execute(
                "SELECT data FROM upload_chunks WHERE upload_id = %s AND seq = %s", (upload_id, seq)
            )
            row = await cursor.fetchone()
            return bytes(row[0]) if row else None

        return await self._store.read(_chunk)

    async def discard(self, upload_id: str) -> None:
        async def _discard(conn: Connection) -> None:
            await conn.execute("DELETE FROM uploads WHERE id = %s", (upload_id,))

        await self._store.write(_discard)

    async def remove(self, source_id: str, *, keep: str = "") -> int:
        async def _remove(conn: Connection) -> int:
            if keep:
                cursor = await conn.execute(
                    "DELETE FROM uploads WHERE source_id = %s AND complete AND id <> %s", (source_id, keep)
                )
            else:
                cursor = await conn.execute("DELETE FROM uploads WHERE source_id = %s", (source_id,))
            return cursor.rowcount

        return await self._store.write(_remove)

    async def sweep(self, *, untouched_since: float) -> int:
        async def _sweep(conn: Connection) -> int:
            cursor = await conn.execute("DELETE FROM uploads WHERE NOT complete AND touched < %s", (untouched_since,))
            return cursor.rowcount

        return await self._store.write(_sweep)
