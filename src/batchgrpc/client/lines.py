"""JSONL files sent as requests: lines with their numbers, batched under a
request's limits, each batch with a `request_id` of its own.

The `request_id` is derived from the batch's place (its first and last line)
and its lines' bytes, never drawn at random: a rerun of the same command on
the same file after a failure midway sends the same ids, and the server
answers the batches it already took with their stored answers instead of
ingesting them again. (Ids hold 24 h on the server; an edited line changes
its own batch's id, and those of later batches only if it moves their
boundaries.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from batchgrpc.client.failures import CommandFailed, Exit

M = TypeVar("M", bound=Message)

#: What a batch's envelope (its wrappers, `request_id` and flags) may add to
#: the size of its items.
ENVELOPE_BYTES = 1024
#: What the tag and length of one item add to its size, at most.
ITEM_OVERHEAD = 6


@dataclass(frozen=True)
class BadLine:
    """A line that was not sent, and why."""

    line: int
    message: str


@dataclass(frozen=True)
class Item(Generic[M]):
    line: int
    raw: bytes
    message: M
    #: How much of the request's count limit it takes (events, commands).
    weight: int


@dataclass
class Batch(Generic[M]):
    items: list[Item[M]] = field(default_factory=list)
    size: int = ENVELOPE_BYTES
    weight: int = 0
    #: The file's bytes read once this batch was complete (progress).
    offset: int = 0

    @property
    def first(self) -> int:
        return self.items[0].line

    @property
    def last(self) -> int:
        return self.items[-1].line

    def request_id(self, kind: str) -> str:
        digest = hashlib.sha256()
        for item in self.items:
            digest.update(item.line.to_bytes(8, "big"))
            digest.update(item.raw)
        return f"{kind}-{self.first}-{self.last}-{digest.hexdigest()[:40]}"


def parse_object(raw: bytes) -> dict[str, object] | str:
    """The line's JSON object, or why it is not one."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        return "not UTF-8"
    except json.JSONDecodeError as e:
        return f"not JSON: {e.msg} at column {e.colno}"
    if not isinstance(value, dict):
        return f"not a JSON object but {type(value).__name__}"
    return value


def size_of(path: Path) -> int:
    """The file's size in bytes, for its progress bar; a file that cannot be
    read is the command line's mistake."""
    try:
        return path.stat().st_size
    except OSError as e:
        raise CommandFailed(f"{path}: {e.strerror}", Exit.USAGE) from None


def reporter(bad_lines: list[dict[str, Any]], note: Callable[[str], None]) -> Callable[[BadLine], None]:
    """What `batches` calls for a bad line: kept for the summary, and said
    at once."""

    def bad(line: BadLine) -> None:
        bad_lines.append({"line": line.line, "message": line.message})
        note(f"line {line.line}: {line.message}")

    return bad


def batches(
    path: Path,
    make: Callable[[], M],
    weigh: Callable[[M], int],
    *,
    max_weight: int,
    max_bytes: int,
    bad: Callable[[BadLine], None],
) -> Iterator[Batch[M]]:
    """The file's lines as messages (`make()` filled from each line's JSON),
    in batches of at most `max_weight` and `max_bytes`. Blank lines are
    skipped; a line that cannot be sent goes to `bad` and the rest go on."""
    batch: Batch[M] = Batch()
    try:
        f = path.open("rb")
    except OSError as e:
        raise CommandFailed(f"{path}: {e.strerror}", Exit.USAGE) from None
    with f:
        offset = 0
        for number, raw in enumerate(f, start=1):
            offset += len(raw)
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            parsed = parse_object(raw)
            if isinstance(parsed, str):
                bad(BadLine(number, parsed))
                continue
            message = make()
            try:
                json_format.ParseDict(parsed, message)
            except json_format.ParseError as e:
                bad(BadLine(number, str(e)[:300]))
                continue
            item = Item(number, raw, message, weigh(message))
            size = message.ByteSize() + ITEM_OVERHEAD
            if item.weight > max_weight or size + ENVELOPE_BYTES > max_bytes:
                bad(BadLine(number, f"too large for one request (at most {max_weight} and {max_bytes} bytes)"))
                continue
            if batch.items and (batch.weight + item.weight > max_weight or batch.size + size > max_bytes):
                yield batch
                batch = Batch()
            batch.items.append(item)
            batch.weight += item.weight
            batch.size += size
            batch.offset = offset
        if batch.items:
            batch.offset = offset
            yield batch
