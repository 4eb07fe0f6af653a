"""ProfileStore: profiles found by any identifier, merged when one request
shows two are one person, updated by upstream's rules, and their events
stored once."""

from __future__ import annotations

import asyncio
from typing import Any

from batchgrpc.store import (
    Event,
    EventFilter,
    IngestBatch,
    IngestItem,
    IngestOutcome,
    NewEvent,
    Profile,
    ProfileUpdate,
    Store,
)
from tests.store.build import T0, pages
from tests.store.conftest import OpenStore


def item(identifiers: dict[str, str] | None = None, *events: NewEvent, pointer: str = "", **update: Any) -> IngestItem:
    return IngestItem(ProfileUpdate(identifiers=identifiers or {}, **update), events=tuple(events), pointer=pointer)


def new_event(dedup_key: str, name: str = "Viewed", **changes: Any) -> NewEvent:
    return NewEvent(
        event_name=name,
        event_time=changes.pop("event_time", T0),
        data=changes.pop("data", '{"page":"/"}'),
        dedup_key=dedup_key,
        source=changes.pop("source", "BULK_CREATE"),
        **changes,
    )


async def one(store: Store, entry: IngestItem, now: float = T0, account: str = "acme") -> IngestOutcome:
    (outcome,) = await store.profiles.ingest(account, IngestBatch.of([entry]), now)
    return outcome


async def profile(store: Store, profile_id: str, account: str = "acme") -> Profile:
    found = await store.profiles.get(account, profile_id)
    assert found is not None, profile_id
    return found


async def all_profiles(store: Store, identifiers: dict[str, str] | None = None, limit: int = 100) -> list[Profile]:
    found = await pages(lambda cursor: store.profiles.list("acme", identifiers or {}, cursor=cursor, limit=limit))
    return [p for page in found for p in page]


async def events_of(store: Store, profile_id: str) -> list[Event]:
    return (await store.events.list("acme", EventFilter(profile_id=profile_id), cursor=None, limit=1000)).items


async def test_ingest_creates_a_profile_and_finds_it_again_by_any_identifier(store: Store) -> None:
    created = await one(
        store, item({"email": "ann@example.com", "phone_number": "+420111"}, attributes={"first_name": "Ann"})
    )
    assert created.profile_id
    assert not created.error
    stored = await profile(store, created.profile_id)
    assert (stored.id, stored.account) == (created.profile_id, "acme")
    assert stored.attributes["email"] == "ann@example.com"
    assert stored.attributes["phone_number"] == "+420111"
    assert stored.attributes["first_name"] == "Ann"
    assert stored.created_time == T0
    by_phone = await one(store, item({"phone_number": "+420111"}, attributes={"last_name": "Novak"}), now=T0 + 1)
    assert by_phone.profile_id == created.profile_id
    by_id = await one(store, item(profile_id=created.profile_id, attributes={"title": "Dr"}), now=T0 + 2)
    assert by_id.profile_id == created.profile_id
    stored = await profile(store, created.profile_id)
    assert (stored.attributes["first_name"], stored.attributes["last_name"], stored.attributes["title"]) == (
        "Ann",
        "Novak",
        "Dr",
    )
    assert stored.updated_time == T0 + 2
    assert [p.id for p in await all_profiles(store)] == [created.profile_id]


async def test_secondary_emails_find_the_profile_until_they_are_unappended(store: Store) -> None:
    async def found_by(email: str) -> list[str]:
        return [p.id for p in await all_profiles(store, {"email": email})]

    ann = await one(store, item({"email": "ann@example.com"}, secondary=("ann@work.example", "a.n@home.example")))
    assert await found_by("ann@work.example") == [ann.profile_id]
    assert (await one(store, item({"email": "a.n@home.example"}), now=T0 + 1)).profile_id == ann.profile_id
    # Her primary address (the last sent: a.n@home.example now) is never
    # unappended; a secondary one is.
    unappend = ("a.n@home.example", "ann@work.example", "ann@example.com")
    await one(store, item(profile_id=ann.profile_id, unsecondary=unappend), now=T0 + 2)
    assert (await profile(store, ann.profile_id)).attributes["email"] == "a.n@home.example"
    assert await found_by("a.n@home.example") == [ann.profile_id]
    assert await found_by("ann@example.com") == []
    assert await found_by("ann@work.example") == []
    other = await one(store, item({"email": "ann@work.example"}), now=T0 + 3)
    assert other.profile_id != ann.profile_id
    # Appended, another's address is hers from then on; whose it was is not merged.
    await one(store, item(profile_id=ann.profile_id, secondary=("ann@work.example",)), now=T0 + 4)
    assert await found_by("ann@work.example") == [ann.profile_id]
    assert {p.id for p in await all_profiles(store)} == {ann.profile_id, other.profile_id}


