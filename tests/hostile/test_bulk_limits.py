"""Class 11 for bulk create events: every limit of a request's properties,
names and identifiers (API.md "Limits on everything a client sends", and
the bulk section), exactly at the limit and one over. Over it, the request
is INVALID_ARGUMENT with the violation's reason and JSON:API pointer, and
nothing is stored. No pointer or message echoes more than 256 characters of
what the client sent.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc import aio

from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc as bulk_grpc

from ..conftest import REVISION, Harness, bearer, rich_error
from . import raw

ITEM = "/data/attributes/events-bulk-create/data/0/attributes"
PROFILE = f"{ITEM}/profile/data"
EVENT = f"{ITEM}/events/data/0/attributes"


def document(profile: dict[str, Any] | None = None, **event: Any) -> dict[str, Any]:
    """One item: a profile (`id` taken out of the attributes) and one event
    whose attributes `event` changes."""
    attributes = {"email": "a@example.com"} if profile is None else dict(profile)
    data: dict[str, Any] = {"type": "profile", "attributes": attributes}
    if "id" in attributes:
        data["id"] = attributes.pop("id")
    body: dict[str, Any] = {
        "properties": {"sku": "A-1"},
        "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}},
    }
    body.update(event)
    item = {
        "type": "event-bulk-create",
        "attributes": {"profile": {"data": data}, "events": {"data": [{"type": "event", "attributes": body}]}},
    }
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [item]}}}}


def metric(name: str) -> dict[str, Any]:
    return {"data": {"type": "metric", "attributes": {"name": name}}}


def metric_with(service: str) -> dict[str, Any]:
    return {"data": {"type": "metric", "attributes": {"name": "Viewed", "service": service}}}


def profile_with(**attributes: Any) -> dict[str, Any]:
    return {"email": "a@example.com", **attributes}


def nested(levels: int) -> dict[str, Any]:
    """`{"p": {"n": ...}}`: the properties object is level 1."""
    value: dict[str, Any] = {}
    for _ in range(levels - 2):
        value = {"n": value}
    return {"p": value}


def keys(n: int) -> dict[str, Any]:
    return {f"k{i}": i for i in range(n)}


@dataclass(frozen=True)
class Limit:
    name: str
    at: dict[str, Any]
    over: dict[str, Any]
    pointer: str
    reason: str


N255, N256 = "é" * 255, "é" * 256
LIMITS = [
    Limit("event properties 400", document(properties=keys(400)), document(properties=keys(401)),
          f"{EVENT}/properties", "TOO_MANY_PROPERTIES"),
    Limit("profile properties 400", document({"email": "a@example.com", "properties": keys(400)}),
          document({"email": "a@example.com", "properties": keys(401)}),
          f"{PROFILE}/attributes/properties", "TOO_MANY_PROPERTIES"),
    Limit("event property name 255 characters", document(properties={N255: 1}), document(properties={N256: 1}),
          # A key in a pointer keeps 64 characters, the last `…`.
          f"{EVENT}/properties/{'é' * 63}…", "PROPERTY_NAME_TOO_LONG"),
    Limit("profile property name 255 characters", document({"email": "a@example.com", "properties": {N255: 1}}),
          document({"email": "a@example.com", "properties": {N256: 1}}),
          f"{PROFILE}/attributes/properties/{'é' * 63}…", "PROPERTY_NAME_TOO_LONG"),
    Limit("property name without NUL", document(properties={"a b": 1}), document(properties={"a\0b": 1}),
          f"{EVENT}/properties/a\0b", "INVALID_PROPERTY_NAME"),
    Limit("metric name under 128 characters", document(metric=metric("m" * 127)), document(metric=metric("m" * 128)),
          f"{EVENT}/metric/data/attributes/name", "METRIC_NAME_TOO_LONG"),
    Limit("metric name without NUL", document(metric=metric("a b")), document(metric=metric("a\0b")),
          f"{EVENT}/metric/data/attributes/name", "INVALID_METRIC_NAME"),
    Limit("customer identifier 1,000 characters", document({"external_id": "é" * 1000}),
          document({"external_id": "é" * 1001}), f"{PROFILE}/attributes/external_id", "IDENTIFIER_TOO_LONG"),
    Limit("email 1,000 characters", document({"email": "a@example.com"}),
          document({"email": "a" * 1000 + "@example.com"}), f"{PROFILE}/attributes/email", "IDENTIFIER_TOO_LONG"),
    Limit("profile id 64 characters", document({"id": "p" * 64}), document({"id": "p" * 65}),
          f"{PROFILE}/id", "PROFILE_ID_TOO_LONG"),
    Limit("event nesting 10 levels", document(properties=nested(10)), document(properties=nested(11)),
          f"{EVENT}/properties/p" + "/n" * 9, "NESTING_TOO_DEEP"),
    Limit("profile nesting 10 levels", document({"email": "a@example.com", "properties": nested(10)}),
          document({"email": "a@example.com", "properties": nested(11)}),
          f"{PROFILE}/attributes/properties/p" + "/n" * 9, "NESTING_TOO_DEEP"),
    Limit("string 100 KB", document(properties={"s": "x" * 100 * 1024}),
          document(properties={"s": "x" * (100 * 1024 + 1)}), f"{EVENT}/properties/s", "STRING_TOO_LONG"),
    Limit("a nested property name 255 characters", document(properties={"p": [{"q": {N255: 1}}]}),
          document(properties={"p": [{"q": {N256: 1}}]}), f"{EVENT}/properties/p/0/q/{'é' * 63}…",
          "PROPERTY_NAME_TOO_LONG"),
    Limit("a nested property name without NUL", document(properties={"p": {"q": {"a b": 1}}}),
          document(properties={"p": {"q": {"a\0b": 1}}}), f"{EVENT}/properties/p/q/a\0b", "INVALID_PROPERTY_NAME"),
    Limit("a nested profile property name 255 characters", document(profile_with(properties={"p": {N255: 1}})),
          document(profile_with(properties={"p": {N256: 1}})),
          f"{PROFILE}/attributes/properties/p/{'é' * 63}…", "PROPERTY_NAME_TOO_LONG"),
    *(
        Limit(f"profile {name} 255 characters", document(profile_with(**{name: N255})),
              document(profile_with(**{name: N256})), f"{PROFILE}/attributes/{name}", "STRING_TOO_LONG")
        for name in ("first_name", "last_name", "organization", "locale", "title")
    ),
    # A URL: 2,048 characters, what the web reliably carries.
    Limit("profile image 2,048 characters", document(profile_with(image="é" * 2048)),
          document(profile_with(image="é" * 2049)), f"{PROFILE}/attributes/image", "STRING_TOO_LONG"),
    *(
        Limit(f"location {name} 255 characters", document(profile_with(location={name: N255})),
              document(profile_with(location={name: N256})), f"{PROFILE}/attributes/location/{name}",
              "STRING_TOO_LONG")
        for name in ("address1", "address2", "city", "country", "region", "zip", "timezone", "ip")
    ),
    Limit("metric service 255 characters", document(metric=metric_with(N255)), document(metric=metric_with(N256)),
          f"{EVENT}/metric/data/attributes/service", "STRING_TOO_LONG"),
    Limit("unique_id 255 characters", document(unique_id=N255), document(unique_id=N256),
          f"{EVENT}/unique_id", "STRING_TOO_LONG"),
]  # fmt: skip


def request_of(body: dict[str, Any], **fields: Any) -> bulk_pb2.CreateEventBulkCreateJobRequest:
    request = bulk_pb2.CreateEventBulkCreateJobRequest(**fields)
    json_format.ParseDict(copy.deepcopy(body), request)
    return request


def create(harness: Harness, request: bulk_pb2.CreateEventBulkCreateJobRequest) -> Any:
    stub = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    return stub.CreateEventBulkCreateJob(request, metadata=(*bearer(harness.admin), REVISION))


@pytest.mark.parametrize("limit", LIMITS, ids=[limit.name for limit in LIMITS])
async def test_at_the_limit_passes_and_one_over_fails_with_its_pointer(harness: Harness, limit: Limit) -> None:
    before = raw.stored(harness.config.data_dir)
    with pytest.raises(aio.AioRpcError) as caught:
        await create(harness, request_of(limit.over))
    error = rich_error(caught.value)
    assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert error.bad_request is not None
    assert [(v.field, v.reason) for v in error.bad_request.field_violations] == [(limit.pointer, limit.reason)]
    assert raw.stored(harness.config.data_dir) == before

    response = await create(harness, request_of(limit.at))
    assert response.event_bulk_create_job.status == bulk_pb2.EventBulkCreateJob.QUEUED
    assert list(response.event_bulk_create_job.errors) == []


async def test_request_id_at_most_128_characters(harness: Harness) -> None:
    before = raw.stored(harness.config.data_dir)
    with pytest.raises(aio.AioRpcError) as caught:
        await create(harness, request_of(document(), request_id="r" * 129))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.bad_request is not None
    assert [v.field for v in error.bad_request.field_violations] == ["request_id"]
    assert raw.stored(harness.config.data_dir) == before
    await create(harness, request_of(document(), request_id="r" * 128))


async def test_pointers_and_messages_echo_at_most_256_characters(harness: Harness) -> None:
    huge = "h" * 100_000
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(10):
        # Names within the limit (a longer one is a violation of its own),
        # clipped in the pointer.
        deep = {"k" * 250: deep}
    body = document(
        {"email": huge, "phone_number": "x" * 999},
        properties={huge: deep},
        metric=metric("m"),
        value_currency=huge,
        unique_id=huge,
        time=huge,
    )
    body["data"]["attributes"]["events-bulk-create"]["data"][0]["type"] = huge
    with pytest.raises(aio.AioRpcError) as caught:
        await create(harness, request_of(body))
    error = rich_error(caught.value)
    assert error.bad_request is not None
    got = {v.reason: v for v in error.bad_request.field_violations}
    assert set(got) >= {
        "INVALID_TYPE",
        "IDENTIFIER_TOO_LONG",
        "INVALID_PHONE_NUMBER",
        "PROPERTY_NAME_TOO_LONG",
        "NESTING_TOO_DEEP",
        "INVALID_TIME",
        "INVALID_CURRENCY",
        "STRING_TOO_LONG",
    }
    for violation in error.bad_request.field_violations:
        for text in (violation.field, violation.description):
            assert text.count("h") + text.count("k") + text.count("x") <= 256 + 10, text
    # The deep pointer keeps its base and its last keys, the middle elided.
    assert got["NESTING_TOO_DEEP"].field == f"{EVENT}/properties/…/{'k' * 63}…/{'k' * 63}…"
