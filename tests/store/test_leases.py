"""Leases: JobStore.claim / claim_next / release and the LeaseStore across
batch jobs, bulk jobs and named leases."""

from __future__ import annotations

import asyncio

from batchgrpc.store import BatchJob, Lease, Store
from tests.store.build import T0, bulk_job, job, notification
from tests.store.conftest import OpenStore

LEASE = 30.0
RUNNABLE = ("QUEUED", "IN_PROGRESS")


async def create(store: Store, job_id: str, status: str = "QUEUED", created: float = T0) -> BatchJob:
    made = job(job_id, status=status, created_time=created, updated_time=created)
    await store.jobs.create(made, notification(made))
    return made


async def claim(store: Store, job_id: str, owner: str, now: float) -> BatchJob | None:
    return await store.jobs.claim(job_id, owner=owner, now=now, seconds=LEASE, statuses=RUNNABLE)


async def claim_next(store: Store, owner: str, now: float) -> str | None:
    taken = await store.jobs.claim_next(owner=owner, now=now, seconds=LEASE, statuses=RUNNABLE)
    return taken.id if taken is not None else None


async def test_claim_leases_a_job_in_one_of_the_statuses(store: Store) -> None:
    made = await create(store, "job_1")
    claimed = await claim(store, "job_1", "w1", T0)
    assert claimed == made
    assert await store.leases.owners() == ["w1"]
    assert await claim(store, "job_missing", "w1", T0) is None
    await create(store, "job_done", status="DONE")
    assert await claim(store, "job_done", "w1", T0) is None


async def test_claim_is_refused_while_another_holds_a_live_lease(store: Store) -> None:
    await create(store, "job_1")
    assert await claim(store, "job_1", "w1", T0) is not None
    assert await claim(store, "job_1", "w2", T0 + LEASE - 1) is None
    # Its own holder may claim it again (a restart of the same worker).
    assert await claim(store, "job_1", "w1", T0 + 1) is not None
    # Past the (renewed) expiry, anyone may take it over.
    assert await claim(store, "job_1", "w2", T0 + 1 + LEASE + 1) is not None
    assert await store.leases.owners() == ["w2"]


async def test_claim_next_takes_the_oldest_free_job_first(store: Store) -> None:
    await create(store, "job_a", created=T0)
    await create(store, "job_b", created=T0 + 1)
    await create(store, "job_c", created=T0 + 2)
    assert await claim_next(store, "w1", T0 + 10) == "job_a"
    # A job w1 holds is not free, not even for w1.
    assert await claim_next(store, "w1", T0 + 10) == "job_b"
    assert await claim_next(store, "w2", T0 + 10) == "job_c"
    assert await claim_next(store, "w2", T0 + 10) is None


async def test_claim_next_skips_live_leases_and_takes_expired_ones(store: Store) -> None:
    await create(store, "job_a", created=T0)
    await create(store, "job_b", created=T0 + 1)
    assert await claim(store, "job_a", "w1", T0) is not None
    assert await claim_next(store, "w2", T0 + 1) == "job_b"
    assert await claim_next(store, "w3", T0 + LEASE - 1) is None
    # w1's lease on job_a ran out, and w2's on job_b (from T0 + 1) too.
    assert await claim_next(store, "w3", T0 + LEASE + 2) == "job_a"
    assert await claim_next(store, "w3", T0 + LEASE + 2) == "job_b"
    assert await store.leases.owners() == ["w3"]


async def test_claim_next_never_takes_a_job_in_a_status_not_given(store: Store) -> None:
    for i, status in enumerate(("PENDING", "DISPATCHING", "DONE", "FAILED", "CANCELED", "EXPIRED")):
        await create(store, f"job_{status.lower()}", status=status, created=T0 + i)
    assert await claim_next(store, "w1", T0 + 10) is None
    assert await store.leases.owners() == []
    taken = await store.jobs.claim_next(owner="w1", now=T0 + 10, seconds=LEASE, statuses=("DISPATCHING",))
    assert taken is not None
    assert taken.id == "job_dispatching"


async def test_release_frees_a_job_at_once_but_only_for_its_holder(store: Store) -> None:
    await create(store, "job_1")
    await claim(store, "job_1", "w1", T0)
    await store.jobs.release("job_1", "w2")
    assert await claim_next(store, "w2", T0 + 1) is None
    await store.jobs.release("job_1", "w1")
    assert await store.leases.owners() == []
    assert await claim_next(store, "w2", T0 + 1) == "job_1"


async def test_a_named_lease_is_acquired_held_and_taken_over_after_expiry(store: Store) -> None:
    assert await store.leases.acquire("relay", "w1", now=T0, seconds=LEASE)
    assert await store.leases.holds("relay", "w1", now=T0 + 1)
    assert not await store.leases.holds("relay", "w2", now=T0 + 1)
    assert not await store.leases.acquire("relay", "w2", now=T0 + LEASE - 1, seconds=LEASE)
    # Its owner renews it by acquiring again.
    assert await store.leases.acquire("relay", "w1", now=T0 + LEASE - 1, seconds=LEASE)
    assert not await store.leases.acquire("relay", "w2", now=T0 + LEASE + 1, seconds=LEASE)
    # Expired: w1 no longer holds it, and w2 takes it.
    assert not await store.leases.holds("relay", "w1", now=T0 + 2 * LEASE)
    assert await store.leases.acquire("relay", "w2", now=T0 + 2 * LEASE, seconds=LEASE)
    assert await store.leases.holds("relay", "w2", now=T0 + 2 * LEASE)
    assert not await store.leases.holds("relay", "w1", now=T0 + 2 * LEASE)
    # Names are independent.
    assert await store.leases.acquire("other", "w1", now=T0 + 2 * LEASE, seconds=LEASE)
    assert not await store.leases.holds("nothing", "w1", now=T0)


