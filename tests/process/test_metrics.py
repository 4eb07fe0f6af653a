"""`--metrics-listen`: Prometheus text at /metrics after known traffic, with
exact figures, from one process and from a group of workers (summed by the
supervisor), and the store's gauges agreeing with the store."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path

import grpc
import pytest
from grpc import aio
from prometheus_client.parser import text_string_to_metric_families

from batchgrpc import metrics
from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc as bulk_grpc
from batchgrpc.events.v1 import event_pb2, event_pb2_grpc
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import REVISION, eventually
from ..hostile.served import Served, served
from ..wire.batches_client import Client
from ..wire.test_bulk import body_of, one_event, request
from .test_workers import GRACE, calls_until_answered_by, listening, rpc_pids, track, until

#: Figures by sample name and labels.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

TRACKING = "batchgrpc.track.v2.TrackingService"
EVENTS = "batchgrpc.events.v1.EventService"
BULK = "batchgrpc.events.v1.EventBulkCreateJobService"
JOBS = "batchgrpc.batches.v6.BatchJobService"
FILES = "batchgrpc.batches.v6.FileAssetService"

#: Limits that the traffic here never reaches, but one read a day: the
#: second ListEvents of an account is refused.
LIMITS = """
[rate_limits]
batches = "100000/s"
bulk_events = "100000/s"
tracking = "100000/s"
events_read = "1/h"
"""

CSV = b"email,event_name\n" + b"".join(
    b"%s,signup\n" % email for email in (b"a@example.com", b"not-an-email", b"b@example.com", b"", b"c@example.com")
)
RULES = [
    batch_job_pb2.Column(type="FULL_NAME_MATCH", name="email", validation_policy="REQUIRED_VALUE", value_type="EMAIL")
]


def config_file(tmp_path: Path) -> str:
    path = tmp_path / "limits.toml"
    path.write_text(LIMITS)
    return str(path)


def metrics_port(server: Served) -> int:
    (entry,) = [e for e in server.log_lines() if e["msg"] == "metrics serving"]
    return int(entry["port"])  # type: ignore[call-overload]


async def scrape(server: Served) -> Samples:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port(server)}/metrics", timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return str(response.read().decode())

    text = await asyncio.to_thread(get)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def handled(samples: Samples, service: str, method: str, code: str, kind: str = "unary") -> float:
    return value(
        samples,
        "grpc_server_handled_total",
        grpc_type=kind,
        grpc_service=service,
        grpc_method=method,
        grpc_code=code,
    )


def of_method(samples: Samples, name: str, service: str, method: str, kind: str = "unary", **more: str) -> float:
    return value(samples, name, grpc_type=kind, grpc_service=service, grpc_method=method, **more)


async def scrape_until(server: Served, wanted: Mapping[tuple[str, frozenset[tuple[str, str]]], float]) -> Samples:
    """Scrapes until the figures in `wanted` are there: work that goes on
    after a call returns (a bulk job applied, a gauge read) lands soon."""

    async def check() -> Samples | None:
        samples = await scrape(server)
        return samples if all(samples.get(k, 0.0) == v for k, v in wanted.items()) else None

    found = await eventually(check, seconds=60, every=0.2)
    assert found is not None
    return found


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


async def list_events(server: Served) -> grpc.StatusCode:
    """One ListEvents on a fresh channel; its code."""
    async with aio.insecure_channel(server.address) as channel:
        try:
            await event_pb2_grpc.EventServiceStub(channel).ListEvents(
                event_pb2.ListEventsRequest(), metadata=(*server.metadata, REVISION), timeout=10
            )
        except aio.AioRpcError as e:
            return e.code()
    return grpc.StatusCode.OK


async def test_one_process_exports_exact_figures_for_known_traffic(tmp_path: Path) -> None:
    async with served(
        tmp_path,
        env={"BATCHGRPC_NO_RATE_LIMITS": "0"},
        args=("--config", config_file(tmp_path), "--metrics-listen", "127.0.0.1:0"),
    ) as server:
        # Three tracking batches of four events, and one with no commands.
        await track(server, "viewed", batches=3, per_batch=4)
        stub = tracking_pb2_grpc.TrackingServiceStub(server.channel)
        with pytest.raises(aio.AioRpcError) as invalid:
            await stub.Batch(tracking_pb2.BatchRequest(project_token="default"), metadata=server.metadata)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # No key at all.
        with pytest.raises(aio.AioRpcError) as anonymous:
            await stub.GetSystemTime(tracking_pb2.GetSystemTimeRequest(project_token="default"))
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A bulk request of two events.
        bulk = bulk_grpc.EventBulkCreateJobServiceStub(server.channel)
        items = [one_event(f"p{k}@example.com", "Viewed", "2026-11-01T10:00:00Z", f"u-{k}") for k in range(2)]
        created = await bulk.CreateEventBulkCreateJob(
            request(body_of(*items)), metadata=(("authorization", f"Klaviyo-API-Key {server.token}"), REVISION)
        )
        assert created.event_bulk_create_job.id
        # One read allowed, then refused by the limit.
        assert await list_events(server) == grpc.StatusCode.OK
        assert await list_events(server) == grpc.StatusCode.RESOURCE_EXHAUSTED
        # A batch job of five rows, two of which fail their rule.
        client = Client(server.channel, server.token)
        asset = await client.upload(CSV)
        job = await client.create(asset.id, columns=RULES)
        finished = await client.wait_for(job.id)
        assert (finished.success_rows, finished.failed_rows) == (3, 2)

        samples = await scrape_until(
            server,
            {
                key("batchgrpc_events_dispatched_total", source="BULK_CREATE"): 2,
                key("batchgrpc_jobs", kind="bulk", status="COMPLETE"): 1,
                key("batchgrpc_jobs", kind="batch", status="DONE"): 1,
            },
        )
        assert handled(samples, TRACKING, "Batch", "OK") == 3
        assert handled(samples, TRACKING, "Batch", "InvalidArgument") == 1
        assert handled(samples, TRACKING, "GetSystemTime", "Unauthenticated") == 1
        assert handled(samples, BULK, "CreateEventBulkCreateJob", "OK") == 1
        assert handled(samples, EVENTS, "ListEvents", "OK") == 1
        assert handled(samples, EVENTS, "ListEvents", "ResourceExhausted") == 1
        assert handled(samples, FILES, "UploadFileAsset", "OK", "client_stream") == 1
        assert handled(samples, JOBS, "CreateBatchJob", "OK") == 1
        assert handled(samples, JOBS, "WatchBatchJob", "OK", "server_stream") == 1
        assert of_method(samples, "grpc_server_started_total", TRACKING, "Batch") == 4
        assert of_method(samples, "grpc_server_msg_received_total", TRACKING, "Batch") == 4
        assert of_method(samples, "grpc_server_msg_sent_total", TRACKING, "Batch") == 3
        # The metadata message and the file's one chunk.
        assert of_method(samples, "grpc_server_msg_received_total", FILES, "UploadFileAsset", "client_stream") == 2
        # Every call of a method lands in the histogram, in Go's default buckets.
        assert of_method(samples, "grpc_server_handling_seconds_count", TRACKING, "Batch") == 4
        buckets = {
            float(dict(labels)["le"])
            for name, labels in samples
            if name == "grpc_server_handling_seconds_bucket" and ("grpc_method", "Batch") in labels
        }
        assert buckets == {*metrics.HANDLING_BUCKETS, float("inf")}
        assert of_method(samples, "grpc_server_handling_seconds_bucket", TRACKING, "Batch", le="+Inf") == 4

        assert value(samples, "batchgrpc_rate_limited_total", api="events_read") == 1
        assert value(samples, "batchgrpc_batch_rows_total", result="success") == 3
        assert value(samples, "batchgrpc_batch_rows_total", result="failed") == 2
        assert value(samples, "batchgrpc_events_dispatched_total", source="TRACKING") == 12
        assert value(samples, "batchgrpc_events_dispatched_total", source="BATCH_JOB") == 3
        # Created and finished.
        assert value(samples, "batchgrpc_events_dispatched_total", source="NOTIFICATION") == 2
        # The log sink has every event once it is committed.
        assert value(samples, "batchgrpc_events_undelivered") == 0
        assert ("batchgrpc_events_undelivered", frozenset()) in samples
        assert value(samples, "batchgrpc_jobs", kind="batch", status="IN_PROGRESS") == 0
        assert value(samples, "batchgrpc_jobs", kind="bulk", status="QUEUED") == 0


async def test_workers_export_the_groups_figures_and_the_gauges_agree_with_the_store(tmp_path: Path) -> None:
    # A sink whose directory does not exist: it takes nothing, so every
    # event stays undelivered in the log.
    sink = tmp_path / "not-yet" / "events.jsonl"
    async with served(
        tmp_path,
        workers=2,
        env={**GRACE, "BATCHGRPC_NO_RATE_LIMITS": "0", "BATCHGRPC_METRICS_LISTEN": "127.0.0.1:0"},
        args=("--config", config_file(tmp_path), "--sink", f"file://{sink}"),
    ) as server:
        pids = set(listening(server)["worker_pids"])
        # The supervisor serves the metrics, not a worker.
        (serving,) = [e for e in server.log_lines() if e["msg"] == "metrics serving"]
        assert serving["pid"] == server.proc.pid
        calls = await calls_until_answered_by(server, pids)
        metric = f"m-{uuid.uuid4().hex[:8]}"
        await track(server, metric, batches=20, per_batch=5)
        tracked_by = {e["pid"] for e in server.log_lines() if e["msg"] == "rpc" and e["method"].endswith("/Batch")}
        assert tracked_by == pids, "both workers tracked"
        # The limit is the account's across workers: one read, then refusals.
        codes = [await list_events(server) for _ in range(4)]
        assert codes == [grpc.StatusCode.OK] + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3

        samples = await scrape_until(server, {key("batchgrpc_events_undelivered"): 100})
        assert handled(samples, TRACKING, "GetSystemTime", "OK") == calls
        assert handled(samples, TRACKING, "Batch", "OK") == 20
        assert handled(samples, EVENTS, "ListEvents", "OK") == 1
        assert handled(samples, EVENTS, "ListEvents", "ResourceExhausted") == 3
        assert value(samples, "batchgrpc_rate_limited_total", api="events_read") == 3
        assert value(samples, "batchgrpc_events_dispatched_total", source="TRACKING") == 100
        assert value(samples, "batchgrpc_jobs", kind="batch", status="DONE") == 0

        # A worker killed and replaced: the group's totals keep its calls.
        first = int(listening(server)["worker_pids"][0])
        os.kill(first, signal.SIGKILL)
        await until(lambda: any(e["msg"] == "worker started" for e in server.log_lines()), 20, "a replacement")
        (started,) = [e for e in server.log_lines() if e["msg"] == "worker started"]
        new = int(started["worker_pid"])  # type: ignore[call-overload]
        await until(
            lambda: any(e["msg"] == "worker serving" and e["pid"] == new for e in server.log_lines()),
            30,
            "the replacement serves",
        )
        more = await calls_until_answered_by(server, {new})
        assert new in rpc_pids(server)
        samples = await scrape_until(server, {key("batchgrpc_events_undelivered"): 100})
        assert handled(samples, TRACKING, "GetSystemTime", "OK") == calls + more
        assert handled(samples, TRACKING, "Batch", "OK") == 20
        assert value(samples, "batchgrpc_events_dispatched_total", source="TRACKING") == 100
