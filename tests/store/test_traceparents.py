"""Every event keeps the traceparent of the request behind it, whichever
way it is written (API.md, "Operating it": Kafka messages carry it): an
appended event's own, a request's for all its ingested events, a batch
job's for its rows, a bulk job's kept with the job until it is applied.
Without one (tracing off) an event has none."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from batchgrpc.store import Event, EventFilter, IngestBatch, IngestItem, Lease, NewEvent, ProfileUpdate, Store
from tests.store.build import T0, bulk_job, event, job, job_chunk, notification, row_chunks
from tests.store.test_bulk_jobs import items, tally
from tests.store.test_outbox import everything

CREATED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def events_of(store: Store) -> list[Event]:
    return (await store.events.list("acme", EventFilter(), cursor=None, limit=1000)).items


async def test_an_appended_event_keeps_its_own(store: Store) -> None:
    await store.events.append([event("e1", traceparent=CREATED), event("e2")])
    assert [e.traceparent for e in await everything(store)] == [CREATED, ""]


async def test_a_requests_ingested_events_keep_the_requests(store: Store) -> None:
    def viewed(key: str) -> NewEvent:
        return NewEvent("Viewed", T0, "{}", key, "TRACKING")

    def person(email: str, *keys: str) -> IngestItem:
        return IngestItem(ProfileUpdate(identifiers={"email": email}), tuple(viewed(k) for k in keys))

    traced = IngestBatch.of([person("ann@example.com", "a", "b"), person("bob@example.com", "c")], traceparent=CREATED)
    await store.profiles.ingest("acme", traced, T0)
    await store.profiles.ingest("acme", IngestBatch.of([person("cy@example.com", "d")]), T0)
    assert [e.traceparent for e in await events_of(store)] == [CREATED, CREATED, CREATED, ""]


async def test_a_batch_jobs_rows_and_notification_keep_its_creations(store: Store, tmp_path: Path) -> None:
    made = job("job_1", status="IN_PROGRESS", traceparent=CREATED)
    await store.jobs.create(made, dataclasses.replace(notification(made), traceparent=made.traceparent))
    stored = await store.jobs.get("job_1")
    assert stored is not None
    assert stored.traceparent == CREATED
    await store.jobs.claim("job_1", owner="w1", now=T0, seconds=30, statuses=("IN_PROGRESS",))
    (chunk,) = row_chunks(tmp_path, "job_1", ["a@example.com,1", "b@example.com,2"])
    chunked = dataclasses.replace(job_chunk("job_1", chunk), traceparent=stored.traceparent)
    assert await store.jobs.record_chunk(chunked, account="acme", while_status="IN_PROGRESS", holder="w1")
    assert [(e.source, e.traceparent) for e in await everything(store)] == [
        ("NOTIFICATION", CREATED),
        ("BATCH_JOB", CREATED),
        ("BATCH_JOB", CREATED),
    ]
    # An untraced job's rows have none.
    await store.jobs.create(job("job_2", status="IN_PROGRESS"), notification(job("job_2")))
    assert (await store.jobs.get("job_2")).traceparent == ""  # type: ignore[union-attr]


async def test_a_bulk_job_keeps_its_requests_until_it_is_applied(store: Store) -> None:
    await store.bulk_jobs.create(bulk_job("bulk_1", traceparent=CREATED), Lease("w1", T0 + 30))
    await store.bulk_jobs.create(bulk_job("bulk_2"), Lease("w1", T0 + 30))
    started = await store.bulk_jobs.start("bulk_1", holder="w1", now=T0 + 1)
    assert started is not None
    assert started.traceparent == CREATED
    assert (await store.bulk_jobs.get("acme", "bulk_2")).traceparent == ""  # type: ignore[union-attr]
    # The processor stores the job's events with the job's traceparent.
    batch = dataclasses.replace(items(), traceparent=started.traceparent)
    assert await store.bulk_jobs.complete("bulk_1", batch, tally=tally, now=T0 + 2, holder="w1")
    assert {e.traceparent for e in await events_of(store)} == {CREATED}
