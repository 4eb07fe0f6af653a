"""The error hierarchy and its one catalogue of reason codes."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from batchgrpc import errors

SRC = Path(errors.__file__).parent


def all_error_classes() -> list[type[errors.BatchgrpcError]]:
    found, todo = [], [errors.BatchgrpcError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_a_catalogued_reason() -> None:
    for cls in all_error_classes():
        assert isinstance(cls.reason, errors.Reason), cls
        assert isinstance(cls.code, grpc.StatusCode), cls


def test_every_catalogued_reason_is_emitted_by_some_error_class() -> None:
    emitted = {cls.reason for cls in all_error_classes()}
    assert emitted == set(errors.Reason), f"dead catalogue entries: {set(errors.Reason) - emitted}"


def test_no_reason_code_is_written_outside_the_catalogue() -> None:
    # An ErrorInfo reason can only come from an error class's `reason`; make
    # sure nobody builds one from a bare string anywhere in the source.
    for path in SRC.rglob("*.py"):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        text = path.read_text()
        assert not re.search(r"ErrorInfo\(\s*reason\s*=\s*['\"]", text), path


def test_status_carries_error_info_bad_request_and_retry_info() -> None:
    error = errors.RateLimited(
        "slow down",
        retry_after=2.5,
        violations=[errors.FieldViolation("data", "bad")],
        metadata={"limit": "10"},
    )
    status = error.to_status(errors.Api.BULK_EVENTS)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == "slow down"
    info, bad, retry = (
        error_details_pb2.ErrorInfo(),
        error_details_pb2.BadRequest(),
        error_details_pb2.RetryInfo(),
    )
    assert status.details[0].Unpack(info)
    assert status.details[1].Unpack(bad)
    assert status.details[2].Unpack(retry)
    assert info.reason == "RATE_LIMITED"
    assert info.domain == "batchgrpc"
    assert dict(info.metadata) == {"code": "throttled", "limit": "10"}
    assert [(v.field, v.description) for v in bad.field_violations] == [("data", "bad")]
    assert retry.retry_delay.ToNanoseconds() == 2_500_000_000


@pytest.mark.parametrize(
    ("api", "code"),
    [
        (errors.Api.BATCHES, "missing_access_token"),
        (errors.Api.BULK_EVENTS, "authentication_failed"),
        (errors.Api.TRACKING, "access_key_not_found"),
    ],
)
def test_upstream_code_follows_the_api(api: errors.Api, code: str) -> None:
    assert errors.Unauthenticated("x").upstream_code(api) == code


def test_klaviyo_tells_missing_credentials_from_wrong_ones() -> None:
    assert errors.MissingCredentials("x").upstream_code(errors.Api.BULK_EVENTS) == "not_authenticated"
    assert errors.MissingCredentials("x").upstream_code(errors.Api.TRACKING) == "access_key_not_found"


def test_internal_error_says_nothing_about_the_cause() -> None:
    assert errors.Internal().message == "Internal error."
