"""Bulk create events (Klaviyo): from a validated request to profile updates
and events, and the processor that applies stored jobs.

The RPC stores the request with its job (QUEUED) and returns; the processor
then applies the whole job in one store transaction (PROCESSING → COMPLETE),
so a crash in between leaves the job to be applied again on the next start,
whole and once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable

from batchgrpc import core, metrics, tracing
from batchgrpc.leases import Leases
from batchgrpc.store import BulkJob, BulkTally, IngestBatch, IngestOutcome, Lease, Store

log = logging.getLogger("batchgrpc.bulk")

ITEMS = "/data/attributes/events-bulk-create/data"
_ITEM_POINTER = re.compile(r"^/data/attributes/events-bulk-create/data/(\d+)(?:/attributes/events/data/(\d+))?")


def rejected_by(pointer: str) -> tuple[int, int | None] | None:
    """(item, event) a violation at `pointer` rejects in partial mode: the
    event alone, or the whole item (event None) for a profile problem. None
    for a pointer outside any item: that fails the request."""
    match = _ITEM_POINTER.match(pointer)
    if match is None:
        return None
    item, event = match.groups()
    return int(item), None if event is None else int(event)


async def batch_of(request: bytes, job_id: str, rejected: set[tuple[int, int | None]], now: float) -> IngestBatch:
    """The profile updates and events of a stored request, leaving out what
    partial success rejected: decoded by the core (off the event loop) into
    two buffers, no Python object per profile or event."""
    rows = await core.bulk_rows(request, job_id, rejected, now)
    pointers = [f"{ITEMS}/{item}" for item in rows.items]
    return IngestBatch(rows.profiles, rows.events, rows.event_counts, pointers)


def tally(job: BulkJob, batch: IngestBatch, outcomes: list[IngestOutcome]) -> BulkTally:
    """A job's counts once its items are applied: an item whose profile id
    matches nobody is rejected with its events (upstream's 404 for that
    profile), beside what validation rejected at create."""
    rejected = job.rejected_count
    errors = list(job.errors)
    for count, pointer, outcome in zip(batch.event_counts, batch.pointers, outcomes, strict=True):
        if outcome.error:
            rejected += count
            errors.append((f"{pointer}/attributes/profile/data/id", "PROFILE_NOT_FOUND", outcome.error))
    return BulkTally(
        accepted=sum(o.accepted for o in outcomes),
        deduplicated=sum(o.deduplicated for o in outcomes),
        rejected=rejected,
        errors=tuple(errors),
    )


class BulkProcessor:
    """Applies stored bulk jobs, one task each, under a lease.

    The worker that stores a job holds its lease from the start and applies
    it next; the poll takes up jobs whose worker died or stalled past the
    lease (at most `max_taken` at a time, so a backlog left by a dead worker
    is shared among the live ones)."""

    def __init__(
        self,
        store: Store,
        leases: Leases,
        items: Callable[[bytes, str, set[tuple[int, int | None]], float], Awaitable[IngestBatch]],
        *,
        max_taken: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._leases = leases
        self._items = items
        self._max_taken = max_taken
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._taken = 0
        self._poller: asyncio.Task[None] | None = None

    def lease(self) -> Lease:
        """The lease a job created here is stored with."""
        return self._leases.lease()

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll(), name="bulk poller")

    def submit(self, job_id: str) -> None:
        """Applies a job stored here (with this worker's lease)."""
        self._spawn(job_id, taken=False)

    def _spawn(self, job_id: str, *, taken: bool) -> None:
        if job_id in self._tasks:
            return
        task = asyncio.create_task(self._process(job_id), name=f"bulk {job_id}")
        self._tasks[job_id] = task
        self._taken += taken

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.pop(job_id, None)
            self._taken -= taken

        task.add_done_callback(done)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        tasks = [t for t in (self._poller, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            try:
                while self._taken < self._max_taken:
                    job = await self._store.bulk_jobs.claim_next(
                        owner=self._leases.owner, now=self._clock(), seconds=self._leases.seconds
                    )
                    if job is None:
                        break
                    log.info("taking up", extra={"fields": {"job_id": job.id, "status": job.status}})
                    self._spawn(job.id, taken=True)
            except Exception:
                log.exception("bulk poll failed")
            await asyncio.sleep(self._leases.poll_seconds)

    async def _process(self, job_id: str) -> None:
        owner = self._leases.owner
        try:
            job = await self._store.bulk_jobs.start(job_id, holder=owner, now=self._clock())
            if job is None:
                return
            # In the trace of the request that created the job, whichever
            # worker processes it, and its events carry that request's.
            with tracing.continued("bulk.process", job.traceparent):
                rejected = {hit for pointer, _, _ in job.errors if (hit := rejected_by(pointer)) is not None}
                items = await self._items(job.request, job.id, rejected, job.created_time)
                batch = dataclasses.replace(items, traceparent=job.traceparent)
                done = await self._store.bulk_jobs.complete(
                    job.id,
                    batch,
                    tally=lambda job, outcomes: tally(job, batch, outcomes),
                    now=self._clock(),
                    holder=owner,
                )
            if done is None:
                log.info("bulk job lease lost", extra={"fields": {"job_id": job_id}})
            else:
                metrics.dispatched("BULK_CREATE", done[0].accepted_count)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bulk job failed", extra={"fields": {"job_id": job_id}})
            await self._store.bulk_jobs.fail(
                job_id, "The job stopped on an internal error.", self._clock(), holder=owner
            )
