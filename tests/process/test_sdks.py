"""The vendors' own Python SDKs, unchanged, against the REST sidecar in
front of a real server: klaviyo-api (bulk create, the event and profile
reads, its exceptions and its retry) and exponea-python-sdk (the tracking
routes). Each SDK call is blocking, so it runs in a thread while the
server's event loop serves.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from exponea_python_sdk import Exponea
from exponea_python_sdk.exceptions import APIException
from klaviyo_api import KlaviyoAPI
from openapi_client.exceptions import (
    BadRequestException,
    ForbiddenException,
    NotFoundException,
    UnauthorizedException,
)
from openapi_client.models import EventsBulkCreateJob

from ..conftest import Harness
from ..wire.test_limits import serving
from .test_gateway import Rest, sidecar

T = TypeVar("T")


async def off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(call, *args, **kwargs)


@pytest.fixture
async def rest(harness: Harness) -> AsyncIterator[Rest]:
    async with sidecar(harness) as client:
        yield client


def klaviyo_for(rest: Rest, token: str | None = None, **options: Any) -> KlaviyoAPI:
    return KlaviyoAPI(token or rest.token, test_host=rest.base, max_delay=0, max_retries=1, **options)


#: A typical call's body (klaviyo-fields.md 1.3): one profile by email, one
#: event; the SDK adds "backfill": false at both levels.
def dict_body(email: str, metric: str = "Placed Order", **event: Any) -> dict[str, Any]:
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [
        {"type": "event-bulk-create", "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
            "events": {"data": [{"type": "event", "attributes": {
                "properties": {"order_id": "A-1"},
                "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
                **event,
            }}]},
        }},
    ]}}}}  # fmt: skip


#: Every field the SDK's models have (klaviyo-fields.md 1.3) but
#: patch_identifiers, which the next test adds.
FULL_BODY: dict[str, Any] = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [
    {"type": "event-bulk-create", "attributes": {
        "backfill": True,
        "profile": {"data": {
            "type": "profile",
            "attributes": {
                "email": "sarah.mason@klaviyo-demo.com", "phone_number": "+15005550006", "external_id": "ext-1",
                "anonymous_id": "anon-1", "_kx": "kx-1", "first_name": "Sarah", "last_name": "Mason",
                "organization": "Klaviyo", "locale": "en-US", "title": "Engineer", "image": "https://img/x.png",
                "location": {
                    "address1": "1 Main", "address2": "Apt 2", "city": "Boston", "country": "US", "latitude": "42.36",
                    "longitude": -71.06, "region": "MA", "zip": "02110", "timezone": "America/New_York",
                    "ip": "127.0.0.1",
                },
                "properties": {"plan": "pro", "tags": ["b"], "old": 1},
            },
            "meta": {"patch_properties": {"append": {"tags": "a"}, "unappend": {"tags": "b"}, "unset": ["old"]}},
        }},
        "events": {"data": [{"type": "event", "attributes": {
            "properties": {"sku": "X"}, "time": "2026-05-01T12:00:00+00:00", "value": 9.99, "value_currency": "USD",
            "backfill": True,
            "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order", "service": "api"}}},
            "unique_id": "u-1",
        }}]},
    }},
]}}}}  # fmt: skip


async def created(harness: Harness, call: Callable[..., Any], *args: Any) -> Any:
    """The SDK's call, then the server's processing of what it created."""
    result = await off_loop(call, *args)
    await harness.running.processor.wait_idle()
    return result


async def test_klaviyo_bulk_create_with_a_dict_body_then_the_reads(rest: Rest, harness: Harness) -> None:
    klaviyo = klaviyo_for(rest)
    # Upstream's 202 has no body: the SDK returns None.
    assert await created(harness, klaviyo.Events.bulk_create_events, dict_body("ann@example.com")) is None

    profiles = await off_loop(klaviyo.Profiles.get_profiles, filter='equals(email,"ann@example.com")')
    (ann,) = profiles.data
    assert (ann.type, ann.attributes.email) == ("profile", "ann@example.com")
    assert ann.links.var_self == f"{rest.base}/api/profiles/{ann.id}"
    assert profiles.links.next is None
    one = await off_loop(klaviyo.Profiles.get_profile, ann.id)
    assert (one.data.id, one.data.attributes.email) == (ann.id, "ann@example.com")
    assert one.data.attributes.created is not None

    events = await off_loop(klaviyo.Events.get_events, filter=f'equals(profile_id,"{ann.id}")')
    (event,) = events.data
    assert event.type == "event"
    assert event.attributes.event_properties == {"order_id": "A-1"}
    assert isinstance(event.attributes.timestamp, int)
    assert event.attributes.datetime_.timestamp() == pytest.approx(event.attributes.timestamp, abs=1)
    assert event.relationships.profile.data.id == ann.id
    # A metric is named by its name: that is what the metric_id filter takes.
    assert event.relationships.metric.data.id == "Placed Order"
    by_metric = await off_loop(klaviyo.Events.get_events, filter='equals(metric_id,"Placed Order")')
    assert [e.id for e in by_metric.data] == [event.id]
    got = await off_loop(klaviyo.Events.get_event, event.id)
    assert (got.data.id, got.data.attributes.uuid) == (event.id, event.attributes.uuid)
    assert got.data.links.var_self == f"{rest.base}/api/events/{event.id}"


async def test_klaviyo_bulk_create_with_every_model_field_is_stored(rest: Rest, harness: Harness) -> None:
    klaviyo = klaviyo_for(rest)
    model = EventsBulkCreateJob.from_dict(FULL_BODY)
    assert model is not None
    assert await created(harness, klaviyo.Events.bulk_create_events, model) is None

    (sarah,) = (await off_loop(klaviyo.Profiles.get_profiles, filter='equals(external_id,"ext-1")')).data
    a = sarah.attributes
    assert (a.email, a.phone_number, a.first_name, a.last_name, a.organization, a.locale, a.title, a.image) == (
        "sarah.mason@klaviyo-demo.com", "+15005550006", "Sarah", "Mason", "Klaviyo", "en-US", "Engineer",
        "https://img/x.png",
    )  # fmt: skip
    assert (a.location.city, a.location.zip, a.location.latitude, a.location.longitude) == (
        "Boston",
        "02110",
        "42.36",
        -71.06,
    )
    assert a.location.timezone == "America/New_York"
    # patch_properties applied: appended, unappended, unset.
    assert a.properties == {"plan": "pro", "tags": ["a"]}
    (event,) = (await off_loop(klaviyo.Events.get_events, filter=f'equals(profile_id,"{sarah.id}")')).data
    assert event.attributes.datetime_ == datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert event.attributes.timestamp == int(datetime(2026, 5, 1, 12, tzinfo=UTC).timestamp())
    assert event.attributes.event_properties == {"sku": "X"}
    # What upstream's attributes have no member for rides in meta.
    raw = await rest.call("GET", f"/api/events/{event.id}", scheme="Klaviyo-API-Key", revision="2026-10-15")
    meta = raw.body["data"]["meta"]
    assert (meta["value"], meta["value_currency"], meta["unique_id"], meta["backfill"]) == (9.99, "USD", "u-1", True)
    assert meta["metric_service"] == "api"
    profile = await rest.call("GET", f"/api/profiles/{sarah.id}", scheme="Klaviyo-API-Key", revision="2026-10-15")
    assert (profile.body["data"]["meta"]["_kx"], profile.body["data"]["meta"]["anonymous_id"]) == ("kx-1", "anon-1")


async def test_klaviyo_bulk_create_with_patch_identifiers_adds_a_secondary_email(rest: Rest, harness: Harness) -> None:
    body = copy.deepcopy(FULL_BODY)
    item = body["data"]["attributes"]["events-bulk-create"]["data"][0]["attributes"]
    item["profile"]["data"]["meta"]["patch_identifiers"] = {"append": {"email": "alt@x.com"}}
    model = EventsBulkCreateJob.from_dict(body)
    klaviyo = klaviyo_for(rest)
    await created(harness, klaviyo.Events.bulk_create_events, model)
    (sarah,) = (await off_loop(klaviyo.Profiles.get_profiles, filter='equals(email,"alt@x.com")')).data
    assert sarah.attributes.email == "sarah.mason@klaviyo-demo.com"


async def test_klaviyo_errors_are_the_sdks_own_exceptions_with_parsed_bodies(rest: Rest, harness: Harness) -> None:
    klaviyo = klaviyo_for(rest)
    body = dict_body("ok@example.com")
    items = body["data"]["attributes"]["events-bulk-create"]["data"]
    items.append(copy.deepcopy(items[0]))
    items[1]["attributes"]["profile"]["data"]["attributes"]["email"] = "x@"
    with pytest.raises(BadRequestException) as bad:
        await off_loop(klaviyo.Events.bulk_create_events, body)
    assert bad.value.status == 400
    (error,) = bad.value.data.errors
    assert error.source.pointer == "/data/attributes/events-bulk-create/data/1/attributes/profile/data/attributes/email"
    assert (error.code, error.title) == ("invalid", "Invalid input.")
    assert '"x@" is not a valid email address' in error.detail

    with pytest.raises(UnauthorizedException) as unauthorized:
        await off_loop(klaviyo_for(rest, "nope.nope").Events.bulk_create_events, dict_body("ok@example.com"))
    assert (unauthorized.value.data.errors[0].code, unauthorized.value.data.errors[0].title) == (
        "authentication_failed",
        "Incorrect authentication credentials.",
    )
    reader = klaviyo_for(rest, (await harness.key(["events:read"])).token)
    with pytest.raises(ForbiddenException) as forbidden:
        await off_loop(reader.Events.bulk_create_events, dict_body("ok@example.com"))
    assert forbidden.value.data.errors[0].code == "permission_denied"
    writer = klaviyo_for(rest, (await harness.key(["events:write"])).token)
    with pytest.raises(ForbiddenException):
        await off_loop(writer.Events.get_events)

    with pytest.raises(NotFoundException) as missing:
        await off_loop(klaviyo.Profiles.get_profile, "prof_nope")
    assert missing.value.data.errors[0].code == "not_found"
    with pytest.raises(NotFoundException):
        await off_loop(klaviyo.Events.get_event, "12345")
    other = klaviyo_for(rest, (await harness.key(["events:read", "events:write"], account="other")).token)
    await created(harness, other.Events.bulk_create_events, dict_body("theirs@example.com"))
    (theirs,) = (await off_loop(other.Events.get_events)).data
    with pytest.raises(NotFoundException):
        await off_loop(klaviyo.Events.get_event, theirs.id)

    class RetiredKlaviyoAPI(KlaviyoAPI):
        _REVISION = "2023-01-01"

    retired = RetiredKlaviyoAPI(rest.token, test_host=rest.base, max_delay=0, max_retries=1)
    with pytest.raises(NotFoundException) as unknown:
        await off_loop(retired.Events.bulk_create_events, dict_body("ok@example.com"))
    (error,) = unknown.value.data.errors
    assert "No valid revisions found for method" in error.detail
    assert error.source.parameter == "revision"


@pytest.mark.parametrize(
    ("method", "kwargs", "parameter"),
    [
        ("get_events", {"filter": "greater-than(datetime,2026-01-01T00:00:00Z)"}, "filter"),
        ("get_events", {"filter": "has(profile)"}, "filter"),
        ("get_events", {"sort": "-datetime"}, "sort"),
        ("get_events", {"include": ["metric"]}, "include"),
        ("get_profiles", {"filter": 'any(email,["a@example.com","b@example.com"])'}, "filter"),
        ("get_profiles", {"filter": 'equals(email,"a@example.com"'}, "filter"),
        ("get_profiles", {"sort": "-updated"}, "sort"),
        ("get_profiles", {"additional_fields_profile": ["subscriptions"]}, "additional-fields[profile]"),
        ("get_profiles", {"page_cursor": "not-a-token"}, "page_token"),
    ],
)
async def test_klaviyo_read_parameters_the_store_cannot_honour_are_400(
    rest: Rest, method: str, kwargs: dict[str, Any], parameter: str
) -> None:
    api = klaviyo_for(rest)
    call = getattr(api.Events if method == "get_events" else api.Profiles, method)
    with pytest.raises(BadRequestException) as refused:
        await off_loop(call, **kwargs)
    (error,) = refused.value.data.errors
    assert error.source.parameter == parameter, error
    assert error.code == "invalid"


async def test_klaviyo_pages_sparse_fields_and_sort(rest: Rest, harness: Harness) -> None:
    klaviyo = klaviyo_for(rest)
    for name in ("a", "b", "c"):
        await created(harness, klaviyo.Events.bulk_create_events, dict_body(f"{name}@example.com"))
    first = await off_loop(klaviyo.Profiles.get_profiles, page_size=2, sort="created")
    assert [p.attributes.email for p in first.data] == ["a@example.com", "b@example.com"]
    assert first.links.next is not None
    # The next URL as the SDK's users pass it: whole (http), or cut after
    # page[cursor] with its "=" (https, klaviyo-fields.md 1.4).
    second = await off_loop(klaviyo.Profiles.get_profiles, page_size=2, sort="created", page_cursor=first.links.next)
    assert [p.attributes.email for p in second.data] == ["c@example.com"]
    assert second.links.next is None
    token = first.links.next.split("page%5Bcursor%5D=")[1].split("&")[0]
    pasted = f"https://a.klaviyo.com/api/profiles/?page%5Bcursor%5D={token}&page%5Bsize%5D=2"
    again = await off_loop(klaviyo.Profiles.get_profiles, page_size=2, page_cursor=pasted)
    assert [p.attributes.email for p in again.data] == ["c@example.com"]

    events = await off_loop(klaviyo.Events.get_events, page_size=1)
    seen = [e.id for e in events.data]
    while events.links.next:
        events = await off_loop(klaviyo.Events.get_events, page_size=1, page_cursor=events.links.next)
        seen += [e.id for e in events.data]
    assert len(seen) == len(set(seen)) == 3

    # With fields[...], the SDK returns the document as a dict.
    sparse = await off_loop(klaviyo.Events.get_events, fields_event=["datetime", "uuid"])
    assert all(set(e["attributes"]) == {"datetime", "uuid"} for e in sparse["data"])
    profile = await off_loop(klaviyo.Profiles.get_profile, first.data[0].id, fields_profile=["email"])
    assert profile["data"]["attributes"] == {"email": "a@example.com"}
    with pytest.raises(BadRequestException) as unknown:
        await off_loop(klaviyo.Events.get_events, fields_event=["colour"])
    assert unknown.value.data.errors[0].source.parameter == "fields[event]"


async def test_klaviyo_sdk_retries_a_429_after_its_retry_after(tmp_path: Path) -> None:
    async with serving(tmp_path, bulk_events="1/s") as harness, sidecar(harness) as rest:
        klaviyo = KlaviyoAPI(rest.token, test_host=rest.base, max_delay=5, max_retries=3)
        answers: list[tuple[float, int, str | None]] = []
        transport = klaviyo.api_client.rest_client.request

        def recorded(*args: Any, **kwargs: Any) -> Any:
            response = transport(*args, **kwargs)
            answers.append((time.monotonic(), response.status, response.getheader("Retry-After")))
            return response

        klaviyo.api_client.rest_client.request = recorded  # type: ignore[method-assign]
        await off_loop(klaviyo.Events.bulk_create_events, dict_body("a@example.com"))
        # The bucket is empty: the SDK's next call gets a 429, then waits
        # what Retry-After says before it calls again, and succeeds.
        assert await off_loop(klaviyo.Events.bulk_create_events, dict_body("b@example.com")) is None
        statuses = [status for _, status, _ in answers]
        assert statuses == [202, 429, 202], statuses
        (_, _, _), (throttled, _, retry_after), (retried, _, _) = answers
        assert retry_after == "1"
        assert retried - throttled >= int(retry_after)


def exponea_for(rest: Rest, harness: Harness) -> Exponea:
    key = harness.admin
    return Exponea("default", username=key.key.key_id, password=key.secret, url=rest.base)


async def test_exponea_tracking_calls(rest: Rest, harness: Harness) -> None:
    exponea = exponea_for(rest, harness)
    assert isinstance(await off_loop(exponea.tracking.get_system_time), float)
    ids = {"registered": "ann@example.com"}
    assert await off_loop(exponea.tracking.update_customer_properties, ids, {"first_name": "Ann"}) is True
    # The SDK sends "timestamp": null and "properties": null when not given.
    assert await off_loop(exponea.tracking.add_event, ids, "visit") is True
    stamp = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
    assert await off_loop(exponea.tracking.add_event, ids, "purchase", {"total": 9.5}, stamp) is True
    results = await off_loop(
        exponea.tracking.batch_commands,
        [
            exponea.tracking.get_system_time(batch=True),
            exponea.tracking.update_customer_properties(ids, {"last_name": "Lee"}, batch=True),
            exponea.tracking.add_event(ids, "purchase", {"total": 1}, batch=True),
            exponea.tracking.add_event({}, "purchase", batch=True),
        ],
    )
    assert isinstance(results[0], float)
    assert results[1:] == [True, True, False]

    (purchase, _) = (await off_loop(klaviyo_for(rest).Events.get_events, filter='equals(metric_id,"purchase")')).data
    assert purchase.attributes.event_properties == {"total": 9.5}
    assert purchase.attributes.timestamp == int(stamp)


async def test_exponea_errors_carry_upstreams_errors_or_message(rest: Rest, harness: Harness) -> None:
    exponea = exponea_for(rest, harness)
    with pytest.raises(APIException) as no_id:
        await off_loop(exponea.tracking.add_event, {}, "visit")
    assert no_id.value.args == (["At least one id should be specified."],)
    with pytest.raises(APIException) as no_type:
        await off_loop(exponea.tracking.update_customer_properties, {}, {"a": 1})
    assert no_type.value.args == (["At least one id should be specified."],)
    # A whole batch refused says why in "message", which the SDK does not
    # read: it raises with the body's text.
    with pytest.raises(APIException) as empty:
        await off_loop(exponea.tracking.batch_commands, [])
    assert empty.value.args == ('{"success":false,"message":"No commands"}',)
    wrong = Exponea("default", username="nope", password="nope", url=rest.base)
    with pytest.raises(APIException) as unauthorized:
        await off_loop(wrong.tracking.get_system_time)
    assert unauthorized.value.args == (
        ["Malformed API key. Send a valid key as Bearer, Klaviyo-API-Key, Token or Basic."],
    )
    elsewhere = Exponea("someone-else", username=harness.admin.key.key_id, password=harness.admin.secret, url=rest.base)
    with pytest.raises(APIException) as other:
        await off_loop(elsewhere.tracking.get_system_time)
    assert other.value.args == (["The project token does not match the API key's project."],)
