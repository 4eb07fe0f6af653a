"""Prometheus metrics (`--metrics-listen HOST:PORT`, text at `/metrics`).

The `grpc_server_*` families are go-grpc-prometheus's, name for name, label
for label, with its help texts and its default histogram buckets, so that
dashboards made for Go services read these unchanged. The `batchgrpc_*`
families are the service's own.

Who counts what:

- RPCs: the one interceptor (`batchgrpc.interceptor`), which sees every
  call's method, type, code and time; rate-limited refusals there too.
- Rows and dispatched events: the domain code right after the store
  committed them (the job runner, the bulk processor, tracking, the job
  servicer for notifications), never the store itself; a chunk or a bulk job
  that a lost lease kept from committing is not counted, so a job taken over
  by another worker counts each row once.
- The gauges are the store's state, not a process's: one worker reads them
  every `GAUGE_SECONDS` (`GaugeRefresher`), one indexed query each.

With `--workers N` every worker counts into prometheus-client's
multiprocess files (PROMETHEUS_MULTIPROC_DIR, a fresh temporary directory
the supervisor makes) and the supervisor serves their sum (`serve_group`):
it outlives every worker, so the endpoint stays up, and keeps its counts,
while a worker is replaced. A lone server serves its own (`serve_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from batchgrpc.sinks import EventSink
    from batchgrpc.store import Store

log = logging.getLogger("batchgrpc.metrics")

#: go-grpc-prometheus's grpc_type values.
UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI_STREAM = "unary", "client_stream", "server_stream", "bidi_stream"

#: The code names go-grpc-prometheus writes (Go's `codes.Code.String()`):
#: CamelCase, and "Canceled" with one L where Python says CANCELLED.
CODE_NAMES: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}

#: Go's prometheus.DefBuckets, which go-grpc-prometheus uses; Python's
#: default buckets are others (0.075, 0.75, 7.5 more).
HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_METHOD = ("grpc_type", "grpc_service", "grpc_method")

started = Counter("grpc_server_started_total", "Total number of RPCs started on the server.", _METHOD)
handled = Counter(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    (*_METHOD, "grpc_code"),
)
msg_received = Counter(
    "grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", _METHOD
)
msg_sent = Counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", _METHOD)
handling_seconds = Histogram(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    _METHOD,
    buckets=HANDLING_BUCKETS,
)

batch_rows = Counter(
    "batchgrpc_batch_rows_total",
    "Batch job rows committed, by result: success (its event dispatched) or failed (a row error recorded).",
    ("result",),
)
events_dispatched = Counter(
    "batchgrpc_events_dispatched_total",
    "Events committed to the event log, by source: BATCH_JOB, BULK_CREATE, TRACKING or NOTIFICATION.",
    ("source",),
)
rate_limited = Counter(
    "batchgrpc_rate_limited_total",
    "Calls refused with RESOURCE_EXHAUSTED by the per-account rate limits, by API.",
    ("api",),
)
# Written by one worker at a time; "livemostrecent": the newest reading of
# a live process, and a dead worker's readings go with it (mark_process_dead).
events_undelivered = Gauge(
    "batchgrpc_events_undelivered",
    "Events in the event log that the configured sink has not taken yet (0 for the log sink).",
    multiprocess_mode="livemostrecent",
)
jobs = Gauge(
    "batchgrpc_jobs",
    "Jobs in the store by kind (batch, bulk) and status.",
    ("kind", "status"),
    multiprocess_mode="livemostrecent",
)

#: Every status a job of each kind can have: each gets a value, 0 when no
#: job has it, so a status that empties shows 0 rather than its last count.
JOB_STATUSES: Mapping[str, tuple[str, ...]] = {
    "batch": ("PENDING", "QUEUED", "IN_PROGRESS", "DISPATCHING", "DONE", "FAILED", "CANCELED", "EXPIRED"),
    "bulk": ("QUEUED", "PROCESSING", "COMPLETE", "FAILED"),
}

#: How often the gauges are read from the store.
GAUGE_SECONDS = 5.0


def grpc_type(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming:
        return BIDI_STREAM if response_streaming else CLIENT_STREAM
    return SERVER_STREAM if response_streaming else UNARY


@dataclass(frozen=True)
class Rpc:
    """The labels of one method; observations of one call go through it."""

    type: str
    service: str
    method: str

    @classmethod
    def of(cls, full_method: str, *, request_streaming: bool, response_streaming: bool) -> Rpc:
        service, _, method = full_method.lstrip("/").partition("/")
        if not method:
            service, method = "unknown", "unknown"  # as go-grpc-prometheus splits a malformed name
        return cls(grpc_type(request_streaming, response_streaming), service, method)

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.type, self.service, self.method)

    def started(self) -> None:
        started.labels(*self.labels).inc()

    def received(self) -> None:
        msg_received.labels(*self.labels).inc()

    def sent(self) -> None:
        msg_sent.labels(*self.labels).inc()

    def handled(self, code: grpc.StatusCode, seconds: float) -> None:
        handled.labels(*self.labels, CODE_NAMES[code]).inc()
        handling_seconds.labels(*self.labels).observe(seconds)


def rows_committed(success: int, failed: int) -> None:
    """A batch job's chunk was committed with these row counts."""
    batch_rows.labels("success").inc(success)
    batch_rows.labels("failed").inc(failed)
    dispatched("BATCH_JOB", success)


