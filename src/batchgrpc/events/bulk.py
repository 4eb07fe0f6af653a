"""Bulk create events (Klaviyo): from a validated request to profile updates
and events, and the processor that applies stored jobs.

The RPC stores the request with its job (QUEUED) and returns; the processor
then applies the whole job in one store transaction (PROCESSING → COMPLETE),
so a crash in between leaves the job to be applied again on the next start,
whole and once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.leases import Leases
from batchgrpc.store import BulkJob, BulkTally, IngestItem, IngestOutcome, Lease, NewEvent, ProfileUpdate, Store

log = logging.getLogger("batchgrpc.bulk")

ITEMS = "/data/attributes/events-bulk-create/data"
_ITEM_POINTER = re.compile(r"^/data/attributes/events-bulk-create/data/(\d+)(?:/attributes/events/data/(\d+))?")
IDENTIFIERS = ("email", "phone_number", "external_id", "anonymous_id")
PROFILE_FIELDS = ("first_name", "last_name", "organization", "locale", "title", "image")


def rejected_by(pointer: str) -> tuple[int, int | None] | None:
    """(item, event) a violation at `pointer` rejects in partial mode: the
    event alone, or the whole item (event None) for a profile problem. None
    for a pointer outside any item: that fails the request."""
    match = _ITEM_POINTER.match(pointer)
    if match is None:
        return None
    item, event = match.groups()
    return int(item), None if event is None else int(event)


def event_count(request: bulk_pb2.CreateEventBulkCreateJobRequest) -> int:
    return sum(len(e.attributes.events.data) for e in request.data.attributes.events_bulk_create.data)


def _struct(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _seconds(text: str, now: float) -> float:
    """An event time as Unix seconds, truncated to the second as upstream;
    `now` when absent. The core validated the text already."""
    if not text:
        return float(int(now))
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return float(int(moment.timestamp()))


def _profile_update(resource: bulk_pb2.ProfileResource) -> ProfileUpdate:
    attributes = resource.attributes
    identifiers = {name: getattr(attributes, name) for name in IDENTIFIERS if attributes.HasField(name)}
    if attributes.kx:
        identifiers["_kx"] = attributes.kx
    changes: dict[str, Any] = {name: getattr(attributes, name) for name in PROFILE_FIELDS if attributes.HasField(name)}
    if attributes.HasField("location"):
        changes["location"] = _struct(attributes.location)
    patch = resource.meta.patch_properties
    unset: Any = json_format.MessageToDict(patch.unset) if patch.HasField("unset") else []
    return ProfileUpdate(
        identifiers=identifiers,
        profile_id=resource.id,
        attributes=changes,
        properties=_struct(attributes.properties),
        append=_struct(patch.append),
        unappend=_struct(patch.unappend),
        unset=tuple(unset if isinstance(unset, list) else [unset]),
    )


def ingest_items(
    request: bulk_pb2.CreateEventBulkCreateJobRequest,
    job_id: str,
    rejected: set[tuple[int, int | None]],
    now: float,
) -> list[IngestItem]:
    """The profile updates and events of a request, leaving out what
    partial success rejected."""
    items = []
    for i, entry in enumerate(request.data.attributes.events_bulk_create.data):
        if (i, None) in rejected:
            continue
        events = []
        for j, resource in enumerate(entry.attributes.events.data):
            if (i, j) in rejected:
                continue
            attributes = resource.attributes
            moment = _seconds(attributes.time, now)
            value: Any = json_format.MessageToDict(attributes.value) if attributes.HasField("value") else None
            events.append(
                NewEvent(
                    event_name=attributes.metric.data.attributes.name,
                    event_time=moment,
                    data=json.dumps(_struct(attributes.properties), separators=(",", ":")),
                    # Upstream: without a unique_id, the time to the second
                    # stands in, so one profile has at most one such event
                    # per metric and second.
                    dedup_key=f"u:{attributes.unique_id}" if attributes.unique_id else f"t:{int(moment)}",
                    source="BULK_CREATE",
                    job_id=job_id,
                    row_number=j,
                    value=float(value) if value is not None else None,
                    value_currency=attributes.value_currency,
                    unique_id=attributes.unique_id,
                )
            )
        items.append(
            IngestItem(
                profile=_profile_update(entry.attributes.profile.data), events=tuple(events), pointer=f"{ITEMS}/{i}"
            )
        )
    return items


def tally(job: BulkJob, items: list[IngestItem], outcomes: list[IngestOutcome]) -> BulkTally:
    """A job's counts once its items are applied: an item whose profile id
    matches nobody is rejected with its events (upstream's 404 for that
    profile), beside what validation rejected at create."""
    rejected = job.rejected_count
    errors = list(job.errors)
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome.error:
            rejected += len(item.events)
            errors.append((f"{item.pointer}/attributes/profile/data/id", "PROFILE_NOT_FOUND", outcome.error))
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
        items: Callable[[bytes, str, set[tuple[int, int | None]], float], Awaitable[list[IngestItem]]],
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
            rejected = {hit for pointer, _, _ in job.errors if (hit := rejected_by(pointer)) is not None}
            items = await self._items(job.request, job.id, rejected, job.created_time)
            done = await self._store.bulk_jobs.complete(
                job.id, items, tally=lambda job, outcomes: tally(job, items, outcomes), now=self._clock(), holder=owner
            )
            if done is None:
                log.info("bulk job lease lost", extra={"fields": {"job_id": job_id}})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bulk job failed", extra={"fields": {"job_id": job_id}})
            await self._store.bulk_jobs.fail(
                job_id, "The job stopped on an internal error.", self._clock(), holder=owner
            )


def items_of(request: bytes, job_id: str, rejected: set[tuple[int, int | None]], now: float) -> list[IngestItem]:
    """The profile updates and events of a stored request's bytes."""
    return ingest_items(bulk_pb2.CreateEventBulkCreateJobRequest.FromString(request), job_id, rejected, now)
