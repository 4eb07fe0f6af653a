"""What the client commands print.

Progress and notes go to stderr: a `rich` progress bar when stderr is a
terminal, plain lines (no escape codes, at most about one a second, and one
on every change of status) when it is not. The result goes to stdout: one
line for a person, or with `--json` the final record as JSON, so that
`batchgrpc run people.csv --json > job.json` keeps the record clean.
"""

from __future__ import annotations

import abc
import json
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

#: Seconds between two plain progress lines of one bar.
PLAIN_EVERY = 1.0


def as_dict(message: Message) -> dict[str, Any]:
    """A record as the REST sidecar shows it: proto field names, enum names,
    int64 as strings (the proto JSON mapping)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class Bar(abc.ABC):
    """One task's progress: `completed` of `total` units, and a status text
    (drawn by rich on a terminal, plain lines otherwise)."""

    @abc.abstractmethod
    def update(self, completed: int, total: int | None = None, status: str = "") -> None: ...

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None: ...


class Output:
    def __init__(self, *, as_json: bool = False, err: TextIO | None = None, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self._err = err or sys.stderr
        self._out = out or sys.stdout
        self.live = self._err.isatty()
        self._console = Console(file=self._err) if self.live else None
        self._progress: Progress | None = None

    def note(self, text: str) -> None:
        """A line for the person watching (stderr), above a bar if one is drawn."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self._err, flush=True)

    def bar(self, description: str, total: int | None, *, unit: str) -> Bar:
        """`unit` "bytes" shows sizes (1.2/3.4 MB); any other is counted."""
        if self._console is None:
            return _PlainBar(self, description, total, unit)
        columns: list[ProgressColumn] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn() if unit == "bytes" else MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
        ]
        progress = Progress(*columns, console=self._console, refresh_per_second=8)
        return _LiveBar(self, progress, description, total)

    def result(self, text: str, record: object) -> None:
        """The command's outcome on stdout: `text`, or `record` with --json
        (a message, or anything `json.dumps` takes)."""
        if self.as_json:
            value = as_dict(record) if isinstance(record, Message) else record
            print(json.dumps(value, indent=2, ensure_ascii=False), file=self._out, flush=True)
        else:
            print(text, file=self._out, flush=True)

    def write(self, text: str) -> None:
        """Text as it is on stdout (CSV)."""
        self._out.write(text)
        self._out.flush()

    def _attach(self, progress: Progress | None) -> None:
        self._progress = progress


class _LiveBar(Bar):
    def __init__(self, out: Output, progress: Progress, description: str, total: int | None) -> None:
        self._out = out
        self._progress = progress
        self._task = progress.add_task(description, total=total, status="")
        progress.start()
        out._attach(progress)

    def update(self, completed: int, total: int | None = None, status: str = "") -> None:
        if total is not None:
            self._progress.update(self._task, total=total)
        self._progress.update(self._task, completed=completed, status=status)

    def close(self) -> None:
        self._progress.stop()
        self._out._attach(None)


class _PlainBar(Bar):
    def __init__(self, out: Output, description: str, total: int | None, unit: str) -> None:
        self._out = out
        self._description = description
        self._total = total
        self._unit = unit
        self._completed = 0
        self._status = ""
        self._printed: tuple[int, str] | None = None
        self._printed_at = 0.0

    def update(self, completed: int, total: int | None = None, status: str = "") -> None:
        if total is not None:
            self._total = total
        self._completed = completed
        changed = status != self._status
        self._status = status
        if changed or time.monotonic() - self._printed_at >= PLAIN_EVERY:
            self._print()

    def _print(self) -> None:
        if self._printed == (self._completed, self._status):
            return
        line = f"{self._description}: {self._completed}"
        if self._total:
            line += f"/{self._total} {self._unit} ({100 * self._completed // self._total}%)"
        else:
            line += f" {self._unit}"
        self._out.note(line + (f" {self._status}" if self._status else ""))
        self._printed = (self._completed, self._status)
        self._printed_at = time.monotonic()

    def close(self) -> None:
        self._print()
