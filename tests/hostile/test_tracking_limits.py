"""Class 11 for tracking: every limit of a command's names and ids (API.md
"Limits on everything a client sends"), exactly at the limit and one over.
Over it, the command fails alone with its own error (in a batch; the other
commands are stored) or the single-command RPC is INVALID_ARGUMENT naming
the field, and nothing of it is stored. No error echoes more than 256
characters of what the client sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc import aio

from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import Harness, bearer, rich_error
from . import raw


@dataclass(frozen=True)
class Limit:
    """A command's data at a limit and one past it, and the error past it."""

    name: str
    command: str
    at: dict[str, Any]
    over: dict[str, Any]
    field: str
    error: str


def event(event_type: str = "visit", ids: dict[str, Any] | None = None, **properties: Any) -> dict[str, Any]:
    return {"customer_ids": ids or {"registered": "a@example.com"}, "event_type": event_type, "properties": properties}


def customer(ids: dict[str, Any] | None = None, **properties: Any) -> dict[str, Any]:
    return {"customer_ids": ids or {"registered": "a@example.com"}, "properties": properties}


def nested_object(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


N255, N256 = "é" * 255, "é" * 256
#: A name in a field path keeps 64 characters, the last of them `…`.
N256_IN_FIELD = "é" * 63 + "…"
LIMITS = [
    Limit(
        "property name 255 characters",
        "customers",
        customer(**{N255: 1}),
        customer(**{N256: 1}),
        f"properties.{N256_IN_FIELD}",
        f"Property name '{N256}' must be at most 255 characters.",
    ),
    Limit(
        "event property name 255 characters",
        "customers/events",
        event(**{N255: 1}),
        event(**{N256: 1}),
        f"properties.{N256_IN_FIELD}",
        f"Property name '{N256}' must be at most 255 characters.",
    ),
    Limit(
        "property name without NUL",
        "customers",
        customer(**{"a b": 1}),
        customer(**{"a\0b": 1}),
        "properties.a\\0b",
        "Property name 'a\\0b' must not contain NUL characters.",
    ),
    Limit(
        "event_type 255 characters",
        "customers/events",
        event(N255),
        event(N256),
        "event_type",
        "Field 'event_type' must be at most 255 characters.",
    ),
    Limit(
        "event_type without NUL",
        "customers/events",
        event("a b"),
        event("a\0b"),
        "event_type",
        "Field 'event_type' must not contain NUL characters.",
    ),
    Limit(
        "customer id name 255 characters",
        "customers",
        customer({N255: "a"}),
        customer({N256: "a"}),
        f"customer_ids.{N256_IN_FIELD}",
        f"Customer id name '{N256}' must be at most 255 characters.",
    ),
    Limit(
        "customer id name without NUL",
        "customers/events",
        event(ids={"cookie id": "a"}),
        event(ids={"cookie\0id": "a"}),
        "customer_ids.cookie\\0id",
        "Customer id name 'cookie\\0id' must not contain NUL characters.",
    ),
    Limit(
        "customer id 1,000 characters",
        "customers",
        customer({"registered": "é" * 1000}),
        customer({"registered": "é" * 1001}),
        "customer_ids.registered",
        "Customer id 'registered' must be at most 1000 characters.",
    ),
    Limit(
        "event customer id 1,000 characters",
        "customers/events",
        event(ids={"registered": "i" * 1000}),
        event(ids={"registered": "i" * 1001}),
        "customer_ids.registered",
        "Customer id 'registered' must be at most 1000 characters.",
    ),
    Limit(
        "a key inside a property value 255 characters",
        "customers/events",
        event(p=[{"q": {N255: 1}}]),
        event(p=[{"q": {N256: 1}}]),
        "properties.p",
        "Value of property 'p' has a key of more than 255 characters.",
    ),
    Limit(
        "a key inside a property value without NUL",
        "customers",
        customer(p={"q": {"a b": 1}}),
        customer(p={"q": {"a\0b": 1}}),
        "properties.p",
        "Value of property 'p' has a key with a NUL character.",
    ),
    Limit(
        # data (1) > properties (2) > the property's own object (3): 18
        # levels of it reach the 20 the core decodes.
        "nesting 20 levels",
        "customers",
        customer(p=nested_object(18)),
        customer(p=nested_object(19)),
        "properties.p",
        "Value of property 'p' nests too deep: a command may nest at most 20 levels.",
    ),
    Limit(
        "property value under 16 KB",
        "customers",
        customer(note="x" * (16 * 1024 - 1)),
        customer(note="x" * (16 * 1024)),
        "properties.note",
        "Value of property 'note' must be less than 16 KB.",
    ),
]


def batch_of(*commands: tuple[str, dict[str, Any]]) -> tracking_pb2.BatchRequest:
    request = tracking_pb2.BatchRequest(project_token="default")
    for name, data in commands:
        request.commands.add(name=name).data.update(data)
    return request


def stub(harness: Harness) -> tracking_pb2_grpc.TrackingServiceStub:
    return tracking_pb2_grpc.TrackingServiceStub(harness.channel)


@pytest.mark.parametrize("limit", LIMITS, ids=[limit.name for limit in LIMITS])
async def test_a_command_at_the_limit_runs_and_one_over_fails_alone(harness: Harness, limit: Limit) -> None:
    tracking = stub(harness)
    other = ("customers", customer({"registered": "other@example.com"}, plan="gold"))
    before = raw.stored(harness.config.data_dir)
    over = await tracking.Batch(batch_of((limit.command, limit.over), other), metadata=bearer(harness.admin))
    assert [(r.success, list(r.errors)) for r in over.results] == [(False, [limit.error]), (True, [])]
    after = raw.stored(harness.config.data_dir)
    # Only the other command's customer.
    assert (after["profiles"] - before["profiles"], after["events"] - before["events"]) == (1, 0)

    at = await tracking.Batch(batch_of((limit.command, limit.at)), metadata=bearer(harness.admin))
    assert [(r.success, list(r.errors)) for r in at.results] == [(True, [])]
    stored = raw.stored(harness.config.data_dir)
    assert stored["profiles"] - after["profiles"] == 1
    assert stored["events"] - after["events"] == (limit.command == "customers/events")


def single(harness: Harness, name: str, data: dict[str, Any]) -> Any:
    """The single-command RPC of command `name` with `data` as its fields."""
    tracking = stub(harness)
    ids = {k: str(v) for k, v in data["customer_ids"].items()}
    if name == "customers":
        update = tracking_pb2.UpdateCustomerPropertiesRequest(project_token="default", customer_ids=ids)
        update.properties.update(data["properties"])
        return tracking.UpdateCustomerProperties(update, metadata=bearer(harness.admin))
    add = tracking_pb2.AddEventRequest(project_token="default", customer_ids=ids, event_type=data["event_type"])
    add.properties.update(data["properties"])
    return tracking.AddEvent(add, metadata=bearer(harness.admin))


@pytest.mark.parametrize("limit", LIMITS, ids=[limit.name for limit in LIMITS])
async def test_a_single_command_rpc_over_the_limit_is_invalid_argument(harness: Harness, limit: Limit) -> None:
    before = raw.stored(harness.config.data_dir)
    with pytest.raises(aio.AioRpcError) as caught:
        await single(harness, limit.command, limit.over)
    error = rich_error(caught.value)
    assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert error.message == limit.error
    assert error.bad_request is not None
    assert [(v.field, v.description) for v in error.bad_request.field_violations] == [(limit.field, limit.error)]
    assert raw.stored(harness.config.data_dir) == before
    assert (await single(harness, limit.command, limit.at)).success


@pytest.mark.parametrize(
    ("command_id", "error"),
    [
        ("é" * 256, "Field 'command_id' must be at most 255 characters."),
        ("a\0b", "Field 'command_id' must not contain NUL characters."),
    ],
)
async def test_a_command_id_at_the_limit_is_echoed_and_one_over_fails_alone(
    harness: Harness, command_id: str, error: str
) -> None:
    tracking = stub(harness)
    request = batch_of(("customers", customer()), ("customers", customer({"registered": "other@example.com"})))
    request.commands[0].command_id = command_id
    request.commands[1].command_id = "é" * 255
    before = raw.stored(harness.config.data_dir)
    response = await tracking.Batch(request, metadata=bearer(harness.admin))
    first, second = response.results
    assert (first.success, list(first.errors), first.HasField("command_id")) == (False, [error], False)
    assert (second.success, second.command_id) == (True, "é" * 255)
    # Only the second command's customer.
    assert raw.stored(harness.config.data_dir)["profiles"] - before["profiles"] == 1


def customers_data(plan: str, *, reverse: bool = False) -> bytes:
    """The data of a `customers` command, `{"customer_ids": {"registered":
    ...}, "properties": {"plan": plan, "tags": {"a": "1", "b": "2"}}}`, as
    bytes: every `Struct`'s keys written in order or, with `reverse`, the
    other way round."""

    def struct(*entries: tuple[str, bytes]) -> bytes:
        written = [raw.entry(key, value) for key, value in entries]
        return b"".join(reversed(written) if reverse else written)

    tags = struct(("a", raw.string_value("1")), ("b", raw.string_value("2")))
    properties = struct(("plan", raw.string_value(plan)), ("tags", raw.field(5, tags)))
    ids = struct(("registered", raw.string_value("retry@example.com")))
    return struct(("customer_ids", raw.field(5, ids)), ("properties", raw.field(5, properties)))


async def test_a_retry_in_another_wire_order_replays_and_another_value_is_reused(harness: Harness) -> None:
    """A retry of one JSON body through the REST sidecar (Go writes a map in
    random order) is the same request: it replays the first response and
    stores nothing more. A batch that differs in one value is not."""
    one, other_order = customers_data("gold"), customers_data("gold", reverse=True)
    assert one != other_order

    def request(data: bytes) -> bytes:
        return raw.batch(raw.command_of("customers", data, "c-1"), request_id="retry-1")

    first = await raw_batch(harness, request(one))
    after_first = raw.stored(harness.config.data_dir)
    assert [r.success for r in first.results] == [True]
    replayed = await raw_batch(harness, request(other_order))
    assert replayed == first
    assert raw.stored(harness.config.data_dir) == after_first

    changed = customers_data("silver")
    with pytest.raises(aio.AioRpcError) as caught:
        await raw_batch(harness, request(changed))
    error = rich_error(caught.value)
    assert (error.code, error.info.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert raw.stored(harness.config.data_dir) == after_first


async def raw_batch(harness: Harness, request: bytes) -> tracking_pb2.BatchResponse:
    """`Batch` with the request's bytes sent as they are."""
    call = harness.channel.unary_unary(
        "/batchgrpc.track.v2.TrackingService/Batch",
        request_serializer=None,
        response_deserializer=tracking_pb2.BatchResponse.FromString,
    )
    response: tracking_pb2.BatchResponse = await call(request, metadata=bearer(harness.admin))
    return response


async def test_errors_echo_at_most_256_characters_of_a_name(harness: Harness) -> None:
    huge = "h" * 100_000
    request = batch_of(
        ("customers/events", event(huge, {huge: "a"}, **{huge: 1})),
        (huge, {}),
    )
    response = await stub(harness).Batch(request, metadata=bearer(harness.admin))
    assert [r.success for r in response.results] == [False, False]
    for result in response.results:
        for error in result.errors:
            assert error.count("h") <= 256, len(error)
    assert response.results[1].errors[0].startswith(f"Unknown command name '{'h' * 255}…'")


async def test_a_single_command_rpc_echoes_at_most_256_characters_in_all(harness: Harness) -> None:
    """Two names of random client text, each over its limit: the status
    message names the first problem and how many there are, each problem is
    a violation of its own, and no text echoes more than 256 characters."""
    sent = raw.random_text(20_000)
    id_name, property_name = sent[:10_000], sent[10_000:]
    with pytest.raises(aio.AioRpcError) as caught:
        await single(harness, "customers", customer({id_name: "a"}, **{property_name: 1}))
    error = rich_error(caught.value)
    assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert error.bad_request is not None
    violations = error.bad_request.field_violations
    assert [v.field.split(".")[0] for v in violations] == ["customer_ids", "properties"]
    texts = [error.message, *error.info.metadata.values()]
    texts += [text for v in violations for text in (v.field, v.description)]
    assert raw.longest_echo(texts, sent) <= 256
    # In all, not only per run: the message names one problem's text.
    assert raw.total_echo(error.message, sent) <= 256
    # Not only a bound: each name is shown, clipped, where it belongs.
    assert raw.longest_echo([error.message], sent) == 255
    assert error.message.startswith("2 problems; the first: Customer id name '")
    assert raw.longest_echo([violations[1].description], property_name) == 255
