"""A sink that appends JSON lines to a local file: one line per event,
`{"position", "key", "headers", "value"}` (the message a Kafka sink sends).

For debugging and for following events with `tail -f` without a broker; it
also keeps the relay's contract the way a transactional producer does:
- a batch is one `write` and one `fsync`; a crash mid-batch leaves a torn
  last line, which `open` cuts off, and complete lines, which `recover`
  reports, so nothing is written twice or lost;
- an exclusive `flock` on the file fences off a second relay (another
  replica on this machine) for as long as this one has it open.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path

from batchgrpc import tracing
from batchgrpc.sinks import Held, SinkUnavailable
from batchgrpc.sinks.message import message_of
from batchgrpc.store import Event

#: How far from the end `recover` looks for the last line (a line is one
#: event: far below this).
_TAIL = 8 * 1024 * 1024


def _line(event: Event) -> bytes:
    message = message_of(event)
    head = json.dumps(
        {
            "position": message.position,
            "key": message.key.decode(),
            "headers": {name: value.decode() for name, value in message.headers},
        },
        separators=(",", ":"),
    )
    return f'{head[:-1]},"value":'.encode() + message.value + b"}\n"


class FileSink:
    delivers_at_commit = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"file:{path}"
        self._fd: int | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise SinkUnavailable(f"{self.path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SinkUnavailable(f"{self.path} is held by another relay") from None
        # A torn last line (a crash mid-write) is cut off: its event was
        # never delivered and goes again.
        size = os.fstat(fd).st_size
        tail = os.pread(fd, min(size, _TAIL), max(0, size - _TAIL))
        if tail and not tail.endswith(b"\n"):
            os.ftruncate(fd, size - len(tail) + tail.rfind(b"\n") + 1)
            os.fsync(fd)
        self._fd = fd

    async def recover(self) -> Held | None:
        return await asyncio.to_thread(self._recover)

    def _recover(self) -> Held | None:
        assert self._fd is not None, "open first"
        size = os.fstat(self._fd).st_size
        tail = os.pread(self._fd, min(size, _TAIL), max(0, size - _TAIL))
        lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
        if not lines[-1]:
            return None
        last = json.loads(lines[-1])
        return Held(int(last["position"]), last["headers"]["event_id"])

    async def deliver(self, events: Sequence[Event]) -> None:
        attributes: dict[str, str | int] = {
            "messaging.system": "file",
            "messaging.operation.type": "send",
            "messaging.destination.name": str(self.path),
            "messaging.batch.message_count": len(events),
        }
        with tracing.delivery(self.name, attributes, [e.traceparent for e in events]):
            data = b"".join(_line(e) for e in events)
            await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        assert self._fd is not None, "open first"
        size = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as e:
            # All or nothing: what part of the batch got written goes.
            os.ftruncate(self._fd, size)
            raise SinkUnavailable(f"{self.path}: {e.strerror}") from e

    async def ping(self) -> None:
        # A local file, for debugging: there is nothing to reach, and a
        # write that fails shows in the relay's log.
        return None

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
