"""Traces (API.md, "Operating it"): `batchgrpc serve` exporting over
OTLP/gRPC to a real receiver the test runs (opentelemetry-proto's
TraceService), the caller's traceparent continued from gRPC metadata and
through the REST sidecar, and carried by the sink's messages.

The server runs in a process of its own, so that the OTEL_* variables are
its alone. Each test stops it with SIGTERM before reading what was
received: a server's exit exports every span it has, so nothing here waits
on the batch processor's delay.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc as bulk_grpc
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import REVISION, eventually
from ..hostile.served import Served, served
from ..servers import kafka_bootstrap
from ..wire.batches_client import Client
from ..wire.test_bulk import body_of, one_event, request
from ..wire.test_kafka_sink import committed, new_topic
from .test_gateway import GATEWAY
from .test_workers import GRACE, calls_until_answered_by, listening, stop

TRACKING = "batchgrpc.track.v2.TrackingService"
BULK = "batchgrpc.events.v1.EventBulkCreateJobService"
JOBS = "batchgrpc.batches.v6.BatchJobService"


@dataclass(frozen=True)
class Span:
    span: trace_pb2.Span
    #: The resource of the process that sent it.
    resource: dict[str, Any]

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()

    @property
    def attributes(self) -> dict[str, Any]:
        return values(self.span.attributes)


def values(pairs: Sequence[common_pb2.KeyValue]) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value") for kv in pairs}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[Span]:
        return [
            Span(span, values(resource_spans.resource.attributes))
            for export in self.requests
            for resource_spans in export.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, dict[str, str]]]:
    """The receiver on an ephemeral port, and the environment that points a server at it."""
    server = aio.server()
    received = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    try:
        yield received, env
    finally:
        await server.stop(None)


def caller() -> tuple[str, str, str]:
    """A caller's trace id, span id, and the traceparent that sends them."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def one_named(spans: Sequence[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, sorted(s.name for s in spans))
    return found[0]


