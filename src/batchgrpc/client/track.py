"""`batchgrpc track send FILE.jsonl`: Bloomreach tracking commands, one per
line ({"name", "data", "command_id"}), in batches of 50.

Every failed command is reported with its line number and upstream's error
text; the others go on. Each batch carries the `request_id` of its lines
(`batchgrpc.client.lines`), so a rerun after a failure midway tracks nothing
twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgrpc import core
from batchgrpc.client import lines
from batchgrpc.client.connection import Connection
from batchgrpc.client.failures import CommandFailed, Exit
from batchgrpc.client.output import Output
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc


@dataclass
class Summary:
    file: str
    project: str
    batches: int = 0
    succeeded: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    failed_batches: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        batches = f"{self.batches} batch" + ("" if self.batches == 1 else "es")
        out = [f"{self.succeeded} commands succeeded, {len(self.failed)} failed ({batches})"]
        out += [f"line {f['line']}: {f['name']}: {'; '.join(f['errors'])}" for f in self.failed]
        out += [f"line {b['line']}: bad line: {b['message']}" for b in self.bad_lines]
        out += [f"lines {b['first_line']}-{b['last_line']}: batch refused: {b['message']}" for b in self.failed_batches]
        return "\n".join(out)


def send(conn: Connection, out: Output, path: Path, project: str) -> int:
    stub = tracking_pb2_grpc.TrackingServiceStub(conn.channel)
    summary = Summary(str(path), project)

    bad = lines.reporter(summary.bad_lines, out.note)
    size = lines.size_of(path)
    with out.bar(f"track {path.name}", size, unit="bytes") as bar:
        for batch in lines.batches(
            path,
            tracking_pb2.Command,
            lambda _: 1,
            max_weight=core.TRACK_MAX_COMMANDS,
            max_bytes=core.TRACK_MAX_REQUEST_BYTES,
            bad=bad,
        ):
            request = tracking_pb2.BatchRequest(
                project_token=project,
                commands=[item.message for item in batch.items],
                request_id=batch.request_id("track"),
            )
            try:
                response = conn.call(
                    f"lines {batch.first}-{batch.last}",
                    functools.partial(stub.Batch, request, metadata=conn.metadata),
                )
            except CommandFailed as e:
                if e.exit_code != Exit.REFUSED:
                    raise
                summary.failed_batches.append(
                    {"first_line": batch.first, "last_line": batch.last, "message": e.message}
                )
                out.note(e.message)
                continue
            summary.batches += 1
            for item, result in zip(batch.items, response.results, strict=True):
                if result.success:
                    summary.succeeded += 1
                else:
                    failed = {"line": item.line, "name": item.message.name, "errors": list(result.errors)}
                    if item.message.command_id:
                        failed["command_id"] = item.message.command_id
                    summary.failed.append(failed)
            bar.update(batch.offset, status=f"{summary.succeeded} succeeded, {len(summary.failed)} failed")
        bar.update(size, status=f"{summary.succeeded} succeeded, {len(summary.failed)} failed")
    out.result(summary.text(), summary.__dict__)
    complete = not (summary.failed or summary.bad_lines or summary.failed_batches)
    return Exit.OK if complete else Exit.PARTIAL
