"""The batch job runner: reads each job's data source through the Rust core
and stores its events, in the server process, without blocking RPCs.

PENDING → QUEUED → (a worker with a free slot leases it) IN_PROGRESS → (file
read) DISPATCHING → (the sink has every event) DONE, or FAILED for a file
that cannot be read. Each worker runs at most `max_running` jobs; the Rust
core releases the interpreter, so the event loop keeps serving meanwhile.

A job runs only under its lease (`batchgrpc.leases`). The worker that
creates a job leases it at once when it has a slot, and reads with the
compiled spec its creation made, so the patterns are compiled once; any
other job (queued, or left by a worker that died or stalled past its lease)
is leased by whichever worker's poll finds a free slot first, and compiled
when it starts (off the event loop too).

Every chunk (its events, row errors, counts and checkpoint) is stored in one
transaction, and only while the job is still IN_PROGRESS and this worker
holds its lease: a cancel or a lost lease stops the job at its next chunk,
and the worker that takes it over reads on from the last checkpoint with
exact counts, dispatching no event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from batchgrpc import core, metrics, tracing
from batchgrpc.batches.files import Files
from batchgrpc.batches.status import TERMINAL, UNFINISHED_NAMES, Status, may_move
from batchgrpc.errors import DataFileError, InvalidJobSpec
from batchgrpc.eventids import notification_id
from batchgrpc.leases import Leases
from batchgrpc.memory import give_back_memory
from batchgrpc.store import BatchJob, Event, JobChunk, Store

log = logging.getLogger("batchgrpc.jobs")


class Delivery(Protocol):
    async def delivered(self, position: int) -> bool:
        """Whether the sink has every event up to `position`."""


#: How often a DISPATCHING job checks whether the sink has its events.
DELIVERY_POLL_SECONDS = 0.1


def notification(job: BatchJob, kind: str, now: float) -> Event:
    """The batch-job-created or batch-job-finished event of `job`. Its id is
    derived from the job and the kind, so it is stored once whatever happens."""
    data = {
        "batch_job_id": job.id,
        "name": job.name,
        "status": job.status,
        "tags": list(job.tags),
        "data_source": {"type": job.source_type, "id": job.source_id},
        "rows_read": job.rows_read,
        "success_rows": job.success_rows,
        "failed_rows": job.failed_rows,
        "error_code": job.error_code,
    }
    return Event(
        event_id=notification_id(job.id, kind),
        account=job.account,
        source="NOTIFICATION",
        event_name=kind,
        event_time=now,
        data=json.dumps(data, separators=(",", ":")),
        # The job's trace: the created and the finished notification alike.
        traceparent=job.traceparent,
        # Not job_id: that field lists the events a job dispatched from its
        # rows; notifications are found by name (and carry the id in data).
    )


class Changes:
    """Wakes watchers of a job when it changes (in this process)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, job_id: str) -> None:
        if (event := self._events.pop(job_id, None)) is not None:
            event.set()

    async def wait(self, job_id: str, seconds: float) -> None:
        """Returns on the job's next change, or after `seconds` (so a watcher
        also sees changes another replica made)."""
        event = self._events.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()


