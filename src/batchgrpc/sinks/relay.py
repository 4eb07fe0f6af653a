"""The outbox relay: hands committed events to the sink in position order,
and records in the store what the sink has.

One relay delivers for a store at a time: every worker runs this loop, and
the one holding the lease `relay:<sink>` delivers while the others wait to
take over. When it takes over it first asks the sink what it already holds
(`EventSink.recover`), because the relay before it may have delivered a
batch and died before recording it; it records that, and goes on after it.
So every event reaches the sink once, in order, whatever is killed when.

A sink that fails (unreachable broker, full disk) loses nothing: the events
stay in the log and the relay tries again, from the recorded position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from batchgrpc.leases import Leases
from batchgrpc.sinks import EventSink, Held
from batchgrpc.store import EventLog

log = logging.getLogger("batchgrpc.relay")

#: Events per delivery: one sink transaction and one store write each.
#: Measured on the Kafka sink (PostgreSQL store, idle 2-core VM): 31 ms a
#: batch of 1,000 (32,000 events/s), 110 ms a batch of 5,000 (45,000/s);
#: the rest is per event. A batch is a few MB in memory.
BATCH = 5000
#: How often an idle relay looks for new events.
IDLE_SECONDS = 0.1
#: How long a relay waits before trying again after the sink failed.
RETRY_SECONDS = 1.0


class Relay:
    def __init__(self, events: EventLog, sink: EventSink, leases: Leases, *, batch: int = BATCH) -> None:
        self._events = events
        self._sink = sink
        self._leases = leases
        self._batch = batch
        self._lease = f"relay:{sink.name}"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._sink.delivers_at_commit:
            return
        self._task = asyncio.create_task(self._run(), name=f"relay to {self._sink.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._sink.close()

    async def _has(self, held: Held) -> bool:
        """Whether the store's event at `held.position` is `held`'s."""
        at = await self._events.after(held.position - 1, limit=1)
        return bool(at) and at[0].position == held.position and at[0].event_id == held.event_id

    async def delivered(self, position: int) -> bool:
        """Whether the sink has every event up to `position`."""
        if self._sink.delivers_at_commit:
            return True
        return await self._events.delivered(self._sink.name) >= position

    async def _run(self) -> None:
        while True:
            try:
                if await self._leases.store.acquire(
                    self._lease, self._leases.owner, now=self._leases.clock(), seconds=self._leases.seconds
                ):
                    await self._relay()
                else:
                    await asyncio.sleep(self._leases.poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay stopped; retrying", extra={"fields": {"sink": self._sink.name}})
                await self._sink.close()
                await asyncio.sleep(RETRY_SECONDS)

    async def _relay(self) -> None:
        """Delivers while this worker holds the relay lease."""
        await self._sink.open()
        name = self._sink.name
        position = await self._events.delivered(name)
        held = await self._sink.recover()
        if held is not None and held.position > position:
            if await self._has(held):
                # Delivered by a relay that died before recording it.
                log.info(
                    "sink holds more than recorded",
                    extra={"fields": {"sink": name, "from": position, "to": held.position}},
                )
                position = await self._events.mark_delivered(name, held.position, now=self._leases.clock())
            else:
                # Not this store's event at that position: the sink was
                # written by another store (a new database on an old
                # topic), or this one was restored from a backup older
                # than the sink. Its positions say nothing of this store's;
                # going on after them would lose events, so the relay goes
                # on from its own record, and a consumer may see again
                # (same event ids) what it had before the restore.
                fields = {"sink": name, "held": held.position, "event_id": held.event_id, "from": position}
                log.error(
                    "the sink's last event is not this store's; sending from the recorded position",
                    extra={"fields": fields},
                )
        log.info("relaying", extra={"fields": {"sink": name, "position": position}})
        while await self._leases.store.holds(self._lease, self._leases.owner, now=self._leases.clock()):
            events = await self._events.after(position, limit=self._batch)
            if not events:
                # Commits of every worker land here: polling sees them all.
                await asyncio.sleep(IDLE_SECONDS)
                continue
            await self._sink.deliver(events)
            position = await self._events.mark_delivered(name, events[-1].position, now=self._leases.clock())
        log.info("relay lease lost", extra={"fields": {"sink": name, "position": position}})
        await self._sink.close()