async def test_an_unappend_in_the_request_that_merges_removes_what_the_merged_profile_had(store: Store) -> None:
    older = await one(store, item({"email": "ann@example.com"}))
    younger = await one(store, item({"phone_number": "+420111"}, secondary=("ann@work.example",)), now=T0 + 1)
    merged = await one(
        store,
        item({"email": "ann@example.com", "phone_number": "+420111"}, unsecondary=("ann@work.example",)),
        now=T0 + 2,
    )
    assert merged.profile_id == older.profile_id != younger.profile_id
    assert [p.id for p in await all_profiles(store, {"phone_number": "+420111"})] == [older.profile_id]
    assert await all_profiles(store, {"email": "ann@work.example"}) == []


async def test_customer_ids_identify_a_profile_too(store: Store) -> None:
    first = await one(store, item(customer_ids={"registered": "u-1", "cookie": "c-1"}))
    assert first.profile_id
    stored = await profile(store, first.profile_id)
    assert stored.customer_ids == {"registered": "u-1", "cookie": "c-1"}
    again = await one(store, item(customer_ids={"cookie": "c-1"}, properties={"plan": "gold"}), now=T0 + 1)
    assert again.profile_id == first.profile_id


async def test_profiles_are_per_account(store: Store) -> None:
    ours = await one(store, item({"email": "ann@example.com"}))
    theirs = await one(store, item({"email": "ann@example.com"}), account="other")
    assert ours.profile_id != theirs.profile_id
    assert await store.profiles.get("other", ours.profile_id) is None
    assert [p.id for p in await all_profiles(store)] == [ours.profile_id]


async def test_one_item_naming_identifiers_of_two_profiles_merges_them_into_the_oldest(store: Store) -> None:
    older = await one(
        store, item({"email": "ann@example.com"}, new_event("e1", data='{"n":1}'), attributes={"first_name": "Ann"})
    )
    newer = await one(
        store,
        item({"phone_number": "+420111"}, new_event("e2", data='{"n":2}'), attributes={"organization": "Acme"}),
        now=T0 + 10,
    )
    assert older.profile_id != newer.profile_id
    merged = await one(
        store,
        item(
            {"email": "ann@example.com", "phone_number": "+420111"},
            new_event("e3", data='{"n":3}'),
            attributes={"title": "Dr"},
        ),
        now=T0 + 20,
    )
    assert merged.profile_id == older.profile_id
    survivor = await profile(store, older.profile_id)
    assert survivor.id == older.profile_id
    assert survivor.created_time == T0
    # One person: both identifiers, what only the newer one knew, and the item's own change.
    assert survivor.attributes["email"] == "ann@example.com"
    assert survivor.attributes["phone_number"] == "+420111"
    assert survivor.attributes["first_name"] == "Ann"
    assert survivor.attributes["organization"] == "Acme"
    assert survivor.attributes["title"] == "Dr"
    # The absorbed id still resolves, to the survivor.
    assert await store.profiles.get("acme", newer.profile_id) == survivor
    # Its events are the survivor's now; nothing is left under the old id.
    moved = await events_of(store, older.profile_id)
    assert sorted(e.data for e in moved) == ['{"n":1}', '{"n":2}', '{"n":3}']
    assert {e.profile_id for e in moved} == {older.profile_id}
    assert await events_of(store, newer.profile_id) == []
    # Either identifier finds the one profile; the absorbed one is not listed.
    assert [p.id for p in await all_profiles(store)] == [older.profile_id]
    assert [p.id for p in await all_profiles(store, {"phone_number": "+420111"})] == [older.profile_id]
    later = await one(store, item({"phone_number": "+420111"}), now=T0 + 30)
    assert later.profile_id == older.profile_id
    # The old id, given by a caller, leads to the survivor too.
    by_old_id = await one(store, item(profile_id=newer.profile_id, attributes={"last_name": "Novak"}), now=T0 + 40)
    assert by_old_id.profile_id == older.profile_id
    assert (await profile(store, older.profile_id)).attributes["last_name"] == "Novak"


