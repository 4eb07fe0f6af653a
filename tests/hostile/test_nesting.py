"""Class 3, nesting: a `Struct` nested past Python's protobuf recursion
limit (about 30 levels inside a request) gets the API's own nesting error at
any depth, up to the 5 MB request limit, from a server process of its own;
other calls are answered within 100 ms meanwhile, nothing is stored and the
log has no traceback.

The requests are built as bytes (`protobuf.py`): Python's runtime cannot
build them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_pb2, event_pb2_grpc
from batchgrpc.track.v2 import tracking_pb2

from ..conftest import REVISION, RichError, rich_error
from . import raw as pb
from .served import Served, responsive, served

BULK = "/batchgrpc.events.v1.EventBulkCreateJobService/CreateEventBulkCreateJob"
TRACK = "/batchgrpc.track.v2.TrackingService/"
#: What the contract says for properties nested past 10 levels.
TOO_DEEP = "properties nest deeper than 10 levels"
#: A tracking command's error for a property nested past the decoder.
TRACK_TOO_DEEP = "Value of property 'p' nests too deep: a command may nest at most 20 levels."


def call(s: Served, method: str, response: Any) -> Callable[[bytes], Awaitable[Any]]:
    """`method` with the request as bytes, as the server receives it."""
    stub = s.channel.unary_unary(method, response_deserializer=response.FromString)
    metadata = (*s.metadata, REVISION) if "events" in method else s.metadata
    return lambda data: stub(data, metadata=metadata, timeout=30)


async def refused(s: Served, attempt: Awaitable[Any]) -> RichError:
    """The call's error, while pings are answered within 100 ms."""

    async def failing() -> aio.AioRpcError:
        with pytest.raises(aio.AioRpcError) as caught:
            await attempt
        return caught.value

    error, slowest = await responsive(s, failing())
    assert slowest < 0.1, f"a ping took {slowest * 1000:.0f} ms"
    return rich_error(error)


def no_traceback(s: Served) -> None:
    lines = s.log_lines()
    assert lines, "the server logs every call"
    assert not [line for line in lines if "unhandled exception" in json.dumps(line)]


def deep_bulk(levels: int, *, partial: bool = False) -> bytes:
    """A valid item, then one whose event's property `p` is `levels` deep."""
    good = pb.bulk_request(pb.bulk_item({"email": "good@example.com"}), partial=partial)
    return good + pb.bulk_deep_item("deep@example.com", pb.entry("p", pb.nested(levels)))


@pytest.mark.parametrize("levels", [50, 5_000])
async def test_a_bulk_request_nested_deep_is_nesting_too_deep_with_its_pointer(tmp_path: Path, levels: int) -> None:
    async with served(tmp_path) as s:
        create = call(s, BULK, bulk_pb2.CreateEventBulkCreateJobResponse)
        stored = s.stored()
        for partial in (False, True):
            # Nested past what the core decodes, the request fails whole even
            # with partial_success: Python's decoder never meets it.
            error = await refused(s, create(deep_bulk(levels, partial=partial)))
            assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
            assert error.bad_request is not None
            (violation,) = error.bad_request.field_violations
            # The property where the nesting passes 10 levels (`p` is level 2).
            assert violation.field == pb.bulk_pointer(1) + "/p" + "/n" * 9
            assert (violation.reason, violation.description) == ("NESTING_TOO_DEEP", TOO_DEEP)
        assert s.stored() == stored
        no_traceback(s)


async def test_five_megabytes_of_nested_lists_in_a_bulk_request(tmp_path: Path) -> None:
    data = pb.bulk_request(pb.bulk_item({"email": "good@example.com"})) + pb.bulk_deep_item(
        "deep@example.com", pb.entry("p", pb.nested_to_size(5 * 1024 * 1024 - 1024))
    )
    assert 4 << 20 < len(data) <= 5 << 20
    async with served(tmp_path) as s:
        create = call(s, BULK, bulk_pb2.CreateEventBulkCreateJobResponse)
        stored, rss = s.stored(), s.rss()
        error = await refused(s, create(data))
        assert error.info.reason == "INVALID_ARGUMENT"
        assert error.bad_request is not None
        (violation,) = error.bad_request.field_violations
        assert (violation.field, violation.reason) == (pb.bulk_pointer(1) + "/p" + "/0" * 9, "NESTING_TOO_DEEP")
        assert s.stored() == stored
        assert s.rss() - rss < 64 << 20, f"RSS grew by {(s.rss() - rss) >> 20} MiB"
        no_traceback(s)


