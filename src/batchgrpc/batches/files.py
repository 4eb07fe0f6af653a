"""Uploaded data files: where their bytes go and how a job reads them.

Two homes, chosen by the store (`files_for`):

- `DiskFiles`, under `<data dir>/files/`, one file per data source, for the
  SQLite store: one machine's, like its database file.
- `DatabaseFiles`, in the store's `UploadStore` in chunks, for a store that
  replicas share: an upload through one replica is read by a job on any.

Either way an upload streams through a few buffers while its size and
SHA-256 are counted, so a file of any size passes through a bounded amount
of memory, and nothing is visible under the source's name until the upload
is whole. A job reads a local file (`local`): the disk file itself, or a
copy streamed out of the database chunk by chunk for the job's read and
removed after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from batchgrpc.errors import PayloadTooLarge
from batchgrpc.owner import start_ticks
from batchgrpc.store import DataSource, Store, UploadStore

log = logging.getLogger("batchgrpc.files")

#: Formats by file-name suffix, for uploads that do not name theirs.
SUFFIX_FORMATS = {".csv": "CSV", ".psv": "PSV", ".json": "JSON", ".jsonl": "JSONL", ".ndjson": "JSONL"}
#: The size of a chunk in the database: big enough that a 1 GB file is a
#: thousand rows and statements, small enough to hold one per upload.
DATABASE_CHUNK_BYTES = 1 << 20
#: An incomplete upload untouched this long has lost its writer (a client
#: sends a chunk far more often than this, or gRPC's own timeouts end it).
ABANDONED_UPLOAD_SECONDS = 3600.0


@dataclass(frozen=True)
class Received:
    size: int
    sha256: str
    #: Which stored upload holds the bytes ("" on disk: the source's id says).
    upload_id: str = ""


def infer_format(name: str) -> str | None:
    return SUFFIX_FORMATS.get(Path(name).suffix.lower())


class Files(Protocol):
    async def receive(self, source_id: str, chunks: AsyncIterator[bytes], field: str = "chunk") -> Received:
        """Stores the streamed bytes as the file of `source_id`. Raises
        PayloadTooLarge past the limit; on any failure nothing is left."""

    async def settle(self, source_id: str, received: Received) -> None:
        """The upload `received` is the source's content now (its record is
        complete): any other upload of the source can go."""

    async def discard(self, source_id: str, received: Received) -> None:
        """The upload `received` will never be the source's content."""

    async def remove(self, source_id: str) -> None:
        """The source is deleted: its bytes go."""

    def local(self, source: DataSource) -> contextlib.AbstractAsyncContextManager[Path]:
        """A local file with the source's bytes, for as long as the context."""


def files_for(store: Store, data_dir: Path, max_bytes: int) -> Files:
    root = data_dir / "files"
    if store.uploads is None:
        return DiskFiles(root, max_bytes)
    return DatabaseFiles(store.uploads, root, max_bytes)


def _part_name(source_id: str) -> str:
    """A temporary file of this process's, removed by the next start's
    sweep when this process is gone (`_sweep_parts`)."""
    return f".{source_id}.{_WRITER}.{secrets.token_hex(4)}.part"


def _sweep_parts(root: Path) -> None:
    # Parts of uploads a crash interrupted are of no use to anyone; the
    # parts of uploads other workers are receiving now are theirs.
    for part in root.glob(".*.part"):
        if _writer_is_gone(part.name):
            part.unlink(missing_ok=True)


class DiskFiles:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _sweep_parts(root)

    def path(self, source_id: str) -> Path:
        return self.root / source_id

    async def receive(self, source_id: str, chunks: AsyncIterator[bytes], field: str = "chunk") -> Received:
        part = self.root / _part_name(source_id)
        digest = hashlib.sha256()
        size = 0
        # Opened on the loop (one metadata syscall, like the unlink below):
        # a cancel that lands while a thread opens it would leave the file.
        f = open(part, "xb")  # noqa: ASYNC230, SIM115
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    raise PayloadTooLarge(f"The file is larger than the maximum of {self.max_bytes} bytes.", field)
                digest.update(chunk)
                await asyncio.to_thread(f.write, chunk)
            await asyncio.to_thread(_flush, f)
            f.close()
            # A cancel cannot stop the rename in its thread: wait for it
            # even then, so that the file it made can be taken back.
            publish = asyncio.ensure_future(asyncio.to_thread(_publish, part, self.path(source_id)))
            try:
                await asyncio.shield(publish)
            except BaseException:
                await asyncio.wait([publish])
                self.path(source_id).unlink(missing_ok=True)
                raise
        except BaseException:
            f.close()
            part.unlink(missing_ok=True)
            raise
        return Received(size, digest.hexdigest())

    async def settle(self, source_id: str, received: Received) -> None:
        pass  # one file per source: the last complete upload replaced it

    async def discard(self, source_id: str, received: Received) -> None:
        # One file per source, and the last upload replaced it: it is
        # `received`'s.
        self.path(source_id).unlink(missing_ok=True)

    async def remove(self, source_id: str) -> None:
        self.path(source_id).unlink(missing_ok=True)

    @contextlib.asynccontextmanager
    async def local(self, source: DataSource) -> AsyncIterator[Path]:
        yield self.path(source.id)


