"""The tracking batch and its single commands end to end: per-command
results, profiles and events in the shared store, scopes, idempotency."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from grpc import aio

from batchgrpc.auth import NewKey
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc as bulk_grpc
from batchgrpc.events.v1 import event_pb2, event_pb2_grpc, profile_pb2, profile_pb2_grpc
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import REVISION, Harness, bearer, rich_error
from ..seeds import TRACK_SEED_COMMANDS


def batch(*commands: dict[str, Any], project: str = "default", request_id: str = "") -> tracking_pb2.BatchRequest:
    request = tracking_pb2.BatchRequest(project_token=project, request_id=request_id)
    json_format.ParseDict({"commands": list(commands)}, request)
    return request


def customers(ids: dict[str, Any], properties: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "customers", "data": {"customer_ids": ids, "properties": properties or {}, **extra}}


def event(ids: dict[str, Any], event_type: str, **extra: Any) -> dict[str, Any]:
    return {"name": "customers/events", "data": {"customer_ids": ids, "event_type": event_type, **extra}}


class Tracking:
    """A tracking client plus read-back through the events API."""

    def __init__(self, harness: Harness, key: NewKey | None = None, scheme: str = "Bearer") -> None:
        self.stub = tracking_pb2_grpc.TrackingServiceStub(harness.channel)
        self.profiles = profile_pb2_grpc.ProfileServiceStub(harness.channel)
        self.events = event_pb2_grpc.EventServiceStub(harness.channel)
        self.harness = harness
        key = key or harness.admin
        self.metadata = (("authorization", f"{scheme} {key.token}"),)
        self.reader = (*bearer(harness.admin), REVISION)

    async def batch(self, *commands: dict[str, Any], **kwargs: Any) -> tracking_pb2.BatchResponse:
        return await self.stub.Batch(batch(*commands, **kwargs), metadata=self.metadata)

    async def all_profiles(self) -> list[profile_pb2.Profile]:
        response = await self.profiles.ListProfiles(profile_pb2.ListProfilesRequest(), metadata=self.reader)
        return list(response.profiles)

    async def profile(self, **customer_ids: str) -> profile_pb2.Profile:
        """The one profile holding all these customer ids."""
        found = [
            p for p in await self.all_profiles() if all(p.customer_ids.get(k) == v for k, v in customer_ids.items())
        ]
        assert len(found) == 1, found
        return found[0]

    async def events_of(self, **filters: str) -> list[event_pb2.Event]:
        response = await self.events.ListEvents(event_pb2.ListEventsRequest(**filters), metadata=self.reader)
        return list(response.events)


def properties(profile: profile_pb2.Profile) -> dict[str, Any]:
    return json_format.MessageToDict(profile.attributes.properties)


@pytest.fixture
def tracking(harness: Harness) -> Tracking:
    return Tracking(harness)


async def test_the_seed_body_tracks_a_customer_and_an_event(tracking: Tracking) -> None:
    before = time.time()
    response = await tracking.batch(*TRACK_SEED_COMMANDS)
    assert response.success
    assert before <= response.start_time <= response.end_time <= time.time()
    clock, customer, purchase = response.results
    assert clock.success
    assert clock.HasField("time")
    assert response.start_time <= clock.time <= response.end_time
    assert not clock.HasField("command_id")
    assert customer.success
    assert customer.command_id == "abc"
    assert not customer.HasField("time")
    assert purchase.success
    assert not purchase.HasField("command_id")
    assert [list(r.errors) for r in response.results] == [[], [], []]

    profile = await tracking.profile(registered="marian.galik@exponea.com")
    assert properties(profile) == {"first_name": "Marian", "last_name": "Galik"}
    (stored,) = await tracking.events_of(profile_id=profile.id)
    assert stored.event_name == "purchase"
    assert stored.source == event_pb2.Event.TRACKING
    assert stored.identity == "marian.galik@exponea.com"
    assert abs(stored.event_time.ToNanoseconds() / 1e9 - 123456.78) < 1e-6
    assert json_format.MessageToDict(stored.data) == {"total_price": 1234.5, "voucher_code": "KA54-548C-TEST"}


async def test_the_seeds_error_response_exactly_and_nothing_stored(tracking: Tracking) -> None:
    response = await tracking.batch(
        {"name": "customers", "command_id": "my command 1", "data": {"properties": {"first_name": "X"}}},
        {"name": "customers/events", "command_id": "my command 2", "data": {"customer_ids": {"registered": "x"}}},
    )
    assert response.success
    assert [json_format.MessageToDict(r, always_print_fields_with_no_presence=True) for r in response.results] == [
        {"success": False, "errors": ["At least one id should be specified."], "commandId": "my command 1"},
        {"success": False, "errors": ["Field 'event_type' is required."], "commandId": "my command 2"},
    ]
    assert await tracking.all_profiles() == []
    assert await tracking.events_of() == []


async def test_a_failed_command_fails_alone_with_every_reason(tracking: Tracking) -> None:
    response = await tracking.batch(
        customers({"registered": "ok-1"}, {"plan": "gold"}),
        customers({"cookie": "null", "registered": "undefined"}),
        event({"registered": "ok-1"}, "purchase", timestamp=time.time() * 1000),
        customers({"registered": "ok-1"}, {"note": "x" * 16 * 1024}),
        {"name": "anonymize", "data": {"customer_ids": {"registered": "ok-1"}}},
        {"name": "customers/events", "data": {"timestamp": "yesterday"}},
        event({"registered": "ok-1", "cookie": "--"}, "view", timestamp="2026-11-01T10:00:00Z"),
        customers({"registered": "ok\u00002"}),
    )
    errors = [list(r.errors) for r in response.results]
    assert errors == [
        [],
        ["At least one valid id should be specified"],
        ["Field 'timestamp' looks like milliseconds; it must be in seconds."],
        ["Value of property 'note' must be less than 16 KB."],
        ["Unknown command name 'anonymize': use customers, customers/events or system/time."],
        [
            "At least one id should be specified.",
            "Field 'event_type' is required.",
            "Field 'timestamp' must be a number of seconds since 1970 or an ISO-8601 date-time.",
        ],
        [],
        ["Customer id 'registered' must not contain NUL characters."],
    ]
    assert [r.success for r in response.results] == [True, False, False, False, False, False, True, False]
    # Only the good commands were applied; the unusable cookie id was not kept.
    profile = await tracking.profile(registered="ok-1")
    assert dict(profile.customer_ids) == {"registered": "ok-1"}
    assert properties(profile) == {"plan": "gold"}
    (view,) = await tracking.events_of()
    assert view.event_name == "view"
    assert view.event_time.ToJsonString() == "2026-11-01T10:00:00Z"


async def test_an_older_update_never_overwrites_a_newer_value(tracking: Tracking) -> None:
    ids = {"registered": "sync-1"}
    await tracking.batch(customers(ids, {"plan": "gold"}, update_timestamp=2_000_000.0))
    # Older: its plan loses, its new property is still taken.
    await tracking.batch(customers(ids, {"plan": "silver", "city": "Brno"}, update_timestamp=1_000_000.0))
    assert properties(await tracking.profile(**ids)) == {"plan": "gold", "city": "Brno"}
    # Within one batch, order does not matter: the newest stamp wins.
    await tracking.batch(
        customers(ids, {"city": "Praha"}, update_timestamp="1970-02-01T00:00:00Z"),
        customers(ids, {"city": "Wien"}, update_timestamp=1_500_000.0),
    )
    assert properties(await tracking.profile(**ids))["city"] == "Praha"
    # No stamp means now, which is newer than everything above.
    await tracking.batch(customers(ids, {"plan": "platinum"}))
    assert properties(await tracking.profile(**ids)) == {"plan": "platinum", "city": "Praha"}


async def test_scopes_and_public_keys_refuse_per_command(harness: Harness) -> None:
    events_only = Tracking(harness, await harness.key(["events:set"], public=True), scheme="Token")
    response = await events_only.batch(
        customers({"registered": "pub-1"}, {"plan": "gold"}), event({"registered": "pub-1"}, "view")
    )
    assert [(r.success, list(r.errors)) for r in response.results] == [
        (False, ["Not authorized to update customer properties."]),
        (True, []),
    ]
    profile = await events_only.profile(registered="pub-1")
    assert properties(profile) == {}
    assert len(await events_only.events_of(profile_id=profile.id)) == 1

    customers_only = Tracking(harness, await harness.key(["customers:set"]))
    response = await customers_only.batch(event({"registered": "pub-1"}, "view"), {"name": "system/time"})
    assert [(r.success, list(r.errors)) for r in response.results] == [
        (False, ["Not authorized to add event of specified type."]),
        (True, []),
    ]
    with pytest.raises(aio.AioRpcError) as caught:
        await customers_only.stub.AddEvent(
            tracking_pb2.AddEventRequest(project_token="default", customer_ids={"r": "a"}, event_type="view"),
            metadata=customers_only.metadata,
        )
    assert rich_error(caught.value).code == grpc.StatusCode.PERMISSION_DENIED
    assert len(await events_only.events_of()) == 1


async def test_project_token_and_tenancy(harness: Harness) -> None:
    other_key = await harness.key(["customers:set", "events:set"], account="other")
    other = Tracking(harness, other_key)
    with pytest.raises(aio.AioRpcError) as caught:
        await other.batch(customers({"registered": "t-1"}), project="default")
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.info.reason == "PROJECT_TOKEN_MISMATCH"
    # Tracked into its own account, invisible to the default account.
    await other.batch(customers({"registered": "t-1"}, {"plan": "x"}), project="other")
    assert await Tracking(harness).all_profiles() == []


async def test_request_id_replays_the_first_response_and_tracks_once(tracking: Tracking) -> None:
    commands = (event({"registered": "idem-1"}, "purchase"), {"name": "system/time"})
    first = await tracking.batch(*commands, request_id="retry-7")
    second = await tracking.batch(*commands, request_id="retry-7")
    assert second == first
    assert len(await tracking.events_of()) == 1
    # Without a request_id, a resent event is another event, as upstream.
    await tracking.batch(*commands)
    assert len(await tracking.events_of()) == 2


async def test_single_commands_behave_like_their_batch_commands(tracking: Tracking) -> None:
    stub, md = tracking.stub, tracking.metadata
    props = struct_pb2.Struct()
    props.update({"first_name": "Ada"})
    ok = await stub.UpdateCustomerProperties(
        tracking_pb2.UpdateCustomerPropertiesRequest(
            project_token="default", customer_ids={"registered": "ada"}, properties=props, update_timestamp=10.0
        ),
        metadata=md,
    )
    assert ok.success
    assert list(ok.errors) == []
    at = struct_pb2.Value(string_value="2026-11-01T09:30:00Z")
    added = await stub.AddEvent(
        tracking_pb2.AddEventRequest(
            project_token="default", customer_ids={"registered": "ada"}, event_type="login", timestamp=at
        ),
        metadata=md,
    )
    assert added.success
    profile = await tracking.profile(registered="ada")
    assert properties(profile) == {"first_name": "Ada"}
    (login,) = await tracking.events_of(profile_id=profile.id)
    assert login.event_time.ToJsonString() == "2026-11-01T09:30:00Z"

    with pytest.raises(aio.AioRpcError) as caught:
        await stub.UpdateCustomerProperties(
            tracking_pb2.UpdateCustomerPropertiesRequest(project_token="default", properties=props), metadata=md
        )
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "At least one id should be specified."
    assert [(v.field, v.description) for v in error.bad_request.field_violations] == [  # type: ignore[union-attr]
        ("customer_ids", "At least one id should be specified.")
    ]

    with pytest.raises(aio.AioRpcError) as caught:
        await stub.AddEvent(
            tracking_pb2.AddEventRequest(
                project_token="default",
                customer_ids={"registered": "ada"},
                timestamp=struct_pb2.Value(number_value=1e12),
            ),
            metadata=md,
        )
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.bad_request.field_violations] == ["event_type", "timestamp"]  # type: ignore[union-attr]
    assert len(await tracking.events_of()) == 1


def bulk_body(email: str, phone: str) -> bulk_pb2.CreateEventBulkCreateJobRequest:
    request = bulk_pb2.CreateEventBulkCreateJobRequest()
    profile = {"data": {"type": "profile", "attributes": {"email": email, "phone_number": phone}}}
    metric = {"data": {"type": "metric", "attributes": {"name": "Ordered"}}}
    item_event = {"type": "event", "attributes": {"properties": {}, "metric": metric, "unique_id": "o-1"}}
    item = {"type": "event-bulk-create", "attributes": {"profile": profile, "events": {"data": [item_event]}}}
    body = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [item]}}}}
    json_format.ParseDict(body, request)
    return request


async def test_profiles_merge_across_both_apis(harness: Harness, tracking: Tracking) -> None:
    # Tracking first: a customer known by a loyalty id, and one by email.
    await tracking.batch(
        customers({"registered": "loyal-9"}, {"tier": "A"}),
        customers({"email": "eve@example.com"}, {"source": "tracking"}),
        event({"registered": "loyal-9"}, "visit"),
    )
    assert len(await tracking.all_profiles()) == 2
    # A bulk create for the same email joins the tracked customer.
    bulk = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
    await bulk.CreateEventBulkCreateJob(bulk_body("eve@example.com", "+15005550006"), metadata=tracking.reader)
    await harness.running.processor.wait_idle()
    (eve,) = (
        await tracking.profiles.ListProfiles(
            profile_pb2.ListProfilesRequest(phone_number="+15005550006"), metadata=tracking.reader
        )
    ).profiles
    assert properties(eve) == {"source": "tracking"}
    assert dict(eve.customer_ids) == {"email": "eve@example.com"}
    # One command naming both ids shows the two customers are one person.
    await tracking.batch(event({"registered": "loyal-9", "email": "eve@example.com"}, "checkout"))
    (person,) = await tracking.all_profiles()
    assert dict(person.customer_ids) == {"registered": "loyal-9", "email": "eve@example.com"}
    assert person.attributes.email == "eve@example.com"
    assert person.attributes.phone_number == "+15005550006"
    assert properties(person) == {"tier": "A", "source": "tracking"}
    names = sorted(e.event_name for e in await tracking.events_of(profile_id=person.id))
    assert names == ["Ordered", "checkout", "visit"]
