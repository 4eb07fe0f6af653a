"""Rate limits, payload limits and the revision header, through a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc import aio

from batchgrpc import server
from batchgrpc.config import Rate, RateLimitConfig
from batchgrpc.errors import Api
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc as bulk_grpc
from batchgrpc.events.v1 import event_pb2, event_pb2_grpc
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import REVISION, Harness, bearer, make_config, rich_error


@asynccontextmanager
async def serving(data_dir: Path, **rates: str) -> AsyncIterator[Harness]:
    limits = RateLimitConfig(
        rates={**RateLimitConfig().rates, **{Api(k): Rate.parse_many(v) for k, v in rates.items()}}
    )
    config = make_config(data_dir, rate_limits=limits)
    running = await server.start(config)
    async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        try:
            yield Harness(running, config, channel)
        finally:
            await server.stop(running, 0)


def trailing(call_metadata: object) -> dict[str, str]:
    return {k: v for k, v in call_metadata or ()}  # type: ignore[attr-defined]


async def test_rate_limit_is_reported_on_success_and_enforced_with_retry_info(tmp_path: Path) -> None:
    async with serving(tmp_path, tracking="2/s") as h:
        stub = tracking_pb2_grpc.TrackingServiceStub(h.channel)
        request = tracking_pb2.GetSystemTimeRequest(project_token="default")
        for remaining in ("1", "0"):
            call = stub.GetSystemTime(request, metadata=bearer(h.admin))
            await call
            md = trailing(await call.trailing_metadata())
            assert md["ratelimit-limit"] == "2"
            assert md["ratelimit-remaining"] == remaining
            assert int(md["ratelimit-reset"]) >= 1
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.GetSystemTime(request, metadata=bearer(h.admin))
        error = rich_error(caught.value)
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.info.reason == "RATE_LIMITED"
        assert error.info.metadata["code"] == "too_many_requests"
        assert error.retry is not None
        assert 0 < error.retry.retry_delay.ToNanoseconds() <= 500_000_000
        assert error.trailing["retry-after"] == "1"
        assert error.trailing["ratelimit-remaining"] == "0"


async def test_rate_limits_are_per_account(tmp_path: Path) -> None:
    async with serving(tmp_path, tracking="1/s") as h:
        other = await h.key(["events:set"], account="other")
        stub = tracking_pb2_grpc.TrackingServiceStub(h.channel)
        await stub.GetSystemTime(tracking_pb2.GetSystemTimeRequest(project_token="default"), metadata=bearer(h.admin))
        # The default account is spent; another account is not.
        await stub.GetSystemTime(tracking_pb2.GetSystemTimeRequest(project_token="other"), metadata=bearer(other))


async def test_a_rate_limited_batch_tracks_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path, tracking="1/s") as h:
        stub = tracking_pb2_grpc.TrackingServiceStub(h.channel)
        request = tracking_pb2.BatchRequest(project_token="default")
        command = request.commands.add(name="customers/events")
        command.data.update({"customer_ids": {"registered": "r-1"}, "event_type": "view"})
        await stub.Batch(request, metadata=bearer(h.admin))
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.Batch(request, metadata=bearer(h.admin))
        error = rich_error(caught.value)
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.trailing["retry-after"] == "1"
        # Upstream drops a throttled request's data; we refuse it before
        # any of it is tracked, and say so.
        events = await event_pb2_grpc.EventServiceStub(h.channel).ListEvents(
            event_pb2.ListEventsRequest(), metadata=(*bearer(h.admin), REVISION)
        )
        assert len(events.events) == 1


async def test_bulk_rate_limit_uses_klaviyos_code(tmp_path: Path) -> None:
    async with serving(tmp_path, bulk_events="1/s,150/min") as h:
        stub = bulk_grpc.EventBulkCreateJobServiceStub(h.channel)
        metadata = (*bearer(h.admin), REVISION)
        await stub.CreateEventBulkCreateJob(bulk_request(1), metadata=metadata)  # allowed through
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.CreateEventBulkCreateJob(bulk_request(1), metadata=metadata)
        error = rich_error(caught.value)
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.info.metadata["code"] == "throttled"
        assert error.message.startswith("Request was throttled.")


def bulk_request(events: int, *, blob: int = 0) -> bulk.CreateEventBulkCreateJobRequest:
    request = bulk.CreateEventBulkCreateJobRequest()
    request.data.type = "event-bulk-create-job"
    item = request.data.attributes.events_bulk_create.data.add(type="event-bulk-create")
    item.attributes.profile.data.type = "profile"
    item.attributes.profile.data.attributes.email = "a@example.com"
    for i in range(events):
        event = item.attributes.events.data.add(type="event")
        event.attributes.metric.data.type = "metric"
        event.attributes.metric.data.attributes.name = "Viewed"
        event.attributes.properties["n"] = i
    if blob:
        item.attributes.events.data[0].attributes.properties["blob"] = "x" * blob
    return request


async def test_bulk_request_over_5mb_gets_the_apis_own_invalid_argument(harness: Harness) -> None:
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    request = bulk_request(1, blob=5 * 1024 * 1024)
    assert request.ByteSize() > 5 * 1024 * 1024 > 4 * 1024 * 1024  # past the transport's usual default
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.CreateEventBulkCreateJob(request, metadata=(*bearer(harness.admin), REVISION))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == "PAYLOAD_TOO_LARGE"
    assert error.info.metadata["code"] == "invalid"
    assert [v.field for v in error.bad_request.field_violations] == ["/data"]  # type: ignore[union-attr]
    assert "5 MB" in error.message


async def test_bulk_request_over_1000_events_is_refused(harness: Harness) -> None:
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.CreateEventBulkCreateJob(bulk_request(1001), metadata=(*bearer(harness.admin), REVISION))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == "TOO_MANY_ITEMS"
    assert [v.field for v in error.bad_request.field_violations] == [  # type: ignore[union-attr]
        "/data/attributes/events-bulk-create/data"
    ]


async def test_a_bulk_request_at_the_limits_is_accepted(harness: Harness) -> None:
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    response = await stub.CreateEventBulkCreateJob(bulk_request(1000), metadata=(*bearer(harness.admin), REVISION))
    job = response.event_bulk_create_job
    assert (job.Status.Name(job.status), job.event_count) == ("QUEUED", 1000)


async def test_an_invalid_bulk_request_lists_every_violation_with_its_pointer(harness: Harness) -> None:
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    request = bulk_request(2)
    profile = request.data.attributes.events_bulk_create.data[0].attributes.profile.data.attributes
    profile.email = "not-an-email"
    profile.phone_number = "12345"
    request.data.attributes.events_bulk_create.data[0].attributes.events.data[1].attributes.value_currency = "XYZ"
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.CreateEventBulkCreateJob(request, metadata=(*bearer(harness.admin), REVISION))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == "INVALID_ARGUMENT"
    assert error.info.metadata["code"] == "invalid"
    assert error.message.startswith("The payload provided in the request is invalid")
    item = "/data/attributes/events-bulk-create/data/0/attributes"
    assert [(v.field, v.reason) for v in error.bad_request.field_violations] == [  # type: ignore[union-attr]
        (f"{item}/profile/data/attributes/email", "INVALID_EMAIL"),
        (f"{item}/profile/data/attributes/phone_number", "INVALID_PHONE_NUMBER"),
        (f"{item}/events/data/1/attributes/value_currency", "INVALID_CURRENCY"),
    ]


@pytest.mark.parametrize(
    ("revision", "reason"),
    [(None, "MISSING_REVISION"), ("July 2026", "INVALID_REVISION"), ("2026-02-30", "INVALID_REVISION")],
)
async def test_events_api_requires_a_valid_revision(harness: Harness, revision: str | None, reason: str) -> None:
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    metadata = bearer(harness.admin) + ((("revision", revision),) if revision else ())
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.CreateEventBulkCreateJob(bulk_request(1), metadata=metadata)
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == reason
    assert [v.field for v in error.bad_request.field_violations] == ["revision"]  # type: ignore[union-attr]


@pytest.mark.parametrize("revision", ["2026-10-16", "2023-10-15", "2026-07-15.beta", "2099-01-15"])
async def test_a_revision_upstream_does_not_document_is_its_404(harness: Harness, revision: str) -> None:
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.CreateEventBulkCreateJob(bulk_request(1), metadata=(*bearer(harness.admin), ("revision", revision)))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert (error.info.reason, error.info.metadata["code"]) == ("UNKNOWN_REVISION", "not_found")
    assert error.message == "No valid revisions found for method"
    assert [v.field for v in error.bad_request.field_violations] == ["revision"]  # type: ignore[union-attr]


@pytest.mark.parametrize(("revision", "accepted"), [("2026-04-15", False), ("2026-07-15", True), ("2026-10-15", True)])
async def test_the_revision_sets_how_early_an_event_may_be(harness: Harness, revision: str, accepted: bool) -> None:
    # "must be after the year 2000" up to 2026-04-15, 1990 from 2026-07-15.
    request = bulk_request(1)
    request.data.attributes.events_bulk_create.data[0].attributes.events.data[
        0
    ].attributes.time = "1995-06-01T00:00:00Z"
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    metadata = (*bearer(harness.admin), ("revision", revision))
    if accepted:
        assert (await stub.CreateEventBulkCreateJob(request, metadata=metadata)).event_bulk_create_job.id
        return
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.CreateEventBulkCreateJob(request, metadata=metadata)
    [violation] = rich_error(caught.value).bad_request.field_violations  # type: ignore[union-attr]
    assert violation.reason == "TIME_OUT_OF_RANGE"
    assert "after 2000-01-01" in violation.description


@pytest.mark.parametrize("revision", ["2026-07-15", "2024-10-15.pre", "2026-10-15"])
async def test_valid_revisions_pass(harness: Harness, revision: str) -> None:
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    response = await stub.CreateEventBulkCreateJob(
        bulk_request(1), metadata=(*bearer(harness.admin), ("revision", revision))
    )
    assert response.event_bulk_create_job.id


def track_batch(commands: int, *, size: int = 0) -> tracking_pb2.BatchRequest:
    request = tracking_pb2.BatchRequest(project_token="default")
    for i in range(commands):
        command = request.commands.add(name="customers", command_id=str(i))
        command.data["customer_ids"] = {"registered": f"user{i}"}
        if size:
            command.data["properties"] = {"note": "x" * size}
    return request


async def test_tracking_batch_without_commands_says_no_commands(harness: Harness) -> None:
    stub = tracking_pb2_grpc.TrackingServiceStub(harness.channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.Batch(track_batch(0), metadata=bearer(harness.admin))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "No commands"
    assert error.info.reason == "NO_COMMANDS"


async def test_tracking_batch_of_51_commands_is_refused(harness: Harness) -> None:
    stub = tracking_pb2_grpc.TrackingServiceStub(harness.channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.Batch(track_batch(51), metadata=bearer(harness.admin))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == "TOO_MANY_ITEMS"
    assert [v.field for v in error.bad_request.field_violations] == ["commands"]  # type: ignore[union-attr]


async def test_tracking_batch_over_50_times_800kb_is_refused_not_dropped_by_the_transport(harness: Harness) -> None:
    stub = tracking_pb2_grpc.TrackingServiceStub(harness.channel)
    request = track_batch(50, size=850 * 1024)
    assert request.ByteSize() > 40 * 1024 * 1024
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.Batch(request, metadata=bearer(harness.admin))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == "PAYLOAD_TOO_LARGE"


def test_the_transport_limit_is_above_every_apis_own() -> None:
    from batchgrpc import _core
    from batchgrpc.config import Config

    limit = Config().max_receive_message_bytes
    assert limit > _core.BULK_EVENTS_MAX_REQUEST_BYTES
    assert limit > _core.TRACK_MAX_REQUEST_BYTES + 1024 * 1024
