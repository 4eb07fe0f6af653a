"""This worker's leases: who it is, how long a lease lasts, the heartbeat
that keeps what it holds, and the rescue of what dead workers held.

A worker runs a batch job or a bulk job only under a lease (owner, expiry)
in the store, and every write it makes for the job is conditional on still
holding it. The heartbeat renews all of a worker's leases in one write every
third of the lease, so a live worker never loses one; a worker that dies
(SIGKILL) or stalls stops renewing, and after `seconds` any live worker may
take its jobs over from their checkpoints. A holder that is known to be dead
(a process of this machine that no longer runs) is rescued at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from batchgrpc.owner import owner_is_gone, process_owner
from batchgrpc.store import Lease, LeaseStore

log = logging.getLogger("batchgrpc.leases")


class Leases:
    def __init__(
        self,
        store: LeaseStore,
        seconds: float,
        *,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.seconds = seconds
        self.owner = owner or process_owner()
        self.clock = clock
        self._heartbeat: asyncio.Task[None] | None = None

    def lease(self) -> Lease:
        """A lease for this worker from now."""
        return Lease(self.owner, self.clock() + self.seconds)

    @property
    def poll_seconds(self) -> float:
        """How often workers look for work nobody holds: often enough that a
        job whose lease expired waits a fraction of the lease, not another."""
        return min(1.0, self.seconds / 4)

    async def start(self) -> None:
        await self.rescue()
        self._heartbeat = asyncio.create_task(self._beat(), name="lease heartbeat")

    async def stop(self) -> None:
        """Stops renewing and lets go of everything held, so that another
        worker (or this one restarted) takes it up at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.store.release_owner(self.owner)

    async def rescue(self) -> int:
        """Frees the leases of workers of this machine that are gone."""
        freed = 0
        for owner in await self.store.owners():
            if owner != self.owner and owner_is_gone(owner):
                freed += await self.store.release_owner(owner)
                log.info("rescued the leases of a dead worker", extra={"fields": {"owner": owner}})
        return freed

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                await self.store.renew(self.owner, now=self.clock(), seconds=self.seconds)
                await self.rescue()
            except Exception:
                # The store is down or busy: the next beat tries again; a
                # lease lost meanwhile stops its job at its next write.
                log.exception("lease heartbeat failed")