def dispatched(source: str, count: int = 1) -> None:
    """`count` events of `source` were committed to the event log."""
    events_dispatched.labels(source).inc(count)


class GaugeRefresher:
    """Reads the store's gauges every `GAUGE_SECONDS`, off the RPCs' way:
    the store's queries run on its own threads or connections."""

    def __init__(self, store: Store, sink: EventSink, *, seconds: float = GAUGE_SECONDS) -> None:
        self._store = store
        self._sink = sink
        self._seconds = seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics gauges")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        events = self._store.events
        if self._sink.delivers_at_commit:
            undelivered = 0
        else:
            # Positions are handed out in commit order; the newest minus the
            # sink's is what it lacks (on PostgreSQL an upper bound while a
            # rolled-back insert's gap lies between them).
            undelivered = max(0, await events.newest_position() - await events.delivered(self._sink.name))
        counts = {
            "batch": await self._store.jobs.count_by_status(),
            "bulk": await self._store.bulk_jobs.count_by_status(),
        }
        events_undelivered.set(undelivered)
        for kind, by_status in counts.items():
            for status in _statuses(JOB_STATUSES[kind], by_status):
                jobs.labels(kind, status).set(by_status.get(status, 0))

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                # The store is down: health says so; the gauges keep their
                # last reading until it answers again.
                log.warning("cannot read the metrics gauges", exc_info=True)
            await asyncio.sleep(self._seconds)


def _statuses(known: Iterable[str], found: Mapping[str, int]) -> list[str]:
    return list(dict.fromkeys([*known, *found]))


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class Exporter:
    """The `/metrics` endpoint: prometheus-client's HTTP server, in a thread."""

    server: WSGIServer
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _serve(listen: str, registry: CollectorRegistry) -> Exporter:
    host, port = split_listen(listen)
    # The `_created` samples are per process and not summed across workers
    # (multiprocess mode leaves them out): off everywhere, so that one process
    # and a group of workers expose the same families.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream
    try:
        server, _ = prometheus_client.start_http_server(port, host, registry)
    except OSError as e:
        raise MetricsUnavailable(f"cannot serve metrics on {listen}: {e.strerror}") from None
    exporter = Exporter(server, server.server_address[1])
    log.info("metrics serving", extra={"fields": {"address": f"{host}:{exporter.port}", "port": exporter.port}})
    return exporter


def serve_process(listen: str) -> Exporter:
    """A lone server's endpoint: this process's own figures."""
    return _serve(listen, prometheus_client.REGISTRY)


def serve_group(listen: str, directory: str) -> Exporter:
    """The supervisor's endpoint: the sum of every worker's files in
    `directory`, the dead workers' counts included (a total never goes back
    because a worker was replaced)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]  # unannotated upstream
    return _serve(listen, registry)


def worker_exited(pid: int, directory: str) -> None:
    """Drops the live gauges of a worker that exited."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]  # unannotated upstream


class MetricsUnavailable(RuntimeError):
    """The metrics address cannot be bound."""
