"""Data files on disk, under `<data dir>/files/`, one per data source.

An upload streams into a temporary file beside its final name while its size
and SHA-256 are counted, so a file of any size passes through a few buffers
of memory. It is fsynced and renamed into place only when complete: a file
under its final name is always whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from batchgrpc.errors import PayloadTooLarge
from batchgrpc.owner import start_ticks

#: Formats by file-name suffix, for uploads that do not name theirs.
SUFFIX_FORMATS = {".csv": "CSV", ".psv": "PSV", ".json": "JSON", ".jsonl": "JSONL", ".ndjson": "JSONL"}


@dataclass(frozen=True)
class Received:
    size: int
    sha256: str


def infer_format(name: str) -> str | None:
    return SUFFIX_FORMATS.get(Path(name).suffix.lower())


class FileStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Parts of uploads a crash interrupted are of no use to anyone; the
        # parts of uploads other workers are receiving now are theirs.
        for part in root.glob(".*.part"):
            if _writer_is_gone(part.name):
                part.unlink(missing_ok=True)

    def path(self, source_id: str) -> Path:
        return self.root / source_id

    async def receive(self, source_id: str, chunks: AsyncIterator[bytes], field: str = "chunk") -> Received:
        """Writes the streamed bytes as the file of `source_id`.

        Raises PayloadTooLarge past `max_bytes`; on any failure nothing is
        left behind.
        """
        part = self.root / f".{source_id}.{_WRITER}.{secrets.token_hex(4)}.part"
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
                self.remove(source_id)
                raise
        except BaseException:
            f.close()
            part.unlink(missing_ok=True)
            raise
        return Received(size, digest.hexdigest())

    def remove(self, source_id: str) -> None:
        self.path(source_id).unlink(missing_ok=True)


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
