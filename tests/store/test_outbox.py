"""EventLog as the outbox: positions in commit order, the relay's read, and
each sink's delivered position."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from batchgrpc.store import Event, EventFilter, Store
from tests.store.build import T0, event, event_id, job, job_chunk, label, notification, pages, row_chunks
from tests.store.conftest import OpenStore


async def everything(store: Store, limit: int = 2) -> list[Event]:
    """The whole log through `after`, `limit` at a time, as the relay reads it."""
    read: list[Event] = []
    position = 0
    while batch := await store.events.after(position, limit=limit):
        assert batch[0].position > position, "after() went back"
        read += batch
        position = batch[-1].position
    return read


async def test_append_stores_new_events_once_and_counts_them(store: Store) -> None:
    # What must exist once (a notification, a bulk-created event) is stored
    # once by its id; a tracked event is never a repeat (upstream keeps each).
    once = {"source": "NOTIFICATION"}
    assert await store.events.append([event("e1", **once), event("e2", **once)]) == 2
    assert await store.events.append([event("e2", **once), event("e3", **once)]) == 1
    assert await store.events.append([]) == 0
    assert [e.event_id for e in await everything(store)] == [event_id("e1"), event_id("e2"), event_id("e3")]


async def test_positions_grow_in_commit_order_and_after_pages_across_accounts(store: Store) -> None:
    await store.events.append([event("a1", account="acme"), event("b1", account="other")])
    await store.events.append([event("a2", account="acme")])
    made = job("job_1")
    await store.jobs.create(made, notification(made))
    await store.events.append([event("b2", account="other")])
    read = await everything(store, limit=2)
    assert [label(e) for e in read] == ["a1", "b1", "a2", notification(made).event_id, "b2"]
    positions = [e.position for e in read]
    assert all(p > 0 for p in positions)
    assert positions == sorted(set(positions))
    # Read back whole, as stored.
    assert read[0] == dataclasses.replace(event("a1"), position=positions[0])
    assert await store.events.after(positions[-1], limit=10) == []
    assert [label(e) for e in await store.events.after(positions[1], limit=2)] == ["a2", notification(made).event_id]


async def test_the_relay_misses_nothing_while_two_stores_write_one_log(open_store: OpenStore) -> None:
    # A reader that moves past the highest position it saw must never find
    # an event committed later at a lower position.
    writers = [await open_store(), await open_store()]
    reader = await open_store()
    appended: list[str] = []
    done = asyncio.Event()

    async def write(store: Store, name: str) -> None:
        for i in range(40):
            batch = [event(f"{name}-{i}-{j}", account=name) for j in range(3)]
            await store.events.append(batch)
            appended.extend(e.event_id for e in batch)

    async def relay() -> list[Event]:
        read: list[Event] = []
        position = 0
        while True:
            finished = done.is_set()
            batch = await reader.events.after(position, limit=7)
            read += batch
            if batch:
                position = batch[-1].position
            elif finished:
                return read
            else:
                await asyncio.sleep(0)

    relayed = asyncio.create_task(relay())
    await asyncio.gather(write(writers[0], "acme"), write(writers[1], "other"))
    done.set()
    read = await relayed
    assert sorted(e.event_id for e in read) == sorted(appended)
    assert len(read) == len(appended) == 240
    positions = [e.position for e in read]
    assert positions == sorted(set(positions))


async def test_list_filters_one_accounts_events_oldest_first(store: Store) -> None:
    await store.events.append(
        [
            event("e1", profile_id="p1", event_name="viewed"),
            event("e2", profile_id="p2", event_name="viewed"),
            event("e3", profile_id="p1", event_name="bought"),
            event("e4", account="other", profile_id="p1", event_name="viewed"),
        ]
    )

    async def ids(where: EventFilter, limit: int = 100) -> list[str]:
        found = await pages(lambda cursor: store.events.list("acme", where, cursor=cursor, limit=limit))
        return [label(e) for page in found for e in page]

    assert await ids(EventFilter()) == ["e1", "e2", "e3"]
    assert await ids(EventFilter(), limit=1) == ["e1", "e2", "e3"]
    assert await ids(EventFilter(profile_id="p1")) == ["e1", "e3"]
    assert await ids(EventFilter(event_name="viewed")) == ["e1", "e2"]
    assert await ids(EventFilter(profile_id="p1", event_name="viewed")) == ["e1"]
    assert await ids(EventFilter(job_id="job_1")) == []


async def test_get_finds_one_accounts_event_by_its_position(store: Store) -> None:
    await store.events.append([event("e1"), event("e2", account="other")])
    mine, theirs = await everything(store)
    got = await store.events.get("acme", mine.position)
    assert got is not None
    assert (label(got), got.position) == ("e1", mine.position)
    assert await store.events.get("acme", theirs.position) is None
    assert await store.events.get("acme", theirs.position + 1) is None


async def test_delivered_positions_are_per_sink_and_never_go_back(store: Store) -> None:
    assert await store.events.delivered("log") == 0
    assert await store.events.mark_delivered("log", 5, now=T0) == 5
    assert await store.events.mark_delivered("kafka", 2, now=T0) == 2
    assert await store.events.delivered("log") == 5
    assert await store.events.delivered("kafka") == 2
    # A late or repeated acknowledgement never moves a sink back.
    assert await store.events.mark_delivered("log", 3, now=T0 + 1) == 5
    assert await store.events.delivered("log") == 5
    assert await store.events.mark_delivered("log", 9, now=T0 + 2) == 9
    assert await store.events.delivered("log") == 9
    assert await store.events.delivered("kafka") == 2
    assert await store.events.delivered("none") == 0


async def test_last_position_is_that_of_the_last_event_a_job_dispatched(store: Store, tmp_path: Path) -> None:
    for job_id in ("job_1", "job_2"):
        made = job(job_id, status="IN_PROGRESS")
        await store.jobs.create(made, notification(made))
        await store.jobs.claim(job_id, owner="w1", now=T0, seconds=30, statuses=("IN_PROGRESS",))
    assert await store.events.last_position("job_1") == 0
    rows = ["a@example.com,1", "b@example.com,2", "c@example.com,3"]
    for chunk in row_chunks(tmp_path, "job_1", rows, chunk_rows=2):
        await store.jobs.record_chunk(
            job_chunk("job_1", chunk), account="acme", while_status="IN_PROGRESS", holder="w1"
        )
    # Events after it, of another job or none, are not job_1's.
    (chunk_2,) = row_chunks(tmp_path, "job_2", rows)
    await store.jobs.record_chunk(job_chunk("job_2", chunk_2), account="acme", while_status="IN_PROGRESS", holder="w1")
    await store.events.append([event("tracked")])
    read = await everything(store, limit=100)
    mine = [e.position for e in read if e.job_id == "job_1"]
    assert len(mine) == 3
    assert await store.events.last_position("job_1") == max(mine)
    assert await store.events.last_position("job_2") == max(e.position for e in read if e.job_id == "job_2")
    assert await store.events.last_position("job_missing") == 0
