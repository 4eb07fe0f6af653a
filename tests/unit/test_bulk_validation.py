"""Bulk-create-events validation in the Rust core, from real request bytes."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from google.protobuf import json_format

from batchgrpc import _core
from batchgrpc.errors import PayloadTooLarge, TooManyItems
from batchgrpc.events.revision import REVISIONS
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk

NOW = time.time()
#: The floor of the revision the tests send (2026-07-15: after 1990).
EARLIEST = REVISIONS["2026-07-15"].earliest_event_time
ITEMS = "/data/attributes/events-bulk-create/data"


def event(name: str = "Viewed Product", **attributes: Any) -> dict[str, Any]:
    body = {"properties": {"sku": "A-1"}, "metric": {"data": {"type": "metric", "attributes": {"name": name}}}}
    body.update(attributes)
    return {"type": "event", "attributes": body}


def item(profile: dict[str, Any], *events: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "event-bulk-create",
        "attributes": {
            "profile": {"data": {"type": "profile", "attributes": profile}},
            "events": {"data": list(events)},
        },
    }


def document(*items: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": list(items)}}}}


def validate(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    request = bulk.CreateEventBulkCreateJobRequest()
    json_format.ParseDict(body, request)
    validation = _core.validate_bulk_request(request.SerializeToString(), NOW, EARLIEST)
    assert not validation.fails_whole
    return validation.violations


VALID = document(
    item(
        {"email": "sarah.mason@klaviyo-demo.com", "phone_number": "+15005550006", "first_name": "Sarah"},
        event(time="2026-01-15T12:00:00Z", value=9.99, value_currency="USD", unique_id="order-1"),
        event("Placed Order", unique_id="order-1"),
    ),
    item({"external_id": "x-42"}, event()),
)


def test_a_valid_document_has_no_violations() -> None:
    assert validate(VALID) == []


def test_every_violation_is_reported_at_once_with_its_pointer() -> None:
    body = document(
        item(
            {"email": "not-an-email", "phone_number": "5550006"},
            event("x" * 128, time="1989-12-31T23:59:59Z", value_currency="ZZZ"),
        ),
        item({"first_name": "No identifier"}, event(unique_id="u"), event(unique_id="u")),
    )
    got = {(pointer, reason) for pointer, reason, _ in validate(body)}
    p0, p1 = f"{ITEMS}/0/attributes", f"{ITEMS}/1/attributes"
    assert got == {
        (f"{p0}/profile/data/attributes/email", "INVALID_EMAIL"),
        (f"{p0}/profile/data/attributes/phone_number", "INVALID_PHONE_NUMBER"),
        (f"{p0}/events/data/0/attributes/metric/data/attributes/name", "METRIC_NAME_TOO_LONG"),
        (f"{p0}/events/data/0/attributes/time", "TIME_OUT_OF_RANGE"),
        (f"{p0}/events/data/0/attributes/value_currency", "INVALID_CURRENCY"),
        (f"{p1}/profile/data/attributes", "MISSING_PROFILE_IDENTIFIER"),
    }


def test_a_unique_id_repeated_for_one_profile_and_metric_fails() -> None:
    body = document(item({"email": "a@example.com"}, event(unique_id="u1"), event(unique_id="u1")))
    assert [(p, r) for p, r, _ in validate(body)] == [
        (f"{ITEMS}/0/attributes/events/data/1/attributes/unique_id", "DUPLICATE_UNIQUE_ID")
    ]
    # The same profile in another item counts too (emails compare without case).
    body = document(
        item({"email": "A@example.com"}, event(unique_id="u1")), item({"email": "a@example.com"}, event(unique_id="u1"))
    )
    assert [r for _, r, _ in validate(body)] == ["DUPLICATE_UNIQUE_ID"]


def test_properties_rules() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(11):
        node["n"] = {}
        node = node["n"]
    cases = [
        ({f"k{i}": i for i in range(401)}, "TOO_MANY_PROPERTIES"),
        ({"s": "x" * (100 * 1024 + 1)}, "STRING_TOO_LONG"),
        (deep, "NESTING_TOO_DEEP"),
    ]
    for properties, reason in cases:
        body = copy.deepcopy(document(item({"email": "a@example.com"}, event())))
        body["data"]["attributes"]["events-bulk-create"]["data"][0]["attributes"]["events"]["data"][0]["attributes"][
            "properties"
        ] = properties
        assert reason in [r for _, r, _ in validate(body)], reason


def test_required_parts_and_types() -> None:
    no_props = event()
    del no_props["attributes"]["properties"]
    body = document(item({"email": "a@example.com"}, no_props, event(value="ten")))
    body["data"]["type"] = "job"
    got = {(p, r) for p, r, _ in validate(body)}
    assert ("/data/type", "INVALID_TYPE") in got
    assert (f"{ITEMS}/0/attributes/events/data/0/attributes/properties", "MISSING_PROPERTIES") in got
    assert (f"{ITEMS}/0/attributes/events/data/1/attributes/value", "INVALID_VALUE") in got
    assert [r for _, r, _ in validate(document())] == ["MISSING_ITEMS"]


def test_limits_fail_the_request_whole() -> None:
    many = document(item({"email": "a@example.com"}, *[event() for _ in range(1001)]))
    with pytest.raises(TooManyItems):
        validate(many)
    big = document(item({"email": "a@example.com"}, event(properties={"blob": "x" * (5 * 1024 * 1024)})))
    with pytest.raises(PayloadTooLarge):
        validate(big)
