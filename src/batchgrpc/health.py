"""Health that means something: `grpc.health.v1.Health` answers SERVING
only while this process can do its work, that is while the store answers
and (with a Kafka sink) the broker does.

A monitor task probes them every `PROBE_SECONDS` and sets the status of
every service when the answer changes, so a balancer that drains on
NOT_SERVING sends calls elsewhere meanwhile. Nothing is refused because of
it: a call that still reaches us gets the store's own error, and events wait
in the outbox until the sink is back (`sinks.relay`). Shutdown stays the
servicer's own: after `enter_graceful_shutdown` NOT_SERVING is final and
the monitor's sets are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from grpc_health.v1 import health, health_pb2

log = logging.getLogger("batchgrpc.health")

#: How often the monitor probes. Balancers check every few seconds
#: (Kubernetes' default is 10 s), so what they read is at most about a
#: second old; a trivial query and a metadata request a second cost the
#: store and the broker nothing.
PROBE_SECONDS = 1.0
#: How long one probe may take before it counts as failed: a store or a
#: broker that answers does so in milliseconds, and one that takes longer
#: than this cannot serve calls either.
PROBE_TIMEOUT_SECONDS = 2.0

#: Returns when what it probes answered; raises (or hangs) when it did not.
Probe = Callable[[], Awaitable[None]]


class HealthMonitor:
    """Sets the status of `services` on `servicer` from what `probes` (by
    name: the store, the sink) answer."""

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        services: Sequence[str],
        probes: Mapping[str, Probe],
        *,
        every: float = PROBE_SECONDS,
        timeout: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._servicer = servicer
        self._services = tuple(services)
        self._probes = dict(probes)
        self._every = every
        self._timeout = timeout
        #: What the servicer says now; None before the first probe.
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Probes once, so that the first health check already tells the
        truth, then goes on probing in a task of its own."""
        await self.probe()
        self._task = asyncio.create_task(self._run(), name="health monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await self.probe()

    async def probe(self) -> bool:
        """Runs every probe, sets the status (and logs one line) when it
        changed, and says whether this process is serving."""
        # Side by side: a store that hangs does not delay the sink's answer.
        reasons = await asyncio.gather(*(self._failure(probe) for probe in self._probes.values()))
        failing = {name: reason for name, reason in zip(self._probes, reasons, strict=True) if reason is not None}
        serving = not failing
        if serving != self._serving:
            self._serving = serving
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for service in self._services:
                await self._servicer.set(service, status)
            if serving:
                log.info("health", extra={"fields": {"status": "SERVING"}})
            else:
                log.warning("health", extra={"fields": {"status": "NOT_SERVING", "failing": failing}})
        return serving

    async def _failure(self, probe: Probe) -> str | None:
        """Why `probe` failed, or None when it answered in time."""
        try:
            async with asyncio.timeout(self._timeout):
                await probe()
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except Exception as e:  # noqa: BLE001 - whatever a probe raises means NOT_SERVING, and says why
            return f"{type(e).__name__}: {e}"
        return None
