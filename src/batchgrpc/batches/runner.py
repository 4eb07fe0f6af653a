"""The batch job runner: reads each job's data source through the Rust core
and stores its events, in the server process, without blocking RPCs.

Jobs start at once: PENDING → QUEUED → (a free slot) IN_PROGRESS → (file read)
DISPATCHING → (the sink has every event) DONE, or FAILED for a file that
cannot be read. At most `max_running` jobs read at a time; the Rust core
releases the interpreter, so the event loop keeps serving meanwhile.

A job that starts at once reads with the compiled `_core.JobSpec` its
creation made, so its patterns are compiled once; a job that has to wait
for a slot, or is taken up after a restart, compiles them when it starts
(off the event loop too). The spec goes with the job's task.

Every chunk (its events, row errors, counts and checkpoint) is stored in one
transaction, and only while the job is still IN_PROGRESS: a cancel takes
effect at the next chunk, and after a crash the job resumes from its last
checkpoint with exact counts, dispatching no event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from batchgrpc import _core
from batchgrpc.batches.status import TERMINAL
from batchgrpc.errors import DataFileError, InvalidJobSpec
from batchgrpc.store import BatchJob, Event, JobChunk, Store

log = logging.getLogger("batchgrpc.jobs")

#: glibc's `malloc_trim`, where there is one.
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
_trimming = False


async def give_back_memory() -> None:
    """Returns the allocator's free memory to the system, in a worker thread.

    glibc keeps what worker threads free in their arenas: after a job whose
    patterns took 16 MiB the server stayed 34 MiB over idle, and ten refused
    creates of that size left it 100 MiB over. Calls that arrive while one
    runs share it."""
    global _trimming
    if _malloc_trim is None or _trimming:
        return
    _trimming = True
    try:
        await asyncio.to_thread(_malloc_trim, 0)
    finally:
        _trimming = False


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
        event_id=hashlib.sha256(f"{job.id}:{kind}".encode()).hexdigest()[:32],
        account=job.account,
        source="NOTIFICATION",
        event_name=kind,
        event_time=now,
        data=json.dumps(data, separators=(",", ":")),
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
        source_path: Callable[[str], Path],
        changes: Changes,
        *,
        max_running: int,
        chunk_rows: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._source_path = source_path
        self._changes = changes
        self._slots = asyncio.Semaphore(max_running)
        self._chunk_rows = chunk_rows
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def resume(self) -> None:
        """Takes up every job a previous process left unfinished."""
        for job in await self._store.jobs.unfinished():
            log.info("resuming", extra={"fields": {"job_id": job.id, "status": job.status, "row": job.last_row}})
            self.submit(job.id)

    def submit(self, job_id: str, spec: _core.JobSpec | None = None) -> None:
        """Runs the job; `spec` is its compiled rules and settings (None: the
        runner compiles them from the stored job)."""
        if job_id in self._tasks:
            return
        task = asyncio.create_task(self._run(job_id, spec), name=f"job {job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def stop(self) -> None:
        """Stops every job where it is; each resumes from its checkpoint on
        the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Waits until no job is running (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _move(
        self, job: BatchJob, to: str, changes: dict[str, object] | None = None, *, finished: bool = False
    ) -> BatchJob | None:
        """Moves `job` on from its current status; None when someone else
        (a cancel) moved it first."""
        now = self._clock()
        after, moved = await self._store.jobs.transition(
            job.id,
            allowed_from=(job.status,),
            to=to,
            now=now,
            changes=changes,
            notification=(lambda j: notification(j, "batch_job_finished", now)) if finished else None,
        )
        if not moved:
            return None
        self._changes.notify(job.id)
        return after

    async def _run(self, job_id: str, spec: _core.JobSpec | None) -> None:
        try:
            await self._advance(job_id, spec)
        except Exception:
            # A bug or a store failure: fail the job visibly rather than
            # leave it IN_PROGRESS with nobody reading it.
            log.exception("job runner failed", extra={"fields": {"job_id": job_id}})
            job = await self._store.jobs.get(job_id)
            if job is not None and job.status not in TERMINAL:
                await self._move(
                    job,
                    "FAILED",
                    {
                        "error_code": "INTERNAL_ERROR",
                        "error_message": "The job stopped on an internal error.",
                        "completed_time": self._clock(),
                    },
                    finished=True,
                )
        # The compiled spec goes with the job, its memory back to the system.
        del spec
        await give_back_memory()

    async def _advance(self, job_id: str, spec: _core.JobSpec | None) -> None:
        job = await self._store.jobs.get(job_id)
        if job is not None and job.status == "PENDING":
            job = await self._move(job, "QUEUED")
        if job is None or job.status in TERMINAL:
            return
        if self._slots.locked():
            # It will wait for a slot: a queue of jobs must not hold their
            # compiled patterns (up to 16 MiB each) meanwhile. It compiles
            # again when its turn comes.
            spec = None
        async with self._slots:
            # Read again: the job may have been canceled while it waited.
            job = await self._store.jobs.get(job_id)
            if job is not None and job.status == "QUEUED":
                job = await self._move(job, "IN_PROGRESS", {"started_time": self._clock()})
            if job is not None and job.status == "IN_PROGRESS":
                job = await self._read(job, spec)
            if job is not None and job.status == "DISPATCHING":
                # The SQLite log has each chunk's events on commit; a sink
                # that acknowledges later (Kafka) is waited for here.
                await self._move(job, "DONE", {"completed_time": self._clock()}, finished=True)

    async def _read(self, job: BatchJob, spec: _core.JobSpec | None) -> BatchJob | None:
        """Reads the job's file from its checkpoint, storing chunk by chunk.
        Returns the job moved to DISPATCHING or FAILED, or None when it was
        canceled meanwhile."""
        started = time.perf_counter()
        try:
            if spec is None:
                spec = await asyncio.to_thread(
                    _core.JobSpec,
                    event_name=job.event_name,
                    default_event_name=job.default_event_name,
                    event_columns=list(job.event_columns),
                    event_data=job.event_data,
                    columns=list(job.columns),
                )
            reader = await asyncio.to_thread(
                _core.open_rows,
                self._source_path(job.source_id),
                job.source_format,
                job_id=job.id,
                spec=spec,
                chunk_rows=self._chunk_rows,
                resume_offset=job.next_offset,
                resume_row=job.last_row,
            )
            # Read the next chunk while the last one is being stored.
            pending = asyncio.ensure_future(asyncio.to_thread(next, reader, None))
            while (chunk := await pending) is not None:
                pending = asyncio.ensure_future(asyncio.to_thread(next, reader, None))
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
                    ),
                    account=job.account,
                    while_status="IN_PROGRESS",
                )
                if stored is None:
                    pending.cancel()
                    return None
                job = stored
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
        return await self._move(job, "DISPATCHING")

    async def _fail(self, job: BatchJob, code: str, message: str, debug: str) -> BatchJob | None:
        # The job as stored now: chunks before the error moved its counts.
        current = await self._store.jobs.get(job.id)
        if current is None or current.status != "IN_PROGRESS":
            return None
        log.info("failed", extra={"fields": {"job_id": job.id, "error_code": code}})
        return await self._move(
            current,
            "FAILED",
            {"error_code": code, "error_message": message, "debug_message": debug, "completed_time": self._clock()},
            finished=True,
        )
