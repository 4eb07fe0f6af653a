"""Bulk create events end to end: jobs, profiles, dedup, partial success."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc import aio

from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc as bulk_grpc
from batchgrpc.events.v1 import event_pb2, event_pb2_grpc, profile_pb2, profile_pb2_grpc
from batchgrpc.store import BulkJob

from ..conftest import REVISION, Harness, rich_error

#: The seed's body with its placeholders filled in (and each event's
#: `properties`, which the spec requires and the seed leaves out).
SEED_BODY: dict[str, Any] = {
    "data": {
        "type": "event-bulk-create-job",
        "attributes": {
            "events-bulk-create": {
                "data": [
                    {
                        "type": "event-bulk-create",
                        "attributes": {
                            "profile": {
                                "data": {
                                    "type": "profile",
                                    "attributes": {
                                        "email": "sarah.mason@klaviyo-demo.com",
                                        "phone_number": "+15005550006",
                                        "external_id": "ext-1",
                                        "_kx": "kx-1",
                                        "first_name": "Sarah",
                                        "last_name": "Mason",
                                        "location": {
                                            "city": "Boston",
                                            "country": "United States",
                                            "latitude": "42.36",
                                            "longitude": -71.06,
                                        },
                                        "properties": {"plan": "gold"},
                                    },
                                    "meta": {"patch_properties": {"unset": "stale"}},
                                }
                            },
                            "events": {
                                "data": [
                                    {
                                        "type": "event",
                                        "attributes": {
                                            "properties": {"item": "shoes"},
                                            "metric": {
                                                "data": {"type": "metric", "attributes": {"name": "Placed Order"}}
                                            },
                                            "time": "2026-11-01T10:00:00Z",
                                            "value": 9.99,
                                            "value_currency": "USD",
                                            "unique_id": "order-1",
                                        },
                                    },
                                    {
                                        "type": "event",
                                        "attributes": {
                                            "properties": {"item": "hat"},
                                            "metric": {
                                                "data": {"type": "metric", "attributes": {"name": "Placed Order"}}
                                            },
                                            "time": "2026-11-01T10:05:00Z",
                                            "unique_id": "order-2",
                                        },
                                    },
                                ]
                            },
                        },
                    },
                    {
                        "type": "event-bulk-create",
                        "attributes": {
                            "profile": {"data": {"type": "profile", "attributes": {"email": "bob@example.com"}}},
                            "events": {
                                "data": [
                                    {
                                        "type": "event",
                                        "attributes": {
                                            "properties": {},
                                            "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}},
                                            "time": "2026-11-02T08:00:00Z",
                                        },
                                    }
                                ]
                            },
                        },
                    },
                ]
            }
        },
    }
}


def request(body: dict[str, Any], **fields: Any) -> bulk_pb2.CreateEventBulkCreateJobRequest:
    message = json_format.ParseDict(body, bulk_pb2.CreateEventBulkCreateJobRequest())
    for name, value in fields.items():
        setattr(message, name, value)
    return message


class Bulk:
    def __init__(self, harness: Harness, token: str | None = None) -> None:
        self.metadata = (("authorization", f"Klaviyo-API-Key {token or harness.admin.token}"), REVISION)
        self.jobs = bulk_grpc.EventBulkCreateJobServiceStub(harness.channel)
        self.profiles = profile_pb2_grpc.ProfileServiceStub(harness.channel)
        self.events = event_pb2_grpc.EventServiceStub(harness.channel)

    async def create(self, message: bulk_pb2.CreateEventBulkCreateJobRequest) -> bulk_pb2.EventBulkCreateJob:
        return (await self.jobs.CreateEventBulkCreateJob(message, metadata=self.metadata)).event_bulk_create_job

    async def done(self, job_id: str) -> bulk_pb2.EventBulkCreateJob:
        async with asyncio.timeout(30):
            while True:
                job = (
                    await self.jobs.GetEventBulkCreateJob(
                        bulk_pb2.GetEventBulkCreateJobRequest(id=job_id), metadata=self.metadata
                    )
                ).event_bulk_create_job
                if job.Status.Name(job.status) in ("COMPLETE", "FAILED"):
                    return job
                await asyncio.sleep(0.01)

    async def run(self, message: bulk_pb2.CreateEventBulkCreateJobRequest) -> bulk_pb2.EventBulkCreateJob:
        return await self.done((await self.create(message)).id)

    async def profiles_by(self, **identifiers: str) -> list[profile_pb2.Profile]:
        page = await self.profiles.ListProfiles(profile_pb2.ListProfilesRequest(**identifiers), metadata=self.metadata)
        return list(page.profiles)

    async def events_of(self, **filters: str) -> list[event_pb2.Event]:
        page = await self.events.ListEvents(
            event_pb2.ListEventsRequest(page_size=1000, **filters), metadata=self.metadata
        )
        return list(page.events)


@pytest.fixture
def bulk(harness: Harness) -> Bulk:
    return Bulk(harness)


async def test_the_seed_body_creates_a_job_profiles_and_events(bulk: Bulk) -> None:
    created = await bulk.create(request(SEED_BODY))
    assert (created.Status.Name(created.status), created.event_count) == ("QUEUED", 3)
    job = await bulk.done(created.id)
    assert job.Status.Name(job.status) == "COMPLETE"
    assert (job.accepted_count, job.deduplicated_count, job.rejected_count) == (3, 0, 0)
    assert job.completed_time.seconds

    [sarah] = await bulk.profiles_by(email="sarah.mason@klaviyo-demo.com")
    a = sarah.attributes
    assert (a.first_name, a.phone_number, a.external_id, a.kx, a.location.city) == (
        "Sarah",
        "+15005550006",
        "ext-1",
        "kx-1",
        "Boston",
    )
    assert json_format.MessageToDict(a.properties) == {"plan": "gold"}
    got = (await bulk.profiles.GetProfile(profile_pb2.GetProfileRequest(id=sarah.id), metadata=bulk.metadata)).profile
    assert got == sarah
    events = await bulk.events_of(profile_id=sarah.id)
    assert [(e.event_name, e.unique_id, e.value, e.value_currency) for e in events] == [
        ("Placed Order", "order-1", 9.99, "USD"),
        ("Placed Order", "order-2", 0.0, ""),
    ]
    assert events[0].source == events[0].Source.BULK_CREATE
    assert events[0].job_id == job.id
    assert events[0].event_time.ToSeconds() == datetime(2026, 11, 1, 10, tzinfo=UTC).timestamp()
    assert json_format.MessageToDict(events[1].data) == {"item": "hat"}
    assert len(await bulk.events_of(metric="Viewed")) == 1


async def test_a_rejected_request_stores_nothing(bulk: Bulk) -> None:
    body = copy.deepcopy(SEED_BODY)
    items = body["data"]["attributes"]["events-bulk-create"]["data"]
    items[1]["attributes"]["profile"]["data"]["attributes"]["email"] = "not-an-email"
    items[0]["attributes"]["events"]["data"][1]["attributes"]["value_currency"] = "XYZ"
    with pytest.raises(aio.AioRpcError) as caught:
        await bulk.create(request(body))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.bad_request.field_violations] == [  # type: ignore[union-attr]
        "/data/attributes/events-bulk-create/data/0/attributes/events/data/1/attributes/value_currency",
        "/data/attributes/events-bulk-create/data/1/attributes/profile/data/attributes/email",
    ]
    assert await bulk.profiles_by() == []
    assert await bulk.events_of() == []


@pytest.mark.parametrize("unset", [7, ["stale", 7], {"stale": True}])
async def test_unset_names_properties_or_the_request_is_refused(bulk: Bulk, unset: object) -> None:
    body = copy.deepcopy(SEED_BODY)
    items = body["data"]["attributes"]["events-bulk-create"]["data"]
    items[0]["attributes"]["profile"]["data"]["meta"]["patch_properties"]["unset"] = unset
    with pytest.raises(aio.AioRpcError) as caught:
        await bulk.create(request(body))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = error.bad_request.field_violations  # type: ignore[union-attr]
    assert violation.field == (
        "/data/attributes/events-bulk-create/data/0/attributes/profile/data/meta/patch_properties/unset"
    )
    assert violation.reason == "INVALID_VALUE"
    assert await bulk.profiles_by() == []


async def test_a_null_unset_is_none_as_upstream_s_nullable_member(bulk: Bulk) -> None:
    # klaviyo-api's models write `"unset": null` for an unset they were not given.
    body = copy.deepcopy(SEED_BODY)
    item = body["data"]["attributes"]["events-bulk-create"]["data"][0]["attributes"]
    item["profile"]["data"]["meta"]["patch_properties"]["unset"] = None
    job = await bulk.done((await bulk.create(request(body))).id)
    assert (job.accepted_count, job.rejected_count) == (3, 0)


async def test_partial_success_keeps_the_good_items_and_lists_the_bad(bulk: Bulk) -> None:
    body = copy.deepcopy(SEED_BODY)
    items = body["data"]["attributes"]["events-bulk-create"]["data"]
    items[0]["attributes"]["events"]["data"][1]["attributes"]["value_currency"] = "XYZ"
    items[1]["attributes"]["profile"]["data"]["attributes"]["email"] = "not-an-email"
    created = await bulk.create(request(body, partial_success=True))
    assert (created.event_count, created.rejected_count) == (3, 2)
    job = await bulk.done(created.id)
    assert (job.accepted_count, job.deduplicated_count, job.rejected_count) == (1, 0, 2)
    assert [(e.pointer, e.reason) for e in job.errors] == [
        (
            "/data/attributes/events-bulk-create/data/0/attributes/events/data/1/attributes/value_currency",
            "INVALID_CURRENCY",
        ),
        ("/data/attributes/events-bulk-create/data/1/attributes/profile/data/attributes/email", "INVALID_EMAIL"),
    ]
    assert [e.unique_id for e in await bulk.events_of()] == ["order-1"]
    assert await bulk.profiles_by(email="not-an-email") == []


def one_event(email: str, metric: str, time: str, unique_id: str = "") -> dict[str, Any]:
    event: dict[str, Any] = {
        "properties": {},
        "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        "time": time,
    }
    if unique_id:
        event["unique_id"] = unique_id
    return {
        "type": "event-bulk-create",
        "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
            "events": {"data": [{"type": "event", "attributes": event}]},
        },
    }


def body_of(*items: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": list(items)}}}}


async def test_dedup_within_and_across_requests_is_counted(bulk: Bulk) -> None:
    t = "2026-11-01T10:00:00Z"
    first = await bulk.run(
        request(
            body_of(
                one_event("a@example.com", "Viewed", t),
                one_event("a@example.com", "Viewed", "2026-11-01T10:00:00.700Z"),  # same second: one event
                one_event("a@example.com", "Viewed", t, "u-1"),
                one_event("b@example.com", "Viewed", t),  # another profile
            )
        )
    )
    assert (first.accepted_count, first.deduplicated_count) == (3, 1)
    again = await bulk.run(
        request(
            body_of(
                one_event("a@example.com", "Viewed", "2026-11-01T11:00:00Z", "u-1"),  # unique_id seen before
                one_event("a@example.com", "Clicked", t),  # another metric
            )
        )
    )
    assert (again.accepted_count, again.deduplicated_count) == (1, 1)
    assert len(await bulk.events_of()) == 4


async def test_profiles_merge_by_any_identifier_and_patch_properties(bulk: Bulk) -> None:
    def profile_item(attributes: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
        item = one_event("", "Seen", "2026-11-01T10:00:00Z")
        data: dict[str, Any] = {"type": "profile", "attributes": attributes}
        if meta:
            data["meta"] = meta
        item["attributes"]["profile"]["data"] = data
        return item

    await bulk.run(request(body_of(profile_item({"email": "p@example.com", "properties": {"tags": ["a"], "x": 1}}))))
    await bulk.run(request(body_of(profile_item({"phone_number": "+15005550006", "first_name": "Pat"}))))
    assert len(await bulk.profiles_by()) == 2
    # One request naming both identifiers: one person.
    await bulk.run(
        request(
            body_of(
                profile_item(
                    {"email": "p@example.com", "phone_number": "+15005550006", "last_name": "Lee"},
                    {"patch_properties": {"append": {"tags": "b"}, "unset": ["x"]}},
                )
            )
        )
    )
    [person] = await bulk.profiles_by()
    assert (person.attributes.first_name, person.attributes.last_name) == ("Pat", "Lee")
    assert json_format.MessageToDict(person.attributes.properties) == {"tags": ["a", "b"]}
    assert {e.profile_id for e in await bulk.events_of()} == {person.id}
    assert [p.id for p in await bulk.profiles_by(phone_number="+15005550006")] == [person.id]


async def test_jobs_are_tenant_scoped_and_create_is_idempotent(harness: Harness, bulk: Bulk) -> None:
    first = await bulk.create(request(SEED_BODY, request_id="b-1"))
    again = await bulk.create(request(SEED_BODY, request_id="b-1"))
    assert first.id == again.id
    await bulk.done(first.id)
    other = Bulk(harness, (await harness.key(["events:read", "events:write"], account="other")).token)
    with pytest.raises(aio.AioRpcError) as caught:
        await other.done(first.id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await other.profiles_by() == []
    assert await other.events_of() == []
    [sarah] = await bulk.profiles_by(email="sarah.mason@klaviyo-demo.com")
    with pytest.raises(aio.AioRpcError) as caught:
        await other.profiles.GetProfile(profile_pb2.GetProfileRequest(id=sarah.id), metadata=other.metadata)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_get_event_reads_one_of_the_accounts_events_by_its_id(harness: Harness, bulk: Bulk) -> None:
    await bulk.run(request(SEED_BODY))
    listed = await bulk.events_of()
    assert len(listed) == 3
    assert len({e.id for e in listed}) == len(listed)
    for event in listed:
        got = await bulk.events.GetEvent(event_pb2.GetEventRequest(id=event.id), metadata=bulk.metadata)
        assert got.event == event
    other = Bulk(harness, (await harness.key(["events:read"], account="other")).token)
    for unknown, client in ((listed[0].id, other), ("nope", bulk), ("99999999", bulk), ("", bulk)):
        with pytest.raises(aio.AioRpcError) as caught:
            await client.events.GetEvent(event_pb2.GetEventRequest(id=unknown), metadata=client.metadata)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, unknown
        assert rich_error(caught.value).info.reason == "NOT_FOUND"


async def test_list_profiles_by_id_with_the_other_filters(harness: Harness, bulk: Bulk) -> None:
    await bulk.run(request(SEED_BODY))
    [sarah] = await bulk.profiles_by(email="sarah.mason@klaviyo-demo.com")
    assert [p.id for p in await bulk.profiles_by(id=sarah.id)] == [sarah.id]
    assert [p.id for p in await bulk.profiles_by(id=sarah.id, external_id="ext-1")] == [sarah.id]
    assert await bulk.profiles_by(id=sarah.id, external_id="someone-else") == []
    assert await bulk.profiles_by(id="prof_nope") == []
    other = Bulk(harness, (await harness.key(["events:read"], account="other")).token)
    assert await other.profiles_by(id=sarah.id) == []


async def test_a_job_that_cannot_be_applied_fails_visibly_and_stores_nothing(harness: Harness, bulk: Bulk) -> None:
    # A stored request the processor cannot read (as after a corrupted
    # write): the job must end FAILED with its reason, not hang in PROCESSING.
    store = harness.running.store
    await store.bulk_jobs.create(
        BulkJob(
            id="bulk_corrupt",
            account="default",
            status="QUEUED",
            event_count=1,
            accepted_count=0,
            deduplicated_count=0,
            rejected_count=0,
            errors=(),
            created_time=1.0,
            completed_time=None,
            request=b"\x0a\xff\xff",
        ),
        harness.running.processor.lease(),
    )
    harness.running.processor.submit("bulk_corrupt")
    job = await bulk.done("bulk_corrupt")
    assert job.Status.Name(job.status) == "FAILED"
    assert [(e.pointer, e.reason, e.message) for e in job.errors] == [
        ("", "INTERNAL", "The job stopped on an internal error.")
    ]
    assert job.HasField("completed_time")
    assert await bulk.profiles_by() == []
    assert await bulk.events_of() == []


def one_item(*events: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """A request of one item (for ann@example.com) with `events`' attributes."""
    data = [{"type": "event", "attributes": {"properties": {}, **e}} for e in events]
    item = {
        "profile": {"data": {"type": "profile", "attributes": {"email": "ann@example.com"}}},
        "events": {"data": data},
    }
    body = {"type": "event-bulk-create", "attributes": {**item, **attributes}}
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [body]}}}}