async def test_a_stale_update_timestamp_never_overwrites_a_newer_value(store: Store) -> None:
    ids = {"registered": "u-1"}
    first = await one(store, item(customer_ids=ids, properties={"plan": "gold"}, timestamp=T0 + 100), now=T0 + 100)
    # Arrives later, happened earlier: plan stays; a value never set before is taken.
    await one(
        store, item(customer_ids=ids, properties={"plan": "silver", "color": "red"}, timestamp=T0 + 50), now=T0 + 200
    )
    properties = (await profile(store, first.profile_id)).attributes["properties"]
    assert properties == {"plan": "gold", "color": "red"}
    await one(store, item(customer_ids=ids, properties={"plan": "platinum"}, timestamp=T0 + 150), now=T0 + 300)
    assert (await profile(store, first.profile_id)).attributes["properties"]["plan"] == "platinum"
    # The color's own time is T0 + 50: a change from T0 + 60 is newer.
    await one(store, item(customer_ids=ids, properties={"color": "blue"}, timestamp=T0 + 60), now=T0 + 400)
    assert (await profile(store, first.profile_id)).attributes["properties"] == {"plan": "platinum", "color": "blue"}


async def test_properties_merge_over_the_stored_ones(store: Store) -> None:
    first = await one(store, item({"email": "ann@example.com"}, properties={"a": 1, "b": 2}))
    await one(store, item({"email": "ann@example.com"}, properties={"b": 3, "c": [4]}), now=T0 + 1)
    assert (await profile(store, first.profile_id)).attributes["properties"] == {"a": 1, "b": 3, "c": [4]}


async def test_location_merges_by_key(store: Store) -> None:
    first = await one(
        store, item({"email": "ann@example.com"}, attributes={"location": {"city": "Prague", "country": "CZ"}})
    )
    await one(
        store, item({"email": "ann@example.com"}, attributes={"location": {"city": "Brno", "zip": "60200"}}), now=T0 + 1
    )
    location = (await profile(store, first.profile_id)).attributes["location"]
    assert location == {"city": "Brno", "country": "CZ", "zip": "60200"}


async def test_append_unappend_and_unset_patch_properties(store: Store) -> None:
    email = {"email": "ann@example.com"}
    first = await one(store, item(email, properties={"tags": ["a"], "color": "red", "size": "M"}))
    await one(store, item(email, append={"tags": "b"}), now=T0 + 1)
    await one(store, item(email, append={"tags": ["c", "d"], "new_list": "x"}), now=T0 + 2)
    assert (await profile(store, first.profile_id)).attributes["properties"]["tags"] == ["a", "b", "c", "d"]
    await one(store, item(email, unappend={"tags": ["a", "c"]}), now=T0 + 3)
    await one(store, item(email, unappend={"tags": "d"}, unset=("color",)), now=T0 + 4)
    properties = (await profile(store, first.profile_id)).attributes["properties"]
    assert properties == {"tags": ["b"], "size": "M", "new_list": ["x"]}


async def test_an_unknown_profile_id_alone_is_an_error_outcome_and_changes_nothing(store: Store) -> None:
    known = await one(store, item({"email": "ann@example.com"}))
    outcomes = await store.profiles.ingest(
        "acme",
        IngestBatch.of(
            [
                item(None, new_event("lost"), profile_id="01NOSUCHPROFILE0000000000", attributes={"first_name": "X"}),
                item({"email": "ann@example.com"}, new_event("kept"), attributes={"first_name": "Ann"}),
            ]
        ),
        T0 + 1,
    )
    assert outcomes[0].error
    assert (outcomes[0].profile_id, outcomes[0].accepted) == ("", 0)
    # The item beside it is applied.
    assert (outcomes[1].profile_id, outcomes[1].error, outcomes[1].accepted) == (known.profile_id, "", 1)
    assert [p.id for p in await all_profiles(store)] == [known.profile_id]
    assert await store.profiles.get("acme", "01NOSUCHPROFILE0000000000") is None
    assert [e.profile_id for e in await store.events.after(0, limit=100)] == [known.profile_id]


async def test_events_are_deduplicated_by_id_with_exact_counts(store: Store) -> None:
    email = {"email": "ann@example.com"}
    first = await one(store, item(email, new_event("k1"), new_event("k2")))
    assert (first.accepted, first.deduplicated) == (2, 0)
    # A repeat in a later request, and a repeat inside one request.
    again = await one(store, item(email, new_event("k1"), new_event("k3"), new_event("k3")), now=T0 + 1)
    assert (again.accepted, again.deduplicated) == (1, 2)
    # The key is per event name: the same key under another name is another event.
    other_name = await one(store, item(email, new_event("k1", name="Bought")), now=T0 + 2)
    assert (other_name.accepted, other_name.deduplicated) == (1, 0)
    stored = await events_of(store, first.profile_id)
    assert len(stored) == 4
    assert len({e.event_id for e in stored}) == 4


