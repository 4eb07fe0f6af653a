"""`batchgrpc events send FILE.jsonl`: Klaviyo `event-bulk-create` items, one
per line, as bulk-create requests of at most 1,000 events and 5 MB.

Each request goes with `partial_success`, so that one bad event is rejected
alone (and reported with its line) instead of failing its 999 neighbours;
each has the `request_id` of its lines (`batchgrpc.client.lines`), so that a
rerun after a failure midway ingests nothing twice. Once every request is
in, the command waits for the server to process them and reports what each
event became: accepted, deduplicated or rejected.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgrpc import core
from batchgrpc.client import lines
from batchgrpc.client.connection import Connection
from batchgrpc.client.failures import CommandFailed, Exit
from batchgrpc.client.output import Output
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc

Item = bulk_pb2.EventBulkCreate
Job = bulk_pb2.EventBulkCreateJob
#: A job's error pointer into its request's items: the item's index.
_ITEM = re.compile(r"^/data/attributes/events-bulk-create/data/(\d+)(?:/|$)")
#: How often the jobs still processing are asked for.
POLL_SECONDS = 0.2


@dataclass
class Summary:
    """What became of a file's lines."""

    file: str
    requests: int = 0
    events_sent: int = 0
    accepted_count: int = 0
    deduplicated_count: int = 0
    rejected_count: int = 0
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    failed_requests: list[dict[str, Any]] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.bad_lines or self.rejected_count or self.rejected or self.failed_requests)

    def text(self) -> str:
        out = [
            f"{self.accepted_count} accepted, {self.deduplicated_count} deduplicated, "
            f"{self.rejected_count} rejected ({self.events_sent} events in {_count(self.requests, 'request')})"
        ]
        out += [f"line {b['line']}: bad line: {b['message']}" for b in self.bad_lines]
        out += [f"line {r['line']}: rejected: {r['pointer']}: {r['reason']}: {r['message']}" for r in self.rejected]
        out += [
            f"lines {f['first_line']}-{f['last_line']}: request refused: {f['message']}" for f in self.failed_requests
        ]
        if self.bad_lines:
            out.append(f"{len(self.bad_lines)} bad lines not sent")
        return "\n".join(out)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _request(batch: lines.Batch[bulk_pb2.EventBulkCreate]) -> bulk_pb2.CreateEventBulkCreateJobRequest:
    return bulk_pb2.CreateEventBulkCreateJobRequest(
        data=bulk_pb2.EventBulkCreateJobData(
            type="event-bulk-create-job",
            attributes=bulk_pb2.EventBulkCreateJobAttributes(
                events_bulk_create=bulk_pb2.EventsBulkCreate(data=[item.message for item in batch.items])
            ),
        ),
        request_id=batch.request_id("events"),
        partial_success=True,
    )


def send(conn: Connection, out: Output, path: Path) -> int:
    stub = event_bulk_create_job_pb2_grpc.EventBulkCreateJobServiceStub(conn.channel)
    summary = Summary(str(path))
    #: Each job sent, with the line number of each of its request's items.
    sent: list[tuple[str, list[int]]] = []

    bad = lines.reporter(summary.bad_lines, out.note)
    size = lines.size_of(path)
    with out.bar(f"send {path.name}", size, unit="bytes") as bar:
        for batch in lines.batches(
            path,
            Item,
            lambda item: len(item.attributes.events.data),
            max_weight=core.BULK_EVENTS_MAX_EVENTS,
            max_bytes=core.BULK_EVENTS_MAX_REQUEST_BYTES,
            bad=bad,
        ):
            request = _request(batch)
            what = f"lines {batch.first}-{batch.last}"
            try:
                response = conn.call(
                    what, functools.partial(stub.CreateEventBulkCreateJob, request, metadata=conn.events_metadata)
                )
            except CommandFailed as e:
                if e.exit_code != Exit.REFUSED:
                    raise  # the key, or the server: no later request would fare better
                summary.failed_requests.append(
                    {"first_line": batch.first, "last_line": batch.last, "message": e.message}
                )
                out.note(e.message)
                continue
            summary.requests += 1
            summary.events_sent += batch.weight
            sent.append((response.event_bulk_create_job.id, [item.line for item in batch.items]))
            bar.update(batch.offset, status=f"{summary.events_sent} events sent")
        bar.update(size, status=f"{summary.events_sent} events sent")
    _wait(conn, out, stub, sent, summary)
    out.result(summary.text(), summary.__dict__)
    return Exit.OK if summary.complete else Exit.PARTIAL


def _wait(
    conn: Connection,
    out: Output,
    stub: event_bulk_create_job_pb2_grpc.EventBulkCreateJobServiceStub,
    sent: list[tuple[str, list[int]]],
    summary: Summary,
) -> None:
    """Waits until the server has processed every job, adding up what each did."""
    pending = dict(sent)
    with out.bar("process", len(sent), unit="requests") as bar:
        while pending:
            for job_id, item_lines in list(pending.items()):
                request = bulk_pb2.GetEventBulkCreateJobRequest(id=job_id)
                job = conn.call(
                    f"bulk job {job_id}",
                    functools.partial(stub.GetEventBulkCreateJob, request, metadata=conn.events_metadata),
                ).event_bulk_create_job
                if job.status in (Job.COMPLETE, Job.FAILED):
                    del pending[job_id]
                    _add(summary, job, item_lines)
            bar.update(len(sent) - len(pending), status=f"{summary.accepted_count} events accepted")
            if pending:
                time.sleep(POLL_SECONDS)
    summary.job_ids = [job_id for job_id, _ in sent]


def _add(summary: Summary, job: bulk_pb2.EventBulkCreateJob, item_lines: list[int]) -> None:
    summary.accepted_count += job.accepted_count
    summary.deduplicated_count += job.deduplicated_count
    summary.rejected_count += job.rejected_count
    for error in job.errors:
        match = _ITEM.match(error.pointer)
        index = int(match.group(1)) if match else -1
        summary.rejected.append(
            {
                "line": item_lines[index] if 0 <= index < len(item_lines) else None,
                "pointer": error.pointer,
                "reason": error.reason,
                "message": error.message,
            }
        )
    if job.status == Job.FAILED and not job.errors:
        summary.failed_requests.append(
            {"first_line": item_lines[0], "last_line": item_lines[-1], "message": f"bulk job {job.id} FAILED"}
        )
