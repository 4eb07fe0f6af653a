"""BulkJobStore: stored bulk create jobs, applied once by the holder of
their lease."""

from __future__ import annotations

from batchgrpc.store import (
    BulkJob,
    BulkTally,
    EventFilter,
    IngestBatch,
    IngestItem,
    IngestOutcome,
    Lease,
    NewEvent,
    ProfileUpdate,
    Store,
)
from tests.store.build import T0, bulk_job

LEASE = 30.0


def items() -> IngestBatch:
    def viewed(key: str) -> NewEvent:
        return NewEvent("Viewed", T0, '{"page":"/"}', key, "BULK_CREATE", job_id="bulk_1")

    return IngestBatch.of(
        [
            IngestItem(ProfileUpdate(identifiers={"email": "ann@example.com"}), (viewed("a"), viewed("a")), "/data/0"),
            IngestItem(ProfileUpdate(identifiers={"email": "bob@example.com"}), (viewed("b"),), "/data/1"),
            # A profile id nobody has: rejected, with its events.
            IngestItem(ProfileUpdate(profile_id="01NOSUCHPROFILE0000000000"), (viewed("c"), viewed("d")), "/data/2"),
        ]
    )


def tally(job: BulkJob, outcomes: list[IngestOutcome]) -> BulkTally:
    """What the domain would count; the store records exactly this."""
    rejected = [o for o in outcomes if o.error]
    return BulkTally(
        accepted=sum(o.accepted for o in outcomes),
        deduplicated=sum(o.deduplicated for o in outcomes),
        rejected=job.rejected_count + 2 * len(rejected),
        errors=(*job.errors, *(("/data/2/attributes/profile/data/id", "PROFILE_NOT_FOUND", o.error) for o in rejected)),
    )


async def queued(store: Store, job_id: str = "bulk_1", owner: str = "w1", created: float = T0) -> None:
    await store.bulk_jobs.create(
        bulk_job(job_id, created=created, event_count=5, rejected_count=1, errors=(("/data/9", "INVALID", "bad"),)),
        Lease(owner, created + LEASE),
    )


async def stored_events(store: Store) -> int:
    return len((await store.events.list("acme", EventFilter(), cursor=None, limit=1000)).items)


async def test_a_created_job_reads_back_in_its_account(store: Store) -> None:
    await queued(store)
    job = await store.bulk_jobs.get("acme", "bulk_1")
    assert job is not None
    assert (job.status, job.event_count, job.rejected_count) == ("QUEUED", 5, 1)
    assert job.errors == (("/data/9", "INVALID", "bad"),)
    assert (job.created_time, job.completed_time, job.request) == (T0, None, b"serialized request")
    assert await store.bulk_jobs.get("other", "bulk_1") is None
    assert await store.bulk_jobs.get("acme", "bulk_missing") is None
    # Created leased to its creator.
    assert await store.leases.owners() == ["w1"]


async def test_only_the_holder_starts_a_job(store: Store) -> None:
    await queued(store, owner="w1")
    assert await store.bulk_jobs.start("bulk_1", holder="w2", now=T0 + 1) is None
    unstarted = await store.bulk_jobs.get("acme", "bulk_1")
    assert unstarted is not None
    assert unstarted.status == "QUEUED"
    started = await store.bulk_jobs.start("bulk_1", holder="w1", now=T0 + 1)
    assert started is not None
    assert started.status == "PROCESSING"
    # Starting again (a retry of the same holder) finds it PROCESSING.
    again = await store.bulk_jobs.start("bulk_1", holder="w1", now=T0 + 2)
    assert again is not None
    assert again.status == "PROCESSING"
    assert await store.bulk_jobs.start("bulk_missing", holder="w1", now=T0 + 1) is None


async def test_claim_next_takes_the_oldest_job_whose_lease_expired(store: Store) -> None:
    await queued(store, "bulk_1", owner="w1", created=T0)
    await queued(store, "bulk_2", owner="w1", created=T0 + 1)
    await queued(store, "bulk_live", owner="w2", created=T0 + 20)
    await store.bulk_jobs.start("bulk_2", holder="w1", now=T0 + 2)
    assert await store.bulk_jobs.claim_next(owner="w3", now=T0 + LEASE - 1, seconds=LEASE) is None
    now = T0 + LEASE + 5
    first = await store.bulk_jobs.claim_next(owner="w3", now=now, seconds=LEASE)
    second = await store.bulk_jobs.claim_next(owner="w3", now=now, seconds=LEASE)
    assert first is not None
    assert second is not None
    # QUEUED and PROCESSING alike, oldest first; the live lease is left alone.
    assert (first.id, second.id) == ("bulk_1", "bulk_2")
    assert await store.bulk_jobs.claim_next(owner="w3", now=now, seconds=LEASE) is None
    # The new holder runs them; the old one no longer can.
    assert await store.bulk_jobs.start("bulk_1", holder="w1", now=now) is None
    assert await store.bulk_jobs.start("bulk_1", holder="w3", now=now) is not None


