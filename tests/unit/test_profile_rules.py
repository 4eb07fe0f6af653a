"""The ingest planner as the store calls it (`core.plan_ingest`; the rules
themselves are tested in `rust_core/src/profiles.rs`), then the SQLite
backend writing a plan, on a real database file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchgrpc import core
from batchgrpc.eventids import profile_event_id
from batchgrpc.events.profiles import NO_SUCH_PROFILE, settle
from batchgrpc.store import IngestBatch, IngestItem, IngestOutcome, NewEvent, ProfileUpdate
from batchgrpc.store.migrations import id_text
from batchgrpc.store.sqlite import connect, migrate
from batchgrpc.store.sqlite_profiles import ingest

NOW = 1_000.0


def event(name: str = "Viewed", key: str = "t:1") -> NewEvent:
    return NewEvent(event_name=name, event_time=NOW, data="{}", dedup_key=key, source="BULK_CREATE")


def by_email(email: str, *events: NewEvent) -> IngestItem:
    return IngestItem(ProfileUpdate(identifiers={"email": email}), events=events)


def stored(seq: int, pid: str, **attributes: object) -> tuple[int, str, str, str, str]:
    return (seq, pid, json.dumps(attributes), json.dumps(dict.fromkeys(attributes, 1.0)), "{}")


def plan(
    items: list[IngestItem],
    identifiers: list[tuple[str, str, str]] | None = None,
    resolved: list[tuple[str, str]] | None = None,
    profiles: list[tuple[int, str, str, str, str]] | None = None,
) -> core.IngestPlan:
    batch = IngestBatch.of(items)
    updates = core.profile_updates(batch.profiles)
    return core.plan_ingest(updates, identifiers or [], resolved or [], profiles or [], batch.events, "acme", NOW)


# --- the planner --------------------------------------------------------------


def test_the_store_reads_each_identifier_and_named_id_once() -> None:
    items = [
        IngestItem(ProfileUpdate(identifiers={"email": "a@x", "phone_number": ""}, customer_ids={"registered": "r1"})),
        IngestItem(ProfileUpdate(identifiers={"email": "a@x"}, profile_id="p1")),
        IngestItem(ProfileUpdate(profile_id="p1")),
    ]
    updates = core.profile_updates(IngestBatch.of(items).profiles)
    assert json.loads(updates.pairs) == [["email", "a@x"], ["customer:registered", "r1"]]
    assert json.loads(updates.named) == ["p1"]
    with pytest.raises(ValueError, match="profile updates"):
        core.profile_updates(b'[{"identifiers": {"email": "a@x"}}]')


def test_items_see_what_earlier_items_created_and_merged() -> None:
    items = [
        by_email("a@x", event("A")),
        IngestItem(ProfileUpdate(identifiers={"phone_number": "+1"}, attributes={"first_name": "Pat"}), (event("B"),)),
        IngestItem(ProfileUpdate(identifiers={"phone_number": "+1", "email": "a@x"}), (event("C"),)),
        IngestItem(ProfileUpdate(identifiers={"phone_number": "+1"}), (event("D"),)),
    ]
    out = plan(items)
    (first, _, attributes, _, _, into_first, _, _), (second, *_, into_second, _, _) = out.created
    # The older profile (created first) survives, whichever identifier comes first.
    assert (into_first, into_second) == (None, first)
    assert out.applied == [first, second, first, first]
    assert json.loads(attributes) == {"email": "a@x", "phone_number": "+1", "first_name": "Pat"}
    assert out.identifiers == [("acme", "email", "a@x", first), ("acme", "phone_number", "+1", first)]
    assert out.updated == []
    assert out.moved == []
    # Every event ends on the survivor; its id names the profile its item applied to.
    assert [(r[8], id_text(r[0], r[1]), r[9]) for r in out.rows] == [
        (first, profile_event_id("acme", first, "A", "t:1"), "a@x"),
        (first, profile_event_id("acme", second, "B", "t:1"), "+1"),
        (first, profile_event_id("acme", first, "C", "t:1"), "+1"),
        (first, profile_event_id("acme", first, "D", "t:1"), "+1"),
    ]
    assert json.loads(out.lookups) == [], "profiles new in the request hold no events"


def test_the_oldest_stored_profile_survives_and_merged_ids_resolve() -> None:
    items = [
        IngestItem(ProfileUpdate(identifiers={"email": "a@x", "phone_number": "+1"})),
        # An id merged before this request resolves to where it went, then on.
        IngestItem(ProfileUpdate(profile_id="gone", attributes={"title": "CEO"})),
    ]
    out = plan(
        items,
        identifiers=[("email", "a@x", "young"), ("phone_number", "+1", "old")],
        resolved=[("gone", "young")],
        profiles=[stored(9, "young", email="a@x", city="Y"), stored(3, "old", phone_number="+1")],
    )
    assert out.created == []
    assert out.applied == ["old", "old"]
    updated = {pid: (json.loads(attributes), into) for attributes, _, _, into, _, pid in out.updated}
    assert updated == {
        "old": ({"phone_number": "+1", "email": "a@x", "city": "Y", "title": "CEO"}, None),
        # The merged profile's own values stay as they were.
        "young": ({"email": "a@x", "city": "Y"}, "old"),
    }
    assert out.moved == [("old", "young")]
    # Only what changed is reassigned.
    assert out.identifiers == [("acme", "email", "a@x", "old")]


def test_an_unknown_profile_id_alone_is_an_error_with_identifiers_a_new_profile() -> None:
    items = [
        IngestItem(ProfileUpdate(profile_id="nobody"), (event(),)),
        IngestItem(ProfileUpdate(profile_id="nobody", identifiers={"email": "a@x"}), (event(),)),
        IngestItem(ProfileUpdate()),
    ]
    out = plan(items)
    [(created, *_)] = out.created
    assert out.applied == [None, created, None]
    # The events of an item without a profile are left out.
    assert len(out.rows) == 1
    assert settle(out.applied, [1, 1, 0], out.repeats) == [
        IngestOutcome(error=NO_SUCH_PROFILE),
        IngestOutcome(created, "", 1, 0),
        IngestOutcome(error=NO_SUCH_PROFILE),
    ]


def test_repeats_within_the_request_and_in_the_store_are_deduplicated() -> None:
    items = [
        by_email("a@x", event("V", "t:1"), event("V", "t:1"), event("V", "t:2")),
        by_email("a@x", event("V", "t:2"), event("V", "t:3"), event("W", "t:1")),
        by_email("b@x", event("V", "t:1")),
    ]
    out = plan(items)
    (a, *_), (b, *_) = out.created
    # Within the request, the core keeps each event's first occurrence.
    assert out.repeats == [1, 1, 0]
    assert [(r[8], id_text(r[0], r[1])) for r in out.rows] == [
        (a, profile_event_id("acme", a, "V", "t:1")),
        (a, profile_event_id("acme", a, "V", "t:2")),
        (a, profile_event_id("acme", a, "V", "t:3")),
        (a, profile_event_id("acme", a, "W", "t:1")),
        (b, profile_event_id("acme", b, "V", "t:1")),
    ]
    # One more of the second item's was stored already.
    outcomes = settle(out.applied, [3, 3, 1], [1, 2, 0])
    assert [(o.accepted, o.deduplicated) for o in outcomes] == [(2, 1), (1, 2), (1, 0)]


def test_only_the_events_of_profiles_that_existed_are_looked_up_under_the_survivor() -> None:
    items = [
        # Merges young into old; a profile new in the request holds nothing.
        IngestItem(ProfileUpdate(identifiers={"phone_number": "+1"}), (event("V", "u:1"),)),
        IngestItem(ProfileUpdate(identifiers={"email": "a@x", "phone_number": "+1"})),
        by_email("new@x", event("V", "u:2")),
    ]
    out = plan(
        items,
        identifiers=[("email", "a@x", "old"), ("phone_number", "+1", "young")],
        profiles=[stored(1, "old", email="a@x"), stored(2, "young", phone_number="+1")],
    )
    [(new, *_)] = out.created
    assert out.applied == ["young", "old", new]
    assert json.loads(out.lookups) == [[0, 0, "old", "V", "u:1"]]


def test_stored_state_of_another_layout_is_an_error_not_a_plan() -> None:
    with pytest.raises(ValueError, match="stored profile"):
        plan([by_email("a@x")], identifiers=[("email", "a@x", "p")], profiles=[(1, "p", "[]", "{}", "{}")])


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