class DatabaseFiles:
    def __init__(
        self, uploads: UploadStore, root: Path, max_bytes: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._uploads = uploads
        #: Where jobs' local copies go, swept like the disk store's parts.
        self.root = root
        self.max_bytes = max_bytes
        self._clock = clock
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _sweep_parts(root)

    async def receive(self, source_id: str, chunks: AsyncIterator[bytes], field: str = "chunk") -> Received:
        upload_id = f"{source_id}.{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        size = 0
        seq = 0
        pending = bytearray()
        await self._uploads.begin(upload_id, source_id, now=self._clock())
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    raise PayloadTooLarge(f"The file is larger than the maximum of {self.max_bytes} bytes.", field)
                digest.update(chunk)
                pending += chunk
                while len(pending) >= DATABASE_CHUNK_BYTES:
                    await self._uploads.append(upload_id, seq, bytes(pending[:DATABASE_CHUNK_BYTES]), now=self._clock())
                    del pending[:DATABASE_CHUNK_BYTES]
                    seq += 1
            if pending:
                await self._uploads.append(upload_id, seq, bytes(pending), now=self._clock())
            sha256 = digest.hexdigest()
            await self._uploads.publish(upload_id, size=size, sha256=sha256)
        except BaseException:
            # Shielded: a cancelled call still takes its chunks back; if
            # even that fails, the sweep does it later.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._uploads.discard(upload_id))
            raise
        return Received(size, sha256, upload_id)

    async def settle(self, source_id: str, received: Received) -> None:
        await self._uploads.remove(source_id, keep=received.upload_id)

    async def discard(self, source_id: str, received: Received) -> None:
        await self._uploads.discard(received.upload_id)

    async def remove(self, source_id: str) -> None:
        await self._uploads.remove(source_id)

    async def sweep(self) -> int:
        """Removes the uploads whose writer died midway."""
        return await self._uploads.sweep(untouched_since=self._clock() - ABANDONED_UPLOAD_SECONDS)

    @contextlib.asynccontextmanager
    async def local(self, source: DataSource) -> AsyncIterator[Path]:
        upload = await self._uploads.find(source.id, source.sha256)
        if upload is None:
            raise FileNotFoundError(errno.ENOENT, f"no stored upload of {source.id} has its content")
        part = self.root / _part_name(source.id)
        try:
            # Opened on the loop, as in DiskFiles.receive: a cancel must not
            # leave a file that a thread made.
            f = open(part, "xb")  # noqa: ASYNC230, SIM115
            try:
                digest = hashlib.sha256()
                for seq in range(upload.chunks):
                    data = await self._uploads.chunk(upload.id, seq)
                    if data is None:
                        raise FileNotFoundError(errno.ENOENT, f"the upload of {source.id} was removed while being read")
                    digest.update(data)
                    await asyncio.to_thread(f.write, data)
                await asyncio.to_thread(f.flush)
            finally:
                f.close()
            if digest.hexdigest() != source.sha256:
                raise OSError(errno.EIO, f"the stored upload of {source.id} does not match its SHA-256")
            yield part
        finally:
            part.unlink(missing_ok=True)


#: This process, in the name of the parts it writes: a pid and its start.
_WRITER = f"{os.getpid()}-{start_ticks(os.getpid())}"


def _writer_is_gone(name: str) -> bool:
    """Whether the process that wrote part file `name` no longer runs (the
    data dir is one machine's: its pids mean something here). A part named
    otherwise (an older batchgrpc) is nobody's."""
    pid, _, ticks = name.rsplit(".", 3)[-3].partition("-")
    return not pid.isdigit() or start_ticks(int(pid)) != ticks


def _flush(f: object) -> None:
    f.flush()  # type: ignore[attr-defined]
    os.fsync(f.fileno())  # type: ignore[attr-defined]


def _publish(part: Path, final: Path) -> None:
    os.replace(part, final)
    # The rename is durable once the directory is.
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