def children(spans: Sequence[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_id == parent.span_id and s.trace_id == parent.trace_id]


def sink_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def tracking_batch(metric: str, people: int) -> tracking_pb2.BatchRequest:
    batch = tracking_pb2.BatchRequest(project_token="default")
    commands = [
        {"name": "customers/events", "data": {"customer_ids": {"registered": f"p{i}"}, "event_type": metric}}
        for i in range(people)
    ]
    return json_format.ParseDict({"commands": commands}, batch)


async def test_a_tracking_call_continues_the_callers_trace_with_the_cores_and_the_stores_spans(
    tmp_path: Path,
) -> None:
    trace_id, parent, traceparent = caller()
    async with receiver() as (otlp, env), served(tmp_path, env=env) as server:
        stub = tracking_pb2_grpc.TrackingServiceStub(server.channel)
        response = await stub.Batch(
            tracking_batch("viewed", 3), metadata=(*server.metadata, ("traceparent", traceparent))
        )
        assert response.success
        # One that fails: its code and its ErrorInfo reason are on its span.
        failing_trace, failing_parent, failing = caller()
        empty = tracking_pb2.BatchRequest(project_token="default")
        with pytest.raises(aio.AioRpcError) as refused:
            await stub.Batch(empty, metadata=(*server.metadata, ("traceparent", failing)))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = status_pb2.Status.FromString(dict(refused.value.trailing_metadata())["grpc-status-details-bin"])
        info = error_details_pb2.ErrorInfo()
        assert any(d.Unpack(info) for d in details.details)
        pid = server.proc.pid
        assert await stop(server) == 0
        spans = otlp.spans()

    mine = [s for s in spans if s.trace_id == trace_id]
    rpc = one_named(mine, f"{TRACKING}/Batch")
    # The caller's trace, its span the parent.
    assert rpc.parent_id == parent
    assert rpc.span.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert rpc.attributes == {
        "rpc.system": "grpc",
        "rpc.service": TRACKING,
        "rpc.method": "Batch",
        "rpc.grpc.status_code": 0,
    }
    assert rpc.resource["service.name"] == "batchgrpc"
    assert rpc.resource["process.pid"] == pid
    # The core decoded the batch, the store committed it; the core's plan
    # of the writes ran inside that commit, on the store's own thread.
    under_rpc = children(mine, rpc)
    assert "core.prepare_track_batch" in {s.name for s in under_rpc}
    commit = one_named([s for s in mine if s.name == "store.commit" and children(mine, s)], "store.commit")
    assert commit in under_rpc
    assert commit.attributes == {"db.system.name": "sqlite"}
    assert {s.name for s in children(mine, commit)} == {"core.profile_updates", "core.plan_ingest"}
    # Every span of the call is in its trace, under its RPC span.
    for span in mine:
        if span is not rpc:
            assert span.parent_id in {s.span_id for s in mine}, span.name

    failed = one_named([s for s in spans if s.trace_id == failing_trace], f"{TRACKING}/Batch")
    assert failed.parent_id == failing_parent
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert failed.attributes["error.type"] == info.reason
    # A caller's mistake is not the server's error (OpenTelemetry's RPC conventions).
    assert failed.span.status.code == trace_pb2.Status.STATUS_CODE_UNSET


async def test_events_carry_their_requests_traceparent_to_the_sink(tmp_path: Path) -> None:
    sink = tmp_path / "events.jsonl"
    tracked_trace, _, tracked = caller()
    bulk_trace, _, bulk_parent = caller()
    job_trace, _, job_parent = caller()
    async with receiver() as (otlp, env), served(tmp_path, env=env, args=("--sink", f"file://{sink}")) as server:
        await tracking_pb2_grpc.TrackingServiceStub(server.channel).Batch(
            tracking_batch("viewed", 2), metadata=(*server.metadata, ("traceparent", tracked))
        )
        created = await bulk_grpc.EventBulkCreateJobServiceStub(server.channel).CreateEventBulkCreateJob(
            request(body_of(*(one_event(f"b{k}@example.com", "Bought", "2026-11-01T10:00:00Z") for k in range(3)))),
            metadata=(("authorization", f"Klaviyo-API-Key {server.token}"), REVISION, ("traceparent", bulk_parent)),
        )
        assert created.event_bulk_create_job.id
        client = Client(server.channel, server.token)
        asset = await client.upload(b"email,event_name\na@example.com,signup\nb@example.com,signup\n")
        client.metadata = (*client.metadata, ("traceparent", job_parent))
        job = await client.create(
            asset.id,
            columns=[batch_job_pb2.Column(type="FULL_NAME_MATCH", name="email", value_type="EMAIL")],
        )
        await client.wait_for(job.id)

        def sent() -> list[dict[str, Any]] | None:
            lines = sink_lines(sink)
            sources = [line["headers"]["source"] for line in lines]
            wanted = {"TRACKING": 2, "BULK_CREATE": 3, "BATCH_JOB": 2, "NOTIFICATION": 2}
            return lines if all(sources.count(k) == n for k, n in wanted.items()) else None

        lines = await eventually(lambda: asyncio.to_thread(sent), seconds=60)
        assert await stop(server) == 0
        spans = otlp.spans()

    def rpc_span(trace_id: str, method: str) -> Span:
        return one_named([s for s in spans if s.trace_id == trace_id], method)

    by_source: dict[str, set[str]] = {}
    for line in lines:
        by_source.setdefault(line["headers"]["source"], set()).add(line["headers"]["traceparent"])
    # Each event's message names the span of the call that produced it.
    assert by_source["TRACKING"] == {f"00-{tracked_trace}-{rpc_span(tracked_trace, f'{TRACKING}/Batch').span_id}-01"}
    bulk_rpc = rpc_span(bulk_trace, f"{BULK}/CreateEventBulkCreateJob")
    assert by_source["BULK_CREATE"] == {f"00-{bulk_trace}-{bulk_rpc.span_id}-01"}
    job_rpc = rpc_span(job_trace, f"{JOBS}/CreateBatchJob")
    # A job's rows and its created and finished notifications: its creation's.
    assert by_source["BATCH_JOB"] == by_source["NOTIFICATION"] == {f"00-{job_trace}-{job_rpc.span_id}-01"}

    # The bulk job was applied in its request's trace, after the call.
    process = rpc_span(bulk_trace, "bulk.process")
    assert process.parent_id == bulk_rpc.span_id
    bulk_spans = [s for s in spans if s.trace_id == bulk_trace]
    assert "core.bulk_rows" in {s.name for s in children(bulk_spans, process)}
    # The job's file was read in its creation's trace, chunk by chunk.
    read = rpc_span(job_trace, "batch.read")
    assert read.parent_id == job_rpc.span_id
    job_spans = [s for s in spans if s.trace_id == job_trace]
    assert {"core.open_rows", "core.next_chunk", "store.commit"} <= {s.name for s in children(job_spans, read)}

    # The relay's sends: traces of their own, linked to their events' traces.
    sends = [s for s in spans if s.name == f"file:{sink} send"]
    assert sends
    assert all(not s.parent_id for s in sends)
    assert sum(int(s.attributes["messaging.batch.message_count"]) for s in sends) == len(lines)
    assert {s.attributes["messaging.system"] for s in sends} == {"file"}
    linked = {link.trace_id.hex() for s in sends for link in s.span.links}
    assert {tracked_trace, bulk_trace, job_trace} <= linked


async def test_a_bulk_jobs_kafka_messages_carry_its_requests_traceparent(tmp_path: Path) -> None:
    topic = new_topic()
    trace_id, _, traceparent = caller()
    sink = ("--sink", f"kafka://{kafka_bootstrap()}/{topic}")
    async with receiver() as (otlp, env), served(tmp_path, env=env, args=sink) as server:
        await bulk_grpc.EventBulkCreateJobServiceStub(server.channel).CreateEventBulkCreateJob(
            request(body_of(*(one_event(f"k{k}@example.com", "Bought", "2026-11-01T10:00:00Z") for k in range(2)))),
            metadata=(("authorization", f"Klaviyo-API-Key {server.token}"), REVISION, ("traceparent", traceparent)),
        )
        messages = await asyncio.to_thread(committed, topic, 2)
        assert await stop(server) == 0
        spans = otlp.spans()
    rpc = one_named([s for s in spans if s.trace_id == trace_id], f"{BULK}/CreateEventBulkCreateJob")
    assert [m["headers"]["traceparent"] for m in messages] == [f"00-{trace_id}-{rpc.span_id}-01"] * 2
    (send,) = [s for s in spans if s.name == f"kafka:{topic} send"]
    assert send.span.kind == trace_pb2.Span.SPAN_KIND_PRODUCER
    assert send.attributes == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.batch.message_count": 2,
    }
    assert [link.trace_id.hex() for link in send.span.links] == [trace_id]