def metric(name: str, service: str | None = None) -> dict[str, Any]:
    attributes = {"name": name} if service is None else {"name": name, "service": service}
    return {"data": {"type": "metric", "attributes": attributes}}


async def test_backfill_is_recorded_with_each_event_and_an_events_own_wins(bulk: Bulk) -> None:
    # What klaviyo-api sends on every request ("backfill": false at both
    # levels), and each way of saying it; a null is not saying it.
    body = one_item(
        {"metric": metric("Viewed"), "unique_id": "inherits"},
        {"metric": metric("Viewed"), "unique_id": "own-false", "backfill": False},
        {"metric": metric("Viewed"), "unique_id": "null", "backfill": None},
        backfill=True,
    )
    job = await bulk.run(request(body))
    assert (job.accepted_count, job.rejected_count) == (3, 0)
    got = {e.unique_id: e.backfill for e in await bulk.events_of()}
    assert got == {"inherits": True, "own-false": False, "null": True}
    body = one_item({"metric": metric("Viewed"), "unique_id": "plain", "backfill": False}, backfill=False)
    await bulk.run(request(body))
    assert {e.unique_id: e.backfill for e in await bulk.events_of()}["plain"] is False


async def test_a_metric_is_its_name_and_service(bulk: Bulk) -> None:
    # One unique_id under one name from two services is two metrics' events:
    # neither a repeat in the request nor of each other once stored.
    body = one_item(
        {"metric": metric("Placed Order"), "unique_id": "o-1"},
        {"metric": metric("Placed Order", "shopify"), "unique_id": "o-1"},
        {"metric": metric("Placed Order", "api"), "unique_id": "o-2"},
    )
    job = await bulk.run(request(body))
    assert (job.accepted_count, job.deduplicated_count) == (3, 0)
    got = sorted((e.unique_id, e.metric_service) for e in await bulk.events_of())
    assert got == [("o-1", "api"), ("o-1", "shopify"), ("o-2", "api")]
    # Sent again, each repeats itself only.
    again = await bulk.run(request(body))
    assert (again.accepted_count, again.deduplicated_count) == (0, 3)
    # The same name and service twice in one request is upstream's refusal.
    body = one_item(
        {"metric": metric("Placed Order", "shopify"), "unique_id": "o-3"},
        {"metric": metric("Placed Order", "shopify"), "unique_id": "o-3"},
    )
    with pytest.raises(aio.AioRpcError) as caught:
        await bulk.create(request(body))
    assert [v.reason for v in rich_error(caught.value).bad_request.field_violations] == [  # type: ignore[union-attr]
        "DUPLICATE_UNIQUE_ID"
    ]


