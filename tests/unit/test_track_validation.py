"""Tracking-command validation in the Rust core, from real BatchRequest bytes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.protobuf import json_format

from batchgrpc import _core
from batchgrpc.errors import MalformedRequest, NoCommands, PayloadTooLarge, TooManyItems
from batchgrpc.track.v2 import tracking_pb2

from ..hostile import raw
from ..seeds import TRACK_SEED_COMMANDS

NOW = time.time()


def batch(*commands: dict[str, Any]) -> bytes:
    request = tracking_pb2.BatchRequest(project_token="default")
    json_format.ParseDict({"commands": list(commands)}, request)
    return request.SerializeToString()


def errors_of(request: bytes, now: float) -> list[list[str]]:
    """Per command, its error texts, as the core reports them."""
    return [[message for _, message in command.errors] for command in _core.prepare_track_batch(request, now).commands]


def test_the_seed_body_is_valid_as_written() -> None:
    # The example body of the upstream batch page, unchanged.
    body = batch(*TRACK_SEED_COMMANDS)
    assert errors_of(body, NOW) == [[], [], []]


def test_the_seed_error_strings() -> None:
    body = batch(
        {"name": "customers", "command_id": "my command 1", "data": {"properties": {"a": 1}}},
        {"name": "customers/events", "command_id": "my command 2", "data": {"customer_ids": {"registered": "x"}}},
    )
    assert errors_of(body, NOW) == [
        ["At least one id should be specified."],
        ["Field 'event_type' is required."],
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"customer_ids": {"registered": "null"}, "event_type": "e"}, "At least one valid id should be specified"),
        ({"customer_ids": {"cookie": "undefined"}, "event_type": "e"}, "At least one valid id should be specified"),
        ({"customer_ids": {"r": "a"}, "event_type": "e", "timestamp": NOW * 1000}, "milliseconds"),
        ({"customer_ids": {"r": "a"}, "event_type": "e", "timestamp": "not a date"}, "ISO-8601"),
        ({"customer_ids": {"r": "a"}, "event_type": "e", "properties": {"big": "x" * 16384}}, "less than 16 KB"),
    ],
)
def test_command_rules(data: dict[str, Any], error: str) -> None:
    (errors,) = errors_of(batch({"name": "customers/events", "data": data}), NOW)
    assert len(errors) == 1
    assert error in errors[0]


def test_iso_timestamps_and_unknown_names() -> None:
    results = errors_of(
        batch(
            {
                "name": "customers/events",
                "data": {"customer_ids": {"r": "a"}, "event_type": "e", "timestamp": "2026-01-01T00:00:00Z"},
            },
            {"name": "anonymize", "data": {}},
        ),
        NOW,
    )
    assert results[0] == []
    assert results[1][0].startswith("Unknown command name 'anonymize'")


def test_a_command_over_800_kb_fails_alone() -> None:
    big = {"customer_ids": {"r": "a"}, "properties": {f"p{i}": "x" * 16000 for i in range(52)}}
    results = errors_of(batch({"name": "customers", "data": big}, {"name": "system/time"}), NOW)
    assert results == [["Command size must be less than 800 KB."], []]


def test_whole_batch_errors() -> None:
    with pytest.raises(NoCommands):
        errors_of(batch(), NOW)
    with pytest.raises(TooManyItems):
        errors_of(batch(*[{"name": "system/time"}] * 51), NOW)
    with pytest.raises(MalformedRequest):
        errors_of(b"\x12\xff", NOW)


def test_the_batch_brings_its_project_token_and_request_id() -> None:
    request = tracking_pb2.BatchRequest(project_token="default", request_id="r-1")
    json_format.ParseDict({"commands": [{"name": "system/time"}]}, request)
    batch = _core.prepare_track_batch(request.SerializeToString(), NOW)
    assert (batch.project_token, batch.request_id, len(batch.commands)) == ("default", "r-1", 1)


def test_single_command_requests_decode_in_the_core() -> None:
    update = tracking_pb2.UpdateCustomerPropertiesRequest(
        project_token="default", customer_ids={"registered": "a@b.c"}, update_timestamp=10.5
    )
    update.properties.update({"plan": "gold"})
    (command,) = _core.prepare_track_command("customers", update.SerializeToString(), NOW).commands
    assert (command.name, command.errors, command.customer_ids) == ("customers", [], {"registered": "a@b.c"})
    assert (command.properties, command.time) == ('{"plan":"gold"}', 10.5)

    event = tracking_pb2.AddEventRequest(project_token="default", customer_ids={"registered": "a"}, event_type="buy")
    event.timestamp.string_value = "1970-01-02T00:00:00Z"
    batch = _core.prepare_track_command("customers/events", event.SerializeToString(), NOW)
    (command,) = batch.commands
    assert (batch.project_token, command.event_type, command.time, command.errors) == ("default", "buy", 86400.0, [])

    (command,) = _core.prepare_track_command("customers/events", b"", NOW).commands
    assert [message for _, message in command.errors] == [
        "At least one id should be specified.",
        "Field 'event_type' is required.",
    ]
    with pytest.raises(MalformedRequest):
        _core.prepare_track_command("customers", b"\x12\xff", NOW)
    with pytest.raises(ValueError, match="kind"):
        _core.prepare_track_command("system/time", b"", NOW)
    huge = tracking_pb2.UpdateCustomerPropertiesRequest(project_token="x" * (41 * 1024 * 1024)).SerializeToString()
    with pytest.raises(PayloadTooLarge):
        _core.prepare_track_command("customers", huge, NOW)


def _struct(entries: list[tuple[str, bytes]]) -> bytes:
    """A `Struct`'s bytes with its entries in the order given."""
    return b"".join(raw.entry(key, value) for key, value in entries)


def test_the_fingerprint_is_of_the_request_not_its_wire_order() -> None:
    ids = raw.field(5, _struct([("registered", raw.string_value("a@example.com"))]))

    def request(plan: str, *, reverse: bool, request_id: str = "r") -> bytes:
        entries = [("customer_ids", ids), ("properties", raw.field(5, _struct([("plan", raw.string_value(plan))])))]
        data = _struct(entries[::-1] if reverse else entries)
        return raw.batch(raw.command_of("customers", data, "c"), request_id=request_id)

    one = _core.prepare_track_batch(request("gold", reverse=False), NOW)
    assert isinstance(one.fingerprint, bytes)
    assert len(one.fingerprint) == 16
    assert request("gold", reverse=False) != request("gold", reverse=True)
    assert _core.prepare_track_batch(request("gold", reverse=True), NOW).fingerprint == one.fingerprint
    # The request id is the claim's key, not part of what is compared.
    assert _core.prepare_track_batch(request("gold", reverse=False, request_id="s"), NOW).fingerprint == one.fingerprint
    assert _core.prepare_track_batch(request("silver", reverse=False), NOW).fingerprint != one.fingerprint


def test_command_ids_and_nested_keys_have_limits() -> None:
    body = batch(
        {"name": "customers", "command_id": "é" * 256, "data": {"customer_ids": {"r": "a"}}},
        {"name": "customers", "command_id": "é" * 255, "data": {"customer_ids": {"r": "a"}}},
        {"name": "customers", "data": {"customer_ids": {"r": "a"}, "properties": {"p": {"q": {"k" * 256: 1}}}}},
    )
    commands = _core.prepare_track_batch(body, NOW).commands
    assert [(c.command_id, c.errors) for c in commands] == [
        (None, [("command_id", "Field 'command_id' must be at most 255 characters.")]),
        ("é" * 255, []),
        (None, [("properties.p", "Value of property 'p' has a key of more than 255 characters.")]),
    ]