async def test_a_repeat_across_items_of_one_request_counts_once(store: Store) -> None:
    email = {"email": "ann@example.com"}
    outcomes = await store.profiles.ingest(
        "acme", IngestBatch.of([item(email, new_event("k1")), item(email, new_event("k1"))]), T0
    )
    assert [(o.accepted, o.deduplicated) for o in outcomes] == [(1, 0), (0, 1)]
    assert outcomes[0].profile_id == outcomes[1].profile_id
    assert len(await events_of(store, outcomes[0].profile_id)) == 1


async def test_stored_events_carry_what_was_sent(store: Store) -> None:
    sent = new_event(
        "u:order-7",
        name="Placed Order",
        event_time=T0 - 60,
        data='{"items":2}',
        value=19.5,
        value_currency="EUR",
        unique_id="order-7",
        job_id="bulk_1",
        row_number=3,
    )
    outcome = await one(store, item({"email": "ann@example.com"}, sent))
    (stored,) = await events_of(store, outcome.profile_id)
    assert (stored.account, stored.source, stored.event_name, stored.event_time, stored.data) == (
        "acme",
        "BULK_CREATE",
        "Placed Order",
        T0 - 60,
        '{"items":2}',
    )
    assert (stored.value, stored.value_currency, stored.unique_id) == (19.5, "EUR", "order-7")
    assert (stored.job_id, stored.row_number, stored.profile_id) == ("bulk_1", 3, outcome.profile_id)
    assert stored.position > 0


async def test_list_by_identifiers_pages_through_matching_profiles(store: Store) -> None:
    made = []
    for i in range(5):
        outcome = await one(store, item({"email": f"p{i}@example.com", "external_id": f"x{i}"}), now=T0 + i)
        made.append(outcome.profile_id)
    found = await pages(lambda cursor: store.profiles.list("acme", {}, cursor=cursor, limit=2))
    assert [[p.id for p in page] for page in found] == [made[0:2], made[2:4], made[4:]]
    assert [p.id for p in await all_profiles(store, {"email": "p3@example.com"})] == [made[3]]
    assert [p.id for p in await all_profiles(store, {"email": "p3@example.com", "external_id": "x3"})] == [made[3]]
    assert await all_profiles(store, {"email": "p3@example.com", "external_id": "x4"}) == []
    assert await all_profiles(store, {"email": "nobody@example.com"}) == []
    page = await store.profiles.list("acme", {}, cursor=None, limit=5)
    assert page.next_cursor is None


async def test_a_repeat_of_an_event_of_a_merged_profile_is_still_deduplicated(store: Store) -> None:
    # An order arrives for the profile known by phone; a later item shows
    # that phone is Ann's (one person: merged); then the first request is
    # retried. It is the same event of the same person.
    ann = await one(store, item({"email": "ann@example.com"}))
    bob = await one(store, item({"phone_number": "+420111"}, new_event("u:order-1")), now=T0 + 10)
    assert (bob.accepted, bob.deduplicated) == (1, 0)
    await one(store, item({"email": "ann@example.com", "phone_number": "+420111"}), now=T0 + 20)
    retried = await one(store, item({"phone_number": "+420111"}, new_event("u:order-1")), now=T0 + 30)
    assert retried.profile_id == ann.profile_id
    assert (retried.accepted, retried.deduplicated) == (0, 1)
    assert len(await events_of(store, ann.profile_id)) == 1


async def test_two_stores_ingesting_one_new_person_at_once_make_one_profile(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    email = {"email": "ann@example.com"}

    async def send(on: Store, name: str) -> list[IngestOutcome]:
        outcomes = []
        for i in range(10):
            outcomes += await on.profiles.ingest(
                "acme", IngestBatch.of([item(email, new_event(f"{name}-{i}"))]), T0 + i
            )
        return outcomes

    one_side, other_side = await asyncio.gather(send(first, "a"), send(second, "b"))
    ids = {o.profile_id for o in one_side + other_side}
    assert len(ids) == 1
    assert [p.id for p in await all_profiles(first)] == list(ids)
    assert sum(o.accepted for o in one_side + other_side) == 20
    assert len(await events_of(first, ids.pop())) == 20