class JobRunner:
    def __init__(
        self,
        store: Store,
        files: Files,
        changes: Changes,
        leases: Leases,
        delivery: Delivery,
        *,
        max_running: int,
        chunk_rows: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._files = files
        self._changes = changes
        self._leases = leases
        self._owner = leases.owner
        self._delivery = delivery
        self._max_running = max_running
        self._chunk_rows = chunk_rows
        self._clock = clock
        #: The jobs this worker holds, each with its task.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._queueing: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._slot_free = asyncio.Event()

    def start(self) -> None:
        """Starts taking up jobs nobody holds: queued ones, and those of
        workers that died (the previous process, after a restart)."""
        self._poller = asyncio.create_task(self._poll(), name="job poller")

    def submit(self, job_id: str, spec: core.JobSpec | None = None) -> None:
        """Runs a job just created here, with `spec` (its compiled rules and
        settings) when there is a free slot; otherwise queues it for the
        first worker with one."""
        if job_id in self._tasks:
            return
        if len(self._tasks) >= self._max_running:
            # Queued: its spec is dropped (up to 16 MiB of patterns must not
            # wait in memory); whoever takes the job compiles it again.
            task = asyncio.create_task(self._queue(job_id), name=f"queue {job_id}")
            self._queueing.add(task)
            task.add_done_callback(self._queueing.discard)
            return
        self._hold(job_id, self._run(job_id, spec))

    def _hold(self, job_id: str, work: Coroutine[Any, Any, None]) -> None:
        if job_id in self._tasks:
            work.close()
            return
        task = asyncio.create_task(work, name=f"job {job_id}")
        self._tasks[job_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.pop(job_id, None)
            self._slot_free.set()

        task.add_done_callback(done)

    async def stop(self) -> None:
        """Stops every job where it is (each at a chunk boundary); their
        leases go with `Leases.stop`, so they are taken up again at once."""
        if self._poller is not None:
            self._poller.cancel()
        tasks = [t for t in (self._poller, *self._tasks.values(), *self._queueing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Waits until no job is running here (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            self._slot_free.clear()
            try:
                while len(self._tasks) < self._max_running:
                    job = await self._store.jobs.claim_next(
                        owner=self._owner,
                        now=self._clock(),
                        seconds=self._leases.seconds,
                        statuses=UNFINISHED_NAMES,
                    )
                    if job is None:
                        break
                    log.info(
                        "taking up",
                        extra={"fields": {"job_id": job.id, "status": job.status, "row": job.last_row}},
                    )
                    self._hold(job.id, self._run(job.id, None, job))
            except Exception:
                log.exception("job poll failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._leases.poll_seconds):
                    await self._slot_free.wait()

    async def _queue(self, job_id: str) -> None:
        job = await self._store.jobs.get(job_id)
        if job is not None and job.status == Status.PENDING:
            await self._move(job, Status.QUEUED, held=False)

    async def _move(
        self,
        job: BatchJob,
        to: str,
        changes: dict[str, object] | None = None,
        *,
        finished: bool = False,
        held: bool = True,
    ) -> BatchJob | None:
        """Moves `job` on from its current status, while this worker holds
        it; None when someone else (a cancel, a worker that took the lease
        over) moved it first."""
        if not may_move(job.status, to):
            raise RuntimeError(f"job {job.id}: no move from {job.status} to {to} in the status table")
        now = self._clock()
        after, moved = await self._store.jobs.transition(
            job.id,
            allowed_from=(job.status,),
            to=to,
            now=now,
            changes=changes,
            notification=(lambda j: notification(j, "batch_job_finished", now)) if finished else None,
            holder=self._owner if held else None,
            release=to in TERMINAL,
        )
        if not moved:
            return None
        if finished:
            metrics.dispatched("NOTIFICATION")
        self._changes.notify(job.id)
        return after

    async def _run(self, job_id: str, spec: core.JobSpec | None, job: BatchJob | None = None) -> None:
        try:
            if job is None:
                job = await self._store.jobs.claim(
                    job_id,
                    owner=self._owner,
                    now=self._clock(),
                    seconds=self._leases.seconds,
                    statuses=UNFINISHED_NAMES,
                )
                if job is not None:
                    log.info(
                        "taking up", extra={"fields": {"job_id": job.id, "status": job.status, "row": job.last_row}}
                    )
            if job is not None:
                await self._advance(job, spec)
        except Exception:
            # A bug or a store failure: fail the job visibly rather than
            # leave it IN_PROGRESS with nobody reading it.
            log.exception("job runner failed", extra={"fields": {"job_id": job_id}})
            current = await self._store.jobs.get(job_id)
            if current is not None and current.status not in TERMINAL:
                await self._move(
                    current,
                    Status.FAILED,
                    {
                        "error_code": "INTERNAL_ERROR",
                        "error_message": "The job stopped on an internal error.",
                        "completed_time": self._clock(),
                    },
                    finished=True,
                )
        finally:
            # Stopped or canceled while held: let it go rather than leave it
            # to expire (a job that finished released it with its last move).
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.jobs.release(job_id, self._owner))
        # The compiled spec goes with the job, its memory back to the system.
        del spec
        await give_back_memory()

    async def _advance(self, job: BatchJob | None, spec: core.JobSpec | None) -> None:
        if job is not None and job.status == Status.PENDING:
            job = await self._move(job, Status.QUEUED)
        if job is not None and job.status == Status.QUEUED:
            job = await self._move(job, Status.IN_PROGRESS, {"started_time": self._clock()})
        if job is not None and job.status == Status.IN_PROGRESS:
            # In the trace of the request that created the job, on whichever
            # worker reads it: a span for each chunk's parse and commit.
            with tracing.continued("batch.read", job.traceparent):
                job = await self._read(job, spec)
        if job is not None and job.status == Status.DISPATCHING:
            await self._dispatch(job)

    async def _dispatch(self, job: BatchJob) -> BatchJob | None:
        """Waits until the sink has every event of the job, then DONE."""
        last = await self._store.events.last_position(job.id)
        while not await self._delivery.delivered(last):
            await asyncio.sleep(DELIVERY_POLL_SECONDS)
            current = await self._store.jobs.get(job.id)
            if current is None or current.status != Status.DISPATCHING:
                return None
        return await self._move(job, Status.DONE, {"completed_time": self._clock()}, finished=True)

    async def _read(self, job: BatchJob, spec: core.JobSpec | None) -> BatchJob | None:
        """Reads the job's file from its checkpoint, storing chunk by chunk.
        Returns the job moved to DISPATCHING or FAILED, or None when it was
        canceled meanwhile."""
        started = time.perf_counter()
        try:
            source = await self._store.sources.get(job.account, job.source_type.lower(), job.source_id)
            if source is None:
                raise FileNotFoundError(errno.ENOENT, "its data source is gone")
            async with self._files.local(source) as path:
                if spec is None:
                    spec = await core.compile_job(
                        event_name=job.event_name,
                        default_event_name=job.default_event_name,
                        event_columns=list(job.event_columns),
                        event_data=job.event_data,
                        columns=list(job.columns),
                    )
                reader = await core.open_rows(
                    path,
                    job.source_format,
                    job_id=job.id,
                    spec=spec,
                    chunk_rows=self._chunk_rows,
                    resume_offset=job.next_offset,
                    resume_row=job.last_row,
                )
                # Read the next chunk while the last one is being stored.
                pending = asyncio.ensure_future(core.next_chunk(reader))
                while (chunk := await pending) is not None:
                    pending = asyncio.ensure_future(core.next_chunk(reader))
                    stored = await self._store.jobs.record_chunk(
                        JobChunk(
                            job_id=job.id,
                            encoded=chunk.encoded,
                            issues=chunk.issues,
                            rows=chunk.rows,
                            good=chunk.good,
                            failed=chunk.failed,
                            next_offset=chunk.next_offset,
                            last_row=chunk.last_row,
                            event_time=self._clock(),
                            traceparent=job.traceparent,
                        ),
                        account=job.account,
                        while_status=Status.IN_PROGRESS,
                        holder=self._owner,
                    )
                    if stored is None:
                        # Canceled, or the lease went to another worker (this one
                        # stalled past it): either way, not ours to write.
                        pending.cancel()
                        log.info("stopped", extra={"fields": {"job_id": job.id, "row": job.last_row}})
                        return None
                    job = stored
                    # Counted once committed: a chunk a lost lease kept out
                    # is counted by the worker that commits it.
                    metrics.rows_committed(chunk.good, chunk.failed)
                    self._changes.notify(job.id)
        except DataFileError as e:
            return await self._fail(job, e.file_reason, e.message, f"at byte {e.offset}")
        except InvalidJobSpec as e:
            # Stored before today's limits: the job cannot run as it is.
            return await self._fail(job, "INVALID_JOB_SPEC", e.message, e.field)
        except OSError as e:
            return await self._fail(job, "FILE_UNREADABLE", f"The data file cannot be read: {e.strerror}.", str(e))
        log.info(
            "read",
            extra={
                "fields": {
                    "job_id": job.id,
                    "rows": job.rows_read,
                    "success_rows": job.success_rows,
                    "failed_rows": job.failed_rows,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            },
        )
        return await self._move(job, Status.DISPATCHING)

    async def _fail(self, job: BatchJob, code: str, message: str, debug: str) -> BatchJob | None:
        # The job as stored now: chunks before the error moved its counts.
        current = await self._store.jobs.get(job.id)
        if current is None or current.status != Status.IN_PROGRESS:
            return None
        log.info("failed", extra={"fields": {"job_id": job.id, "error_code": code}})
        return await self._move(
            current,
            Status.FAILED,
            {"error_code": code, "error_message": message, "debug_message": debug, "completed_time": self._clock()},
            finished=True,
        )
