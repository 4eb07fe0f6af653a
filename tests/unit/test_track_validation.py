"""Tracking-command validation in the Rust core, from real BatchRequest bytes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.protobuf import json_format

from batchgrpc import _core
from batchgrpc.errors import InvalidArgument, NoCommands, TooManyItems
from batchgrpc.track.v2 import tracking_pb2

from ..seeds import TRACK_SEED_COMMANDS

NOW = time.time()


def batch(*commands: dict[str, Any]) -> bytes:
    request = tracking_pb2.BatchRequest(project_token="default")
    json_format.ParseDict({"commands": list(commands)}, request)
    return request.SerializeToString()


def errors_of(request: bytes, now: float) -> list[list[str]]:
    """Per command, its error texts, as the core reports them."""
    return [[message for _, message in command.errors] for command in _core.prepare_track_batch(request, now)]


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
    with pytest.raises(InvalidArgument):
        errors_of(b"\x12\xff", NOW)