async def test_renew_extends_every_lease_of_that_owner_and_no_other(store: Store) -> None:
    await create(store, "job_w1", created=T0)
    await create(store, "job_w2", created=T0 + 1)
    await claim(store, "job_w1", "w1", T0)
    await claim(store, "job_w2", "w2", T0)
    await store.bulk_jobs.create(bulk_job("bulk_w1"), Lease("w1", T0 + LEASE))
    await store.bulk_jobs.create(bulk_job("bulk_w2", created=T0 + 1), Lease("w2", T0 + LEASE))
    await store.leases.acquire("relay", "w1", now=T0, seconds=LEASE)
    await store.leases.acquire("sweeper", "w2", now=T0, seconds=LEASE)

    # Past the expiry, but nobody took them over: still w1's, and renewed.
    renewed_at = T0 + LEASE + 5
    assert await store.leases.renew("w1", now=renewed_at, seconds=LEASE) == 3
    later = renewed_at + LEASE - 1
    # w1's three hold; w2's three, not renewed, are free.
    assert await store.leases.holds("relay", "w1", now=later)
    assert not await store.leases.acquire("relay", "w3", now=later, seconds=LEASE)
    assert await claim(store, "job_w1", "w3", later) is None
    assert await claim_next(store, "w3", later) == "job_w2"
    bulk = await store.bulk_jobs.claim_next(owner="w3", now=later, seconds=LEASE)
    assert bulk is not None
    assert bulk.id == "bulk_w2"
    assert await store.bulk_jobs.claim_next(owner="w3", now=later, seconds=LEASE) is None
    assert await store.leases.acquire("sweeper", "w3", now=later, seconds=LEASE)
    # What was taken over is no longer w2's to renew.
    assert await store.leases.renew("w2", now=later, seconds=LEASE) == 0
    assert await store.leases.renew("nobody", now=later, seconds=LEASE) == 0


async def test_owners_lists_each_holder_of_any_kind_of_lease_once(store: Store) -> None:
    assert await store.leases.owners() == []
    await create(store, "job_1")
    await create(store, "job_2", created=T0 + 1)
    await claim(store, "job_1", "w_job", T0)
    await claim(store, "job_2", "w_job", T0)
    await store.bulk_jobs.create(bulk_job("bulk_1"), Lease("w_bulk", T0 + LEASE))
    await store.leases.acquire("relay", "w_named", now=T0, seconds=LEASE)
    await store.leases.acquire("relay2", "w_job", now=T0, seconds=LEASE)
    assert sorted(await store.leases.owners()) == ["w_bulk", "w_job", "w_named"]


async def test_release_owner_drops_every_lease_of_a_dead_owner_only(store: Store) -> None:
    await create(store, "job_1")
    await create(store, "job_2", created=T0 + 1)
    await claim(store, "job_1", "dead", T0)
    await claim(store, "job_2", "alive", T0)
    await store.bulk_jobs.create(bulk_job("bulk_1"), Lease("dead", T0 + LEASE))
    await store.leases.acquire("relay", "dead", now=T0, seconds=LEASE)
    assert await store.leases.release_owner("dead") == 3
    assert await store.leases.owners() == ["alive"]
    # Free at once, long before the leases would have run out.
    assert await claim_next(store, "w3", T0 + 1) == "job_1"
    bulk = await store.bulk_jobs.claim_next(owner="w3", now=T0 + 1, seconds=LEASE)
    assert bulk is not None
    assert bulk.id == "bulk_1"
    assert await store.leases.acquire("relay", "w3", now=T0 + 1, seconds=LEASE)
    assert await store.leases.release_owner("dead") == 0


async def test_two_workers_racing_claim_next_on_one_database_never_share_a_job(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    jobs = [f"job_{i:02}" for i in range(20)]
    for i, job_id in enumerate(jobs):
        await create(first, job_id, created=T0 + i)

    async def take_all(store: Store, owner: str) -> list[str]:
        taken = []
        while (job_id := await claim_next(store, owner, T0 + 100)) is not None:
            taken.append(job_id)
        return taken

    one, two = await asyncio.gather(take_all(first, "w1"), take_all(second, "w2"))
    assert sorted(one + two) == jobs
    assert not set(one) & set(two)


async def test_two_workers_racing_for_one_job_one_gets_it(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    await create(first, "job_1")
    for round_ in range(10):
        now = T0 + round_ * (LEASE + 1) + 100
        one, two = await asyncio.gather(claim_next(first, "w1", now), claim_next(second, "w2", now))
        # Each round starts after the last round's lease ran out.
        assert sorted([one or "", two or ""]) == ["", "job_1"]