async def test_claim_next_never_takes_a_finished_job(store: Store) -> None:
    await queued(store, "bulk_done", owner="w1")
    await store.bulk_jobs.start("bulk_done", holder="w1", now=T0)
    assert (
        await store.bulk_jobs.complete("bulk_done", IngestBatch.of([]), tally=tally, now=T0 + 1, holder="w1")
        is not None
    )
    await queued(store, "bulk_failed", owner="w1", created=T0 + 1)
    await store.bulk_jobs.fail("bulk_failed", "boom", T0 + 2, holder="w1")
    assert await store.bulk_jobs.claim_next(owner="w2", now=T0 + 10 * LEASE, seconds=LEASE) is None
    assert await store.bulk_jobs.start("bulk_done", holder="w1", now=T0 + 3) is None


async def test_complete_by_the_holder_applies_the_items_and_records_the_counts(store: Store) -> None:
    await queued(store)
    await store.bulk_jobs.start("bulk_1", holder="w1", now=T0 + 1)
    done = await store.bulk_jobs.complete("bulk_1", items(), tally=tally, now=T0 + 2, holder="w1")
    assert done is not None
    job, outcomes = done
    assert job.status == "COMPLETE"
    assert job.completed_time == T0 + 2
    # 2 new events (one of Ann's two is a repeat), 1 deduplicated; the 1
    # rejected before, and the 2 events of the unknown profile.
    assert (job.accepted_count, job.deduplicated_count, job.rejected_count) == (2, 1, 3)
    assert job.errors[0] == ("/data/9", "INVALID", "bad")
    assert len(job.errors) == 2
    assert job.errors[1][0].startswith("/data/2")
    # The request is not kept once it is processed.
    assert job.request == b""
    assert [(o.accepted, o.deduplicated, bool(o.error)) for o in outcomes] == [
        (1, 1, False),
        (1, 0, False),
        (0, 0, True),
    ]
    assert await store.bulk_jobs.get("acme", "bulk_1") == job
    assert await stored_events(store) == 2
    page = await store.profiles.list("acme", {"email": "bob@example.com"}, cursor=None, limit=10)
    assert [p.id for p in page.items] == [outcomes[1].profile_id]
    # Done is done: no second application, and the lease is gone.
    assert await store.bulk_jobs.complete("bulk_1", items(), tally=tally, now=T0 + 3, holder="w1") is None
    assert await stored_events(store) == 2
    assert await store.leases.owners() == []


async def test_complete_by_anyone_but_the_holder_stores_nothing(store: Store) -> None:
    await queued(store, owner="w1")
    await store.bulk_jobs.start("bulk_1", holder="w1", now=T0 + 1)
    # w1 stalled past its lease; w2 took the job over.
    taken = await store.bulk_jobs.claim_next(owner="w2", now=T0 + LEASE + 1, seconds=LEASE)
    assert taken is not None
    assert await store.bulk_jobs.complete("bulk_1", items(), tally=tally, now=T0 + LEASE + 2, holder="w1") is None
    job = await store.bulk_jobs.get("acme", "bulk_1")
    assert job is not None
    assert (job.status, job.accepted_count, job.completed_time) == ("PROCESSING", 0, None)
    assert await stored_events(store) == 0
    assert (await store.profiles.list("acme", {}, cursor=None, limit=10)).items == []
    # The new holder applies it.
    assert await store.bulk_jobs.complete("bulk_1", items(), tally=tally, now=T0 + LEASE + 3, holder="w2") is not None
    assert await stored_events(store) == 2


async def test_fail_by_the_holder_marks_the_job_failed_with_the_message(store: Store) -> None:
    await queued(store, owner="w1")
    await store.bulk_jobs.start("bulk_1", holder="w1", now=T0 + 1)
    await store.bulk_jobs.fail("bulk_1", "not me", T0 + 2, holder="w2")
    job = await store.bulk_jobs.get("acme", "bulk_1")
    assert job is not None
    assert job.status == "PROCESSING"
    await store.bulk_jobs.fail("bulk_1", "stopped on an internal error", T0 + 3, holder="w1")
    job = await store.bulk_jobs.get("acme", "bulk_1")
    assert job is not None
    assert (job.status, job.completed_time) == ("FAILED", T0 + 3)
    assert job.errors[0] == ("/data/9", "INVALID", "bad")
    assert "stopped on an internal error" in [message for _, _, message in job.errors]
    assert "not me" not in [message for _, _, message in job.errors]
    assert await store.leases.owners() == []
    assert await store.bulk_jobs.complete("bulk_1", items(), tally=tally, now=T0 + 4, holder="w1") is None