def with_identifiers(body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`body` with `patch` as its first item's `meta.patch_identifiers`."""
    profile = body["data"]["attributes"]["events-bulk-create"]["data"][0]["attributes"]["profile"]["data"]
    profile["meta"] = {"patch_identifiers": patch}
    return body


async def test_patch_identifiers_adds_and_removes_secondary_emails(bulk: Bulk) -> None:
    body = one_item({"metric": metric("Viewed")})
    job = await bulk.run(request(with_identifiers(body, {"append": {"email": ["ann@work.example", "a@home.example"]}})))
    assert job.accepted_count == 1
    [ann] = await bulk.profiles_by(email="ann@example.com")
    assert [p.id for p in await bulk.profiles_by(email="ann@work.example")] == [ann.id]
    body = one_item({"metric": metric("Viewed"), "unique_id": "2"})
    await bulk.run(request(with_identifiers(body, {"unappend": {"email": "ann@work.example"}})))
    assert await bulk.profiles_by(email="ann@work.example") == []
    assert [p.id for p in await bulk.profiles_by(email="a@home.example")] == [ann.id]


@pytest.mark.parametrize(
    ("patch", "at", "reason"),
    [
        ({"append": {"phone_number": "+15005550006"}}, "append/phone_number", "UNSUPPORTED_IDENTIFIER"),
        ({"append": {"email": "not-an-address"}}, "append/email", "INVALID_EMAIL"),
        ({"unappend": {"email": [7]}}, "unappend/email", "INVALID_VALUE"),
        ({"append": {"email": [f"a{n}@example.com" for n in range(101)]}}, "append/email", "TOO_MANY_VALUES"),
    ],
)
async def test_patch_identifiers_is_email_only_and_bounded(
    bulk: Bulk, patch: dict[str, Any], at: str, reason: str
) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await bulk.create(request(with_identifiers(one_item({"metric": metric("Viewed")}), patch)))
    [violation] = rich_error(caught.value).bad_request.field_violations  # type: ignore[union-attr]
    profile = "/data/attributes/events-bulk-create/data/0/attributes/profile/data"
    assert (violation.field, violation.reason) == (f"{profile}/meta/patch_identifiers/{at}", reason)
    assert await bulk.profiles_by() == []


async def test_a_service_and_unique_id_never_make_another_pairs_key(bulk: Bulk) -> None:
    # ("a", "u:b") and ("a:u", "b") are two events, not one repeated.
    body = one_item(
        {"metric": metric("Placed Order", "a"), "unique_id": "u:b"},
        {"metric": metric("Placed Order", "a:u"), "unique_id": "b"},
    )
    job = await bulk.run(request(body))
    assert (job.accepted_count, job.deduplicated_count) == (2, 0)
    assert sorted(e.metric_service for e in await bulk.events_of()) == ["a", "a:u"]


@pytest.mark.parametrize(
    ("event", "profile", "at", "reason"),
    [
        (
            {"metric": metric("Viewed", "a\0b")},
            {},
            "events/data/0/attributes/metric/data/attributes/service",
            "INVALID_METRIC_SERVICE",
        ),
        (
            {"metric": metric("Viewed"), "unique_id": "u\0"},
            {},
            "events/data/0/attributes/unique_id",
            "INVALID_UNIQUE_ID",
        ),
        (
            {"metric": metric("Viewed")},
            {"external_id": "x\0"},
            "profile/data/attributes/external_id",
            "INVALID_IDENTIFIER",
        ),
    ],
)
async def test_no_nul_reaches_the_store_as_text(
    bulk: Bulk, event: dict[str, Any], profile: dict[str, Any], at: str, reason: str
) -> None:
    # A store's text (PostgreSQL's) cannot hold NUL: refused, never stored.
    body = one_item(event)
    body["data"]["attributes"]["events-bulk-create"]["data"][0]["attributes"]["profile"]["data"]["attributes"].update(
        profile
    )
    with pytest.raises(aio.AioRpcError) as caught:
        await bulk.create(request(body))
    [violation] = rich_error(caught.value).bad_request.field_violations  # type: ignore[union-attr]
    assert (violation.field, violation.reason) == (
        f"/data/attributes/events-bulk-create/data/0/attributes/{at}",
        reason,
    )
    assert await bulk.events_of() == []