async def test_partial_success_rejects_an_item_nested_within_the_decoder(tmp_path: Path) -> None:
    """Past 10 levels but within the core's 20, the item is rejected like any
    other violation, and the rest is stored."""
    async with served(tmp_path) as s:
        create = call(s, BULK, bulk_pb2.CreateEventBulkCreateJobResponse)
        error = await refused(s, create(deep_bulk(15)))
        assert error.bad_request is not None
        assert [v.reason for v in error.bad_request.field_violations] == ["NESTING_TOO_DEEP"]
        response = await create(deep_bulk(15, partial=True))
        job = response.event_bulk_create_job
        assert (job.event_count, job.rejected_count) == (2, 1)
        assert [(e.pointer, e.reason) for e in job.errors] == [
            (pb.bulk_pointer(1) + "/p" + "/n" * 9, "NESTING_TOO_DEEP")
        ]
        events = event_pb2_grpc.EventServiceStub(s.channel)
        for _ in range(100):
            listed = await events.ListEvents(
                event_pb2.ListEventsRequest(job_id=job.id), metadata=(*s.metadata, REVISION)
            )
            if listed.events:
                break
        assert [e.data["sku"] for e in listed.events] == ["A-1"]
        no_traceback(s)


@pytest.mark.parametrize("levels", [50, 5_000])
async def test_a_tracking_command_nested_deep_fails_alone(tmp_path: Path, levels: int) -> None:
    async with served(tmp_path) as s:
        track = call(s, TRACK + "Batch", tracking_pb2.BatchResponse)
        data = pb.batch(
            pb.command("customers", {"customer_ids": {"registered": "one@example.com"}, "properties": {"a": 1}}),
            pb.deep_command(
                "customers",
                {"customer_ids": {"registered": "deep@example.com"}},
                pb.entry("p", pb.nested(levels)),
                command_id="deep",
            ),
            pb.command(
                "customers/events",
                {"customer_ids": {"registered": "two@example.com"}, "event_type": "visit", "properties": {}},
            ),
        )
        stored = s.stored()
        response, slowest = await responsive(s, track(data))
        assert slowest < 0.1
        assert [(r.success, list(r.errors)) for r in response.results] == [
            (True, []),
            (False, [TRACK_TOO_DEEP]),
            (True, []),
        ]
        assert response.results[1].command_id == "deep"
        after = s.stored()
        # The two good commands: two new customers, one event.
        assert after["profiles"] - stored.get("profiles", 0) == 2
        assert after["events"] - stored.get("events", 0) == 1
        no_traceback(s)


async def test_a_tracking_batch_of_commands_nested_to_800_kb(tmp_path: Path) -> None:
    deep = pb.deep_command(
        "customers", {"customer_ids": {"registered": "deep@example.com"}}, pb.entry("p", pb.nested_to_size(780_000))
    )
    async with served(tmp_path) as s:
        track = call(s, TRACK + "Batch", tracking_pb2.BatchResponse)
        stored, rss = s.stored(), s.rss()
        response, slowest = await responsive(s, track(pb.batch(*[deep] * 49, pb.command("system/time"))))
        assert slowest < 0.1, f"a ping took {slowest * 1000:.0f} ms"
        assert [r.success for r in response.results] == [False] * 49 + [True]
        assert {e for r in response.results[:49] for e in r.errors} == {TRACK_TOO_DEEP}
        assert s.stored() == stored
        assert s.rss() - rss < 256 << 20, f"RSS grew by {(s.rss() - rss) >> 20} MiB"
        no_traceback(s)


@pytest.mark.parametrize("rpc", ["UpdateCustomerProperties", "AddEvent"])
@pytest.mark.parametrize("levels", [50, 5_000])
async def test_single_tracking_rpcs_nested_deep_are_invalid_argument(tmp_path: Path, rpc: str, levels: int) -> None:
    build = pb.update_customer if rpc == "UpdateCustomerProperties" else pb.add_event
    response = (
        tracking_pb2.UpdateCustomerPropertiesResponse
        if rpc == "UpdateCustomerProperties"
        else tracking_pb2.AddEventResponse
    )
    async with served(tmp_path) as s:
        single = call(s, TRACK + rpc, response)
        stored = s.stored()
        error = await refused(s, single(build(pb.entry("p", pb.nested(levels)))))
        assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
        assert error.message == TRACK_TOO_DEEP
        assert error.bad_request is not None
        assert [(v.field, v.description) for v in error.bad_request.field_violations] == [
            ("properties.p", TRACK_TOO_DEEP)
        ]
        assert s.stored() == stored
        # The same request, shallow, is tracked.
        assert (await single(build(pb.entry("p", pb.nested(3))))).success
        no_traceback(s)
