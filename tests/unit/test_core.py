"""The Rust core's contract, through the Python API."""

from __future__ import annotations

import pytest

from batchgrpc import _core, errors


def test_limits_are_upstreams() -> None:
    assert _core.BULK_EVENTS_MAX_REQUEST_BYTES == 5 * 1024 * 1024
    assert _core.BULK_EVENTS_MAX_EVENTS == 1000
    assert _core.TRACK_MAX_COMMANDS == 50
    assert _core.TRACK_MAX_COMMAND_BYTES == 800 * 1024
    assert _core.TRACK_MAX_PROPERTY_VALUE_BYTES == 16 * 1024


def test_bulk_request_within_limits_passes() -> None:
    assert _core.check_bulk_request(_core.BULK_EVENTS_MAX_REQUEST_BYTES, 1000) is None


def test_bulk_request_over_5mb_raises_payload_too_large() -> None:
    with pytest.raises(errors.PayloadTooLarge) as caught:
        _core.check_bulk_request(_core.BULK_EVENTS_MAX_REQUEST_BYTES + 1, 1)
    error = caught.value
    assert error.reason is errors.Reason.PAYLOAD_TOO_LARGE
    assert error.field == "/data"
    assert "5242881 bytes" in error.message
    assert error.violations == (errors.FieldViolation("/data", error.message, errors.Reason.PAYLOAD_TOO_LARGE),)


def test_bulk_request_over_1000_events_raises_too_many_items() -> None:
    with pytest.raises(errors.TooManyItems) as caught:
        _core.check_bulk_request(100, 1001)
    assert caught.value.field == "/data/attributes/events-bulk-create/data"
    assert "1001" in caught.value.message


def test_empty_tracking_batch_raises_no_commands_with_upstream_text() -> None:
    with pytest.raises(errors.NoCommands) as caught:
        _core.check_track_batch(0, [])
    assert caught.value.message == "No commands"
    assert caught.value.field == "commands"


@pytest.mark.parametrize("count", [51, 500])
def test_tracking_batch_over_50_commands_fails_whole(count: int) -> None:
    with pytest.raises(errors.TooManyItems):
        _core.check_track_batch(count, [1] * count)


def test_oversized_tracking_request_fails_whole() -> None:
    with pytest.raises(errors.PayloadTooLarge):
        _core.check_track_batch(_core.TRACK_MAX_REQUEST_BYTES + 1, [1])


def test_oversized_command_fails_alone() -> None:
    limit = _core.TRACK_MAX_COMMAND_BYTES
    assert _core.check_track_batch(2 * limit, [10, limit - 1, limit, 10]) == [
        None,
        None,
        "Command size must be less than 800 KB.",
        None,
    ]


def test_core_errors_are_domain_errors_with_catalogued_reasons() -> None:
    for cls in (errors.PayloadTooLarge, errors.TooManyItems, errors.NoCommands):
        assert issubclass(cls, errors.InvalidArgument)
        assert cls.reason in errors.Reason
