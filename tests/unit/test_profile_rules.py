"""Profile rules and the ingest planner (`batchgrpc.events.profiles`), then
the SQLite backend writing a plan, on a real database file."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgrpc import core
from batchgrpc.eventids import profile_event_id
from batchgrpc.events.profiles import (
    NO_SUCH_PROFILE,
    ProfileState,
    Snapshot,
    StoredProfile,
    Target,
    apply,
    identifier_pairs,
    merge,
    new_profile_id,
    plan_ingest,
)
from batchgrpc.store import IngestBatch, IngestItem, IngestOutcome, NewEvent, ProfileUpdate
from batchgrpc.store.migrations import id_text
from batchgrpc.store.sqlite import connect, migrate
from batchgrpc.store.sqlite_profiles import ingest

NOW = 1_000.0
EMPTY = Snapshot({}, {}, {})


def event(name: str = "Viewed", key: str = "t:1") -> NewEvent:
    return NewEvent(event_name=name, event_time=NOW, data="{}", dedup_key=key, source="BULK_CREATE")


def profiles(items: list[IngestItem]) -> list[ProfileUpdate]:
    return [item.profile for item in items]


def by_email(email: str, *events: NewEvent) -> IngestItem:
    return IngestItem(ProfileUpdate(identifiers={"email": email}), events=events)


def stored(seq: int, pid: str, **attributes: object) -> StoredProfile:
    return StoredProfile(seq, ProfileState(pid, dict(attributes), dict.fromkeys(attributes, 1.0), {}))


# --- the rules ----------------------------------------------------------------


def test_identifiers_are_the_named_ones_with_values_customer_ids_prefixed() -> None:
    update = ProfileUpdate(identifiers={"email": "a@x", "phone_number": ""}, customer_ids={"registered": "r1"})
    assert identifier_pairs(update) == [("email", "a@x"), ("customer:registered", "r1")]


def test_an_update_older_than_a_value_never_overwrites_it() -> None:
    state = ProfileState("p", {"first_name": "New", "properties": {"tier": 2}}, {"first_name": 200.0})
    state.times["properties.tier"] = 200.0
    apply(
        state,
        ProfileUpdate(
            attributes={"first_name": "Old", "last_name": "Lee"}, properties={"tier": 1, "x": 1}, timestamp=100.0
        ),
        NOW,
    )
    # Stale values stand; values nobody set before are taken, at the update's time.
    assert state.attributes == {"first_name": "New", "last_name": "Lee", "properties": {"tier": 2, "x": 1}}
    assert (state.times["last_name"], state.times["properties.x"], state.times["first_name"]) == (100.0, 100.0, 200.0)
    # At the same time or later, the update wins.
    apply(state, ProfileUpdate(attributes={"first_name": "Same"}, properties={"tier": 3}, timestamp=200.0), NOW)
    assert (state.attributes["first_name"], state.attributes["properties"]["tier"]) == ("Same", 3)
    # No timestamp: now.
    apply(state, ProfileUpdate(attributes={"first_name": "Now"}), NOW)
    assert (state.attributes["first_name"], state.times["first_name"]) == ("Now", NOW)


def test_location_merges_by_key_and_empty_values_change_nothing() -> None:
    state = ProfileState("p", {"location": {"city": "Boston", "zip": "02110"}, "title": "CEO"})
    apply(state, ProfileUpdate(attributes={"location": {"city": "Salem", "region": "MA"}, "title": ""}), NOW)
    assert state.attributes == {"location": {"city": "Salem", "zip": "02110", "region": "MA"}, "title": "CEO"}


def test_append_unappend_and_unset_patch_properties() -> None:
    state = ProfileState("p", {"properties": {"tags": ["a", "b"], "one": "x", "gone": 1, "keep": 2}})
    apply(
        state,
        ProfileUpdate(append={"tags": ["c"], "one": "y", "new": "z"}, unappend={"tags": "a"}, unset=("gone", "absent")),
        NOW,
    )
    assert state.attributes["properties"] == {"tags": ["b", "c"], "one": ["x", "y"], "new": ["z"], "keep": 2}


def test_a_merge_keeps_the_survivors_values_and_fills_what_it_lacks() -> None:
    survivor = ProfileState(
        "old", {"first_name": "Ann", "properties": {"a": 1, "b": 1}}, {"first_name": 5.0}, {"c": "1"}
    )
    other_attributes = {"first_name": "Bo", "last_name": "Lee", "city": "X", "properties": {"b": 2, "c": 2}}
    other = ProfileState("new", other_attributes, {"last_name": 7.0}, {"c": "2", "d": "3"})
    merge(survivor, other, NOW)
    assert survivor.attributes == {
        "first_name": "Ann",
        "last_name": "Lee",
        "city": "X",
        "properties": {"a": 1, "b": 1, "c": 2},
    }
    # A filled value keeps its time; one without a time gets now.
    assert survivor.times == {"first_name": 5.0, "last_name": 7.0, "city": NOW}
    assert survivor.customer_ids == {"c": "1", "d": "3"}


# --- the planner --------------------------------------------------------------


def test_items_see_what_earlier_items_created_and_merged() -> None:
    items = [
        by_email("a@x", event("A")),
        IngestItem(ProfileUpdate(identifiers={"phone_number": "+1"}, attributes={"first_name": "Pat"}), (event("B"),)),
        IngestItem(ProfileUpdate(identifiers={"phone_number": "+1", "email": "a@x"}), (event("C"),)),
        IngestItem(ProfileUpdate(identifiers={"phone_number": "+1"}), (event("D"),)),
    ]
    plan = plan_ingest(EMPTY, profiles(items), NOW)
    first, second = plan.created
    # The older profile (created first) survives, whichever identifier comes first.
    assert plan.merged_into == {second: first}
    assert [o.profile_id for o in plan.outcomes] == [first, second, first, first]
    assert plan.profiles[first].attributes == {"email": "a@x", "phone_number": "+1", "first_name": "Pat"}
    assert plan.identifiers == {("email", "a@x"): first, ("phone_number", "+1"): first}
    # Every event ends on the survivor; its id names the profile its item applied to.
    assert plan.targets == [
        Target(first, first, "a@x", False),
        Target(second, first, "+1", False),
        Target(first, first, "+1", False),
        Target(first, first, "+1", False),
    ]
    rows = core.event_rows(IngestBatch.of(items).events, "acme", plan.targets).rows
    assert [(r[8], id_text(r[0], r[1]), r[9]) for r in rows] == [
        (first, profile_event_id("acme", first, "A", "t:1"), "a@x"),
        (first, profile_event_id("acme", second, "B", "t:1"), "+1"),
        (first, profile_event_id("acme", first, "C", "t:1"), "+1"),
        (first, profile_event_id("acme", first, "D", "t:1"), "+1"),
    ]


def test_the_oldest_stored_profile_survives_and_merged_ids_resolve() -> None:
    snapshot = Snapshot(
        identifiers={("email", "a@x"): "young", ("phone_number", "+1"): "old"},
        resolved={"gone": "young"},
        profiles={"young": stored(9, "young", email="a@x", city="Y"), "old": stored(3, "old", phone_number="+1")},
    )
    items = [
        IngestItem(ProfileUpdate(identifiers={"email": "a@x", "phone_number": "+1"})),
        # An id merged before this request resolves to where it went, then on.
        IngestItem(ProfileUpdate(profile_id="gone", attributes={"title": "CEO"})),
    ]
    plan = plan_ingest(snapshot, profiles(items), NOW)
    assert plan.created == []
    assert plan.merged_into == {"young": "old"}
    assert plan.live("young") == "old"
    assert [o.profile_id for o in plan.outcomes] == ["old", "old"]
    assert plan.profiles["old"].attributes == {"phone_number": "+1", "email": "a@x", "city": "Y", "title": "CEO"}
    # The merged profile's own values stay as they were.
    assert plan.profiles["young"].attributes == {"email": "a@x", "city": "Y"}
    # Only what changed is reassigned; the snapshot is not changed.
    assert plan.identifiers == {("email", "a@x"): "old"}
    assert snapshot.profiles["old"].state.attributes == {"phone_number": "+1"}


def test_an_unknown_profile_id_alone_is_an_error_with_identifiers_a_new_profile() -> None:
    items = [
        IngestItem(ProfileUpdate(profile_id="nobody"), (event(),)),
        IngestItem(ProfileUpdate(profile_id="nobody", identifiers={"email": "a@x"}), (event(),)),
        IngestItem(ProfileUpdate()),
    ]
    plan = plan_ingest(EMPTY, profiles(items), NOW)
    [created] = plan.created
    assert plan.outcomes == [
        IngestOutcome(error=NO_SUCH_PROFILE),
        IngestOutcome(created),
        IngestOutcome(error=NO_SUCH_PROFILE),
    ]
    assert plan.targets == [None, Target(created, created, "a@x", False), None]
    # The events of an item without a target are left out.
    rows = core.event_rows(IngestBatch.of(items).events, "acme", plan.targets)
    assert len(rows.rows) == 1
    outcomes = plan.settle([1, 1, 0], rows.repeats)
    assert outcomes == [IngestOutcome(error=NO_SUCH_PROFILE), IngestOutcome(created, "", 1, 0), plan.outcomes[2]]


def test_repeats_within_the_request_and_in_the_store_are_deduplicated() -> None:
    items = [
        by_email("a@x", event("V", "t:1"), event("V", "t:1"), event("V", "t:2")),
        by_email("a@x", event("V", "t:2"), event("V", "t:3"), event("W", "t:1")),
        by_email("b@x", event("V", "t:1")),
    ]
    plan = plan_ingest(EMPTY, profiles(items), NOW)
    a, b = plan.created
    rows = core.event_rows(IngestBatch.of(items).events, "acme", plan.targets)
    # Within the request, the core keeps each event's first occurrence.
    assert rows.repeats == [1, 1, 0]
    assert [(r[8], id_text(r[0], r[1])) for r in rows.rows] == [
        (a, profile_event_id("acme", a, "V", "t:1")),
        (a, profile_event_id("acme", a, "V", "t:2")),
        (a, profile_event_id("acme", a, "V", "t:3")),
        (a, profile_event_id("acme", a, "W", "t:1")),
        (b, profile_event_id("acme", b, "V", "t:1")),
    ]
    # One more of the second item's was stored already.
    outcomes = plan.settle([3, 3, 1], [1, 2, 0])
    assert [(o.accepted, o.deduplicated) for o in outcomes] == [(2, 1), (1, 2), (1, 0)]


def test_only_the_events_of_profiles_that_existed_are_looked_up_under_the_survivor() -> None:
    old, young = stored(1, "old", email="a@x"), stored(2, "young", phone_number="+1")
    snapshot = Snapshot({("email", "a@x"): "old", ("phone_number", "+1"): "young"}, {}, {"old": old, "young": young})
    items = [
        # Merges young into old; a profile new in the request holds nothing.
        IngestItem(ProfileUpdate(identifiers={"phone_number": "+1"}), (event("V", "u:1"),)),
        IngestItem(ProfileUpdate(identifiers={"email": "a@x", "phone_number": "+1"})),
        by_email("new@x", event("V", "u:2")),
    ]
    plan = plan_ingest(snapshot, profiles(items), NOW)
    [new] = plan.created
    assert plan.targets == [
        Target("young", "old", "+1", True),
        Target("old", "old", "a@x", True),
        Target(new, new, "new@x", False),
    ]
    rows = core.event_rows(IngestBatch.of(items).events, "acme", plan.targets)
    assert json.loads(rows.lookups) == [[0, 0, "old", "V", "u:1"]]


# --- the SQLite backend -------------------------------------------------------


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path / "profiles.sqlite3")
    migrate(conn)
    yield conn
    conn.close()


def run(conn: sqlite3.Connection, items: list[IngestItem], account: str = "acme") -> list[IngestOutcome]:
    conn.execute("BEGIN IMMEDIATE")
    outcomes = ingest(conn, account, IngestBatch.of(items), NOW)
    conn.execute("COMMIT")
    return outcomes


def test_the_store_follows_merge_chains_and_moves_identifiers_and_events(conn: sqlite3.Connection) -> None:
    [a] = run(conn, [by_email("a@x", event("A"))])
    [b] = run(conn, [IngestItem(ProfileUpdate(identifiers={"phone_number": "+1"}), (event("B"),))])
    [c] = run(conn, [IngestItem(ProfileUpdate(identifiers={"external_id": "e1"}), (event("C"),))])
    # b and c merge into a in two requests: c -> a directly, b -> a.
    run(conn, [IngestItem(ProfileUpdate(identifiers={"email": "a@x", "phone_number": "+1"}))])
    run(conn, [IngestItem(ProfileUpdate(identifiers={"external_id": "e1", "phone_number": "+1"}))])
    rows = dict(conn.execute("SELECT id, merged_into FROM profiles").fetchall())
    assert rows == {a.profile_id: None, b.profile_id: a.profile_id, c.profile_id: a.profile_id}
    assert {r[0] for r in conn.execute("SELECT profile_id FROM profile_identifiers")} == {a.profile_id}
    assert {r[0] for r in conn.execute("SELECT profile_id FROM events")} == {a.profile_id}
    # A chain made within one request (d -> e, then e -> a) resolves to its end.
    [d, e, _] = run(
        conn,
        [
            by_email("d@x"),
            IngestItem(ProfileUpdate(identifiers={"phone_number": "+2"})),
            IngestItem(ProfileUpdate(identifiers={"email": "d@x", "phone_number": "+2"})),
        ],
    )
    run(conn, [IngestItem(ProfileUpdate(identifiers={"email": "d@x", "external_id": "e1"}))])
    for named in (b, c, d, e):
        [o] = run(conn, [IngestItem(ProfileUpdate(profile_id=named.profile_id), (event("Z", named.profile_id),))])
        assert (o.profile_id, o.accepted) == (a.profile_id, 1)
    [other] = run(conn, [IngestItem(ProfileUpdate(profile_id=b.profile_id))], account="other")
    assert other.error == NO_SUCH_PROFILE


def test_the_store_counts_repeats_of_the_request_and_of_the_store(conn: sqlite3.Connection) -> None:
    items = [by_email("a@x", event("V", "t:1"), event("V", "t:1")), by_email("a@x", event("V", "t:2"))]
    assert [(o.accepted, o.deduplicated) for o in run(conn, items)] == [(1, 1), (1, 0)]
    assert [(o.accepted, o.deduplicated) for o in run(conn, items)] == [(0, 2), (0, 1)]
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    [attributes] = conn.execute("SELECT attributes FROM profiles").fetchone()
    assert json.loads(attributes) == {"email": "a@x"}


def test_profile_ids_are_ulids_that_sort_by_time() -> None:
    first = new_profile_id()
    time.sleep(0.002)
    later = [new_profile_id() for _ in range(50)]
    crockford = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert all(len(i) == 26 and set(i) <= crockford and i[0] in "01234567" for i in [first, *later])
    assert all(first < i for i in later), "a later millisecond sorts later"
    assert len(set(later)) == 50
    # The first ten digits are the milliseconds.
    value = 0
    for c in first[:10]:
        value = value * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(c)
    assert abs(value - time.time() * 1000) < 60_000
