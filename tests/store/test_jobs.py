"""JobStore: batch jobs, their moves, their chunks of rows and row errors.
(Leases on jobs: test_leases.py.)"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from batchgrpc.store import BatchJob, Event, EventFilter, JobChunk, JobFilter, RowError, Store
from tests.store.build import T0, job, job_chunk, notification, pages, row_chunks, source

ROWS = ["ann@example.com,10", "not-an-email,5", "bob@example.com,x", "cid@example.com,7", ",3"]


async def create(store: Store, job_id: str, **changes: Any) -> BatchJob:
    made = job(job_id, **changes)
    await store.jobs.create(made, notification(made))
    return made


async def running(store: Store, job_id: str, owner: str = "w1") -> BatchJob:
    """A job IN_PROGRESS and leased to `owner`, as the runner has it."""
    await create(store, job_id, status="IN_PROGRESS")
    claimed = await store.jobs.claim(job_id, owner=owner, now=T0, seconds=30, statuses=("IN_PROGRESS",))
    assert claimed is not None
    return claimed


async def record(store: Store, chunk: JobChunk, *, holder: str = "w1") -> BatchJob | None:
    return await store.jobs.record_chunk(chunk, account="acme", while_status="IN_PROGRESS", holder=holder)


async def all_errors(store: Store, job_id: str) -> list[RowError]:
    return (await store.jobs.row_errors(job_id, cursor=None, limit=1000)).items


async def job_events(store: Store, job_id: str, account: str = "acme") -> list[Event]:
    return (await store.events.list(account, EventFilter(job_id=job_id), cursor=None, limit=1000)).items


async def test_a_job_is_created_with_its_notification_in_the_event_log(store: Store) -> None:
    made = job("job_1", tags=("a",), event_data={"k": "v"}, columns=({"type": "FULL_NAME_MATCH", "name": "email"},))
    await store.jobs.create(made, notification(made))
    assert await store.jobs.get("job_1") == made
    logged = await store.events.after(0, limit=10)
    assert [(e.event_id, e.event_name, e.source, e.account) for e in logged] == [
        (notification(made).event_id, "batch_job_created", "NOTIFICATION", "acme")
    ]
    assert json.loads(logged[0].data)["batch_job_id"] == "job_1"


async def test_a_job_is_read_with_its_sources_size_from_every_query(store: Store) -> None:
    # The size a watch shows progress against: from the source's row, by a
    # get, a list, a move and a claim alike; 0 once the source is gone.
    await store.sources.create(source("src-job_1", status="AVAILABLE", size=1234))
    await create(store, "job_1", source_id="src-job_1")
    got = await store.jobs.get("job_1")
    assert got is not None
    assert got.source_size == 1234
    (listed,) = (await store.jobs.list("acme", JobFilter(), cursor=None, limit=10)).items
    assert listed.source_size == 1234
    moved, _ = await store.jobs.transition("job_1", allowed_from=("PENDING",), to="QUEUED", now=T0)
    assert moved is not None
    assert moved.source_size == 1234
    claimed = await store.jobs.claim_next(owner="w1", now=T0, seconds=30, statuses=("QUEUED",))
    assert claimed is not None
    assert claimed.source_size == 1234
    await store.jobs.transition("job_1", allowed_from=("QUEUED",), to="CANCELED", now=T0)
    await store.sources.delete("acme", "file_asset", "src-job_1", in_use=("PENDING",))
    gone = await store.jobs.get("job_1")
    assert gone is not None
    assert gone.source_size == 0


async def test_get_is_scoped_by_account_when_given(store: Store) -> None:
    made = await create(store, "job_1")
    assert await store.jobs.get("job_1", "acme") == made
    assert await store.jobs.get("job_1") == made
    assert await store.jobs.get("job_1", "other") is None
    assert await store.jobs.get("job_missing") is None


async def test_list_pages_newest_first_with_filters(store: Store) -> None:
    await create(store, "job_0", name="march", event_name="signup", tags=("crm", "eu"), status="DONE")
    await create(store, "job_1", name="march", event_name="visit", tags=("crm",), status="QUEUED")
    await create(store, "job_2", name="april", event_name="signup", tags=("eu", "crm"), status="FAILED")
    await create(store, "job_3", name="april", event_name="signup", status="QUEUED")
    await create(store, "job_x", account="other", name="march")

    async def ids(where: JobFilter, limit: int = 100) -> list[str]:
        found = await pages(lambda cursor: store.jobs.list("acme", where, cursor=cursor, limit=limit))
        return [j.id for page in found for j in page]

    assert await ids(JobFilter()) == ["job_3", "job_2", "job_1", "job_0"]
    assert await ids(JobFilter(), limit=1) == ["job_3", "job_2", "job_1", "job_0"]
    assert await ids(JobFilter(), limit=3) == ["job_3", "job_2", "job_1", "job_0"]
    assert await ids(JobFilter(name="march")) == ["job_1", "job_0"]
    assert await ids(JobFilter(event_name="signup")) == ["job_3", "job_2", "job_0"]
    assert await ids(JobFilter(tags=("eu", "crm"))) == ["job_2", "job_0"]
    assert await ids(JobFilter(statuses=("QUEUED", "DONE"))) == ["job_3", "job_1", "job_0"]
    assert await ids(JobFilter(name="april", event_name="signup", statuses=("QUEUED",))) == ["job_3"]
    assert await ids(JobFilter(name="june")) == []
    page = await store.jobs.list("acme", JobFilter(), cursor=None, limit=4)
    assert page.next_cursor is None


async def test_update_changes_name_tags_and_scopes_unless_the_status_forbids(store: Store) -> None:
    await create(store, "job_1", status="QUEUED")
    after, changed = await store.jobs.update(
        "acme",
        "job_1",
        {"name": "renamed", "tags": ("t1",), "scopes": ("CLIENT_ADMIN",)},
        unless_status=("DONE",),
        now=T0 + 5,
    )
    assert changed
    assert after is not None
    assert (after.name, after.tags, after.scopes, after.updated_time) == ("renamed", ("t1",), ("CLIENT_ADMIN",), T0 + 5)
    assert await store.jobs.get("job_1") == after
    found, changed = await store.jobs.update("acme", "job_1", {"name": "no"}, unless_status=("QUEUED",), now=T0 + 6)
    assert not changed
    assert found == after
    assert await store.jobs.get("job_1") == after
    assert await store.jobs.update("other", "job_1", {"name": "no"}, unless_status=(), now=T0 + 7) == (None, False)
    assert await store.jobs.update("acme", "job_missing", {"name": "no"}, unless_status=(), now=T0) == (None, False)


async def test_transition_moves_only_from_an_allowed_status_with_changes_and_notification(store: Store) -> None:
    await create(store, "job_1", status="QUEUED")
    found, moved = await store.jobs.transition("job_1", allowed_from=("PENDING",), to="CANCELED", now=T0 + 1)
    assert not moved
    assert found is not None
    assert found.status == "QUEUED"
    assert (await store.jobs.get("job_1")) == found
    before = len(await store.events.after(0, limit=100))
    after, moved = await store.jobs.transition(
        "job_1",
        allowed_from=("PENDING", "QUEUED"),
        to="FAILED",
        now=T0 + 2,
        changes={"error_code": "FILE_UNREADABLE", "error_message": "no", "completed_time": T0 + 2},
        notification=lambda j: notification(j, "batch_job_finished", T0 + 2),
    )
    assert moved
    assert after is not None
    assert (after.status, after.error_code, after.error_message) == ("FAILED", "FILE_UNREADABLE", "no")
    assert (after.updated_time, after.completed_time) == (T0 + 2, T0 + 2)
    assert await store.jobs.get("job_1") == after
    logged = await store.events.after(0, limit=100)
    assert len(logged) == before + 1
    # The notification is made from the job after the move.
    assert logged[-1].event_name == "batch_job_finished"
    assert json.loads(logged[-1].data)["status"] == "FAILED"
    assert await store.jobs.transition("job_missing", allowed_from=("QUEUED",), to="DONE", now=T0) == (None, False)


async def test_transition_that_does_not_move_stores_no_notification(store: Store) -> None:
    await create(store, "job_1", status="DONE")
    before = await store.events.after(0, limit=100)
    _, moved = await store.jobs.transition(
        "job_1",
        allowed_from=("QUEUED",),
        to="CANCELED",
        now=T0 + 1,
        notification=lambda j: notification(j, "batch_job_finished", T0 + 1),
    )
    assert not moved
    assert await store.events.after(0, limit=100) == before


async def test_transition_with_a_holder_moves_only_while_it_holds_the_lease(store: Store) -> None:
    await running(store, "job_1", owner="w1")
    found, moved = await store.jobs.transition(
        "job_1", allowed_from=("IN_PROGRESS",), to="DISPATCHING", now=T0 + 1, holder="w2"
    )
    assert not moved
    assert found is not None
    assert found.status == "IN_PROGRESS"
    after, moved = await store.jobs.transition(
        "job_1", allowed_from=("IN_PROGRESS",), to="DISPATCHING", now=T0 + 1, holder="w1"
    )
    assert moved
    assert after is not None
    assert after.status == "DISPATCHING"
    # w1 still holds it (no release): nobody else can claim it while live.
    assert await store.jobs.claim("job_1", owner="w2", now=T0 + 2, seconds=30, statuses=("DISPATCHING",)) is None


async def test_transition_with_release_drops_the_lease_in_the_same_move(store: Store) -> None:
    await running(store, "job_1", owner="w1")
    _, moved = await store.jobs.transition(
        "job_1", allowed_from=("IN_PROGRESS",), to="DISPATCHING", now=T0 + 1, holder="w1", release=True
    )
    assert moved
    # Free at once, long before the lease would have expired.
    taken = await store.jobs.claim_next(owner="w2", now=T0 + 2, seconds=30, statuses=("DISPATCHING",))
    assert taken is not None
    assert taken.id == "job_1"
    # And w1, no longer the holder, moves it no further.
    _, moved = await store.jobs.transition("job_1", allowed_from=("DISPATCHING",), to="DONE", now=T0 + 3, holder="w1")
    assert not moved


async def test_record_chunk_stores_events_row_errors_counts_and_checkpoint(store: Store, tmp_path: Path) -> None:
    await running(store, "job_1")
    chunks = row_chunks(tmp_path, "job_1", ROWS, chunk_rows=3)
    assert [(c.rows, c.good, c.failed) for c in chunks] == [(3, 1, 2), (2, 1, 1)]
    first = await record(store, job_chunk("job_1", chunks[0], T0 + 1))
    assert first is not None
    assert (first.rows_read, first.success_rows, first.failed_rows) == (3, 1, 2)
    assert (first.next_offset, first.last_row) == (chunks[0].next_offset, chunks[0].last_row)
    assert first.updated_time == T0 + 1
    second = await record(store, job_chunk("job_1", chunks[1], T0 + 2))
    assert second is not None
    # Counts add up across chunks; the checkpoint is the last chunk's.
    assert (second.rows_read, second.success_rows, second.failed_rows) == (5, 2, 3)
    assert (second.next_offset, second.last_row) == (chunks[1].next_offset, chunks[1].last_row)
    assert await store.jobs.get("job_1") == second

    # The events are those of the encoded buffers, in row order.
    expected = [e for c in chunks for e in c.events]
    stored = await job_events(store, "job_1")
    assert [(e.event_id, e.job_id, e.row_number, e.event_name, e.identity) for e in stored] == [
        (e[0], e[1], e[2], e[3], e[4]) for e in expected
    ]
    assert [json.loads(e.data) for e in stored] == [json.loads(e[5]) for e in expected]
    assert all((e.source, e.account) == ("BATCH_JOB", "acme") for e in stored)
    assert [e.event_time for e in stored] == [T0 + 1, T0 + 2]

    issues = [i for c in chunks for i in c.issues]
    assert [(e.row_number, e.byte_offset, e.column, e.reason, e.message) for e in await all_errors(store, "job_1")] == [
        tuple(i) for i in issues
    ]


@pytest.mark.parametrize(
    ("status", "holder"),
    [("DISPATCHING", "w1"), ("IN_PROGRESS", "w2")],
    ids=["status-moved-on", "lease-taken-over"],
)
async def test_record_chunk_stores_nothing_unless_status_and_holder_match(
    store: Store, tmp_path: Path, status: str, holder: str
) -> None:
    await running(store, "job_1", owner="w1")
    if status != "IN_PROGRESS":
        await store.jobs.transition("job_1", allowed_from=("IN_PROGRESS",), to=status, now=T0 + 1)
    else:
        # w1 stalled past its lease and w2 took the job over.
        assert await store.jobs.claim("job_1", owner=holder, now=T0 + 60, seconds=30, statuses=(status,))
    before = await store.jobs.get("job_1")
    chunk = row_chunks(tmp_path, "job_1", ROWS)[0]
    assert await record(store, job_chunk("job_1", chunk, T0 + 70)) is None
    assert await store.jobs.get("job_1") == before
    assert await job_events(store, "job_1") == []
    assert await all_errors(store, "job_1") == []


async def test_record_chunk_of_a_job_that_does_not_exist_is_none(store: Store, tmp_path: Path) -> None:
    chunk = row_chunks(tmp_path, "job_x", ROWS)[0]
    assert await record(store, job_chunk("job_x", chunk)) is None
    assert await job_events(store, "job_x") == []


async def test_a_chunk_that_cannot_be_stored_whole_stores_nothing(store: Store, tmp_path: Path) -> None:
    before = await running(store, "job_1")
    good = job_chunk("job_1", row_chunks(tmp_path, "job_1", ROWS)[0])
    # Its events are fine; one row error is malformed, so whatever the
    # backend stores first, the chunk cannot be stored whole.
    broken = dataclasses.replace(good, issues=[*good.issues, (99, 0, "email")])  # type: ignore[list-item]
    with pytest.raises(Exception):  # noqa: B017, PT011 - each backend reports a bad record its own way
        await record(store, broken)
    assert await store.jobs.get("job_1") == before
    assert await job_events(store, "job_1") == []
    assert await all_errors(store, "job_1") == []
    # And the same chunk, well formed, then goes in whole.
    assert await record(store, good) is not None
    assert len(await job_events(store, "job_1")) == good.good


async def test_row_errors_page_in_row_order(store: Store, tmp_path: Path) -> None:
    await running(store, "job_1")
    rows = [f"bad{i},1" for i in range(7)]
    for chunk in row_chunks(tmp_path, "job_1", rows, chunk_rows=3):
        await record(store, job_chunk("job_1", chunk))
    found = await pages(lambda cursor: store.jobs.row_errors("job_1", cursor=cursor, limit=3))
    assert [[e.row_number for e in page] for page in found] == [[1, 2, 3], [4, 5, 6], [7]]
    # Another job's errors are its own.
    assert await all_errors(store, "job_other") == []


async def test_delete_removes_a_job_and_its_row_errors_only_from_allowed_statuses(store: Store, tmp_path: Path) -> None:
    await running(store, "job_1")
    chunk = row_chunks(tmp_path, "job_1", ROWS)[0]
    await record(store, job_chunk("job_1", chunk))
    found, deleted = await store.jobs.delete("acme", "job_1", allowed_from=("DONE", "FAILED"))
    assert not deleted
    assert found is not None
    assert found.status == "IN_PROGRESS"
    assert await store.jobs.get("job_1") is not None
    assert await store.jobs.delete("other", "job_1", allowed_from=("IN_PROGRESS",)) == (None, False)
    assert await store.jobs.get("job_1") is not None
    await store.jobs.transition("job_1", allowed_from=("IN_PROGRESS",), to="DONE", now=T0 + 1)
    gone, deleted = await store.jobs.delete("acme", "job_1", allowed_from=("DONE", "FAILED"))
    assert deleted
    assert gone is not None
    assert gone.id == "job_1"
    assert await store.jobs.get("job_1") is None
    assert await all_errors(store, "job_1") == []
    assert await store.jobs.delete("acme", "job_1", allowed_from=("DONE",)) == (None, False)
