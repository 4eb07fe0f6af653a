"""What the metrics gauges read (`batchgrpc.metrics.GaugeRefresher`): jobs
per status, of every account, and the event log's newest position."""

from __future__ import annotations

from batchgrpc.store import Lease, Store
from tests.store.build import T0, bulk_job, event, job, notification


async def test_jobs_are_counted_per_status_across_accounts(store: Store) -> None:
    assert await store.jobs.count_by_status() == {}
    assert await store.bulk_jobs.count_by_status() == {}
    for job_id, account in (("job_1", "acme"), ("job_2", "other"), ("job_3", "acme")):
        made = job(job_id, account=account)
        await store.jobs.create(made, notification(made))
    moved, ok = await store.jobs.transition("job_2", allowed_from=("PENDING",), to="CANCELED", now=T0 + 1)
    assert ok
    assert moved is not None
    assert await store.jobs.count_by_status() == {"PENDING": 2, "CANCELED": 1}
    lease = Lease("w1", T0 + 60)
    await store.bulk_jobs.create(bulk_job("bulk_1"), lease)
    await store.bulk_jobs.create(bulk_job("bulk_2", account="other"), lease)
    assert await store.bulk_jobs.start("bulk_2", holder="w1", now=T0) is not None
    assert await store.bulk_jobs.count_by_status() == {"QUEUED": 1, "PROCESSING": 1}
    # Jobs and bulk jobs are counted apart.
    assert sum((await store.jobs.count_by_status()).values()) == 3


async def test_the_newest_position_is_the_last_events(store: Store) -> None:
    assert await store.events.newest_position() == 0
    await store.events.append([event("e1"), event("e2", account="other")])
    await store.events.append([event("e3")])
    positions = [e.position for e in await store.events.after(0, limit=10)]
    assert len(positions) == 3
    assert await store.events.newest_position() == positions[-1] == max(positions)