async def test_each_worker_exports_its_own_spans(tmp_path: Path) -> None:
    async with receiver() as (otlp, env), served(tmp_path, workers=2, env={**GRACE, **env}) as server:
        pids = set(listening(server)["worker_pids"])
        calls = await calls_until_answered_by(server, pids)
        assert await stop(server) == 0
        spans = otlp.spans()
    rpcs = [s for s in spans if s.name == f"{TRACKING}/GetSystemTime"]
    assert len(rpcs) == calls
    # Each worker's own, told apart by its pid and index; none from the
    # supervisor, which serves no call.
    senders = {(s.resource["process.pid"], s.resource["batchgrpc.worker.index"]) for s in rpcs}
    assert {pid for pid, _ in senders} == pids
    assert sorted(index for _, index in senders) == [0, 1]


@asynccontextmanager
async def sidecar(server: Served) -> AsyncIterator[str]:
    """The REST sidecar in front of `server`; its base URL."""
    assert os.access(GATEWAY, os.X_OK), "the gateway is not built: `make test` builds it"
    proc = await asyncio.create_subprocess_exec(
        GATEWAY, "--listen", "127.0.0.1:0", "--backend", server.address, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
    match = re.search(r"listening on (\S+),", line)
    assert match, line
    try:
        yield f"http://{match.group(1)}"
    finally:
        proc.terminate()
        await proc.wait()


def post(url: str, body: Any, headers: dict[str, str]) -> int:
    data = json.dumps(body).encode()
    headers = {"content-type": "application/json", **headers}
    call = urllib.request.Request(url, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(call, timeout=30) as response:
        return int(response.status)


async def test_the_sidecar_passes_the_http_traceparent_on(tmp_path: Path) -> None:
    trace_id, parent, traceparent = caller()
    async with (
        receiver() as (otlp, env),
        served(tmp_path, env={**env, "OTEL_SERVICE_NAME": "ingest-edge"}) as server,
        sidecar(server) as base,
    ):
        body = json_format.MessageToDict(tracking_batch("viewed", 1), preserving_proto_field_name=True)
        headers = {"authorization": f"Bearer {server.token}", "traceparent": traceparent, "tracestate": "vendor=1"}
        status = await asyncio.to_thread(post, f"{base}/track/v2/projects/default/batch", body, headers)
        assert status == 200
        assert await stop(server) == 0
        spans = otlp.spans()
    rpc = one_named([s for s in spans if s.trace_id == trace_id], f"{TRACKING}/Batch")
    assert rpc.parent_id == parent
    # tracestate came along too, and is kept with the trace.
    assert rpc.span.trace_state == "vendor=1"
    # The standard variables configure the rest: here the service's name.
    assert rpc.resource["service.name"] == "ingest-edge"


async def test_without_an_endpoint_nothing_is_traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    sink = tmp_path / "events.jsonl"
    _, _, traceparent = caller()
    async with receiver() as (otlp, env), served(tmp_path, args=("--sink", f"file://{sink}")) as server:
        # Everything but the endpoint: still off.
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ
        stub = tracking_pb2_grpc.TrackingServiceStub(server.channel)
        await stub.Batch(tracking_batch("viewed", 2), metadata=(*server.metadata, ("traceparent", traceparent)))
        lines = await eventually(lambda: asyncio.to_thread(lambda: len(sink_lines(sink)) == 2 and sink_lines(sink)))
        logs = server.log_lines()
        assert await stop(server) == 0
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    # No provider was installed (it logs "tracing"), nothing was exported,
    # and the messages carry no traceparent.
    assert not [e for e in logs if e["msg"] == "tracing"]
    assert otlp.requests == []
    assert all("traceparent" not in line["headers"] for line in lines)
