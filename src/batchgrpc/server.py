"""The gRPC server: every service of the contract, health, reflection, TLS,
and a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Imported for their side effect: the rich error detail types and the http
# annotations enter the descriptor pool, so reflection serves them and grpcurl
# decodes ErrorInfo, BadRequest and RetryInfo in error details.
import google.api.annotations_pb2
import google.rpc.error_details_pb2  # noqa: F401
import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2_grpc

from batchgrpc import metrics, reflection, tracing
from batchgrpc.auth import Keyring, NewKey, load_or_create_pepper, load_pepper
from batchgrpc.batches import servicers as batches
from batchgrpc.batches.files import DatabaseFiles, files_for
from batchgrpc.batches.runner import Changes, JobRunner
from batchgrpc.batches.v6 import audience_list_pb2, batch_job_pb2, file_asset_pb2, report_pb2
from batchgrpc.config import Config
from batchgrpc.events import servicers as events
from batchgrpc.events.bulk import BulkProcessor, batch_of
from batchgrpc.events.v1 import event_bulk_create_job_pb2, event_pb2, profile_pb2
from batchgrpc.health import HealthMonitor
from batchgrpc.idempotency import Idempotency
from batchgrpc.interceptor import CallInterceptor
from batchgrpc.leases import Leases
from batchgrpc.ratelimit import RateLimiter
from batchgrpc.sinks import open_sink
from batchgrpc.sinks.relay import Relay
from batchgrpc.store import Store
from batchgrpc.store.factory import open_for_set_up, open_store
from batchgrpc.track import servicers as track
from batchgrpc.track.v2 import tracking_pb2

log = logging.getLogger("batchgrpc.server")

_CONTRACT_FILES = (
    batch_job_pb2,
    file_asset_pb2,
    report_pb2,
    audience_list_pb2,
    event_bulk_create_job_pb2,
    profile_pb2,
    event_pb2,
    tracking_pb2,
)

#: Every service of the contract, by full name.
CONTRACT_SERVICES: tuple[str, ...] = tuple(
    service.full_name for module in _CONTRACT_FILES for service in module.DESCRIPTOR.services_by_name.values()
)


@dataclass
class Running:
    """A started server and what it owns."""

    server: aio.Server
    port: int
    store: Store
    keyring: Keyring
    health: health.aio.HealthServicer
    #: The admin key created on this start, when the store had no keys.
    first_admin_key: NewKey | None
    runner: JobRunner
    processor: BulkProcessor
    leases: Leases
    relay: Relay
    monitor: HealthMonitor
    #: The store's gauges, read by this process (a lone server, or worker 0).
    gauges: metrics.GaugeRefresher | None = None
    #: A lone server's own `/metrics` endpoint (a supervisor serves its workers').
    exporter: metrics.Exporter | None = None


class PortUnavailable(RuntimeError):
    """The listen address cannot be bound: in use, or not this machine's."""


@dataclass
class SetUp:
    """What set-up opened: the store, the keyring, the first key if made now."""

    store: Store
    keyring: Keyring
    first_admin_key: NewKey | None


async def set_up(config: Config) -> SetUp:
    """Done once per start of the service, before anything serves (by the
    supervisor when there are workers): the store opened and migrated, the
    pepper file created when missing, the first admin key when there is no
    key. The caller owns the store."""
    store = await open_for_set_up(config)
    try:
        keyring = Keyring(store.keys, load_or_create_pepper(config.pepper_path))
        first_admin_key = await keyring.create_first_admin()
    except BaseException:
        await store.close()
        raise
    return SetUp(store, keyring, first_admin_key)


async def _attach(config: Config) -> SetUp:
    """A worker's part: the store and pepper its supervisor set up."""
    store = await open_store(config.store_url)
    try:
        keyring = Keyring(store.keys, load_pepper(config.pepper_path))
    except BaseException:
        await store.close()
        raise
    return SetUp(store, keyring, None)


def _listen(server: aio.Server, config: Config) -> int:
    credentials = _credentials(config)
    try:
        if credentials is None:
            return server.add_insecure_port(config.listen)
        return server.add_secure_port(config.listen, credentials)
    except RuntimeError as e:  # grpc's only word for a failed bind
        raise PortUnavailable(
            f"cannot listen on {config.listen}: the port is in use or the host is not this machine's"
        ) from e


def _credentials(config: Config) -> grpc.ServerCredentials | None:
    tls = config.tls
    if not tls.enabled:
        return None
    assert tls.cert_file is not None
    assert tls.key_file is not None
    client_ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


async def start(config: Config, *, worker: bool = False, gauges: bool = True) -> Running:
    """Sets up (`set_up`; a `worker` skips it: its supervisor did it) and
    starts serving. With `--metrics-listen`, a lone server serves its
    metrics, and reads the store's gauges unless told not to (`gauges`: of
    a supervisor's workers, only one reads them)."""
    sink = open_sink(config.sink)
    ready = await (_attach(config) if worker else set_up(config))
    store, keyring, first_admin_key = ready.store, ready.keyring, ready.first_admin_key
    exporter = None
    try:
        server = aio.server(
            interceptors=[CallInterceptor(keyring, RateLimiter(config.rate_limits, store.limits))],
            options=[
                ("grpc.max_receive_message_length", config.max_receive_message_bytes),
                ("grpc.max_send_message_length", config.max_receive_message_bytes),
                # grpc turns SO_REUSEPORT on unless told: workers share their
                # port through it, but a process serving alone must own its
                # port, so that one in use is an error, never a silent share.
                ("grpc.so_reuseport", int(worker)),
            ],
        )
        changes = Changes()
        files = files_for(store, config.data_dir, config.max_upload_bytes)
        if isinstance(files, DatabaseFiles):
            swept = await files.sweep()
            if swept:
                log.info("removed abandoned uploads", extra={"fields": {"uploads": swept}})
        leases = Leases(store.leases, config.lease_seconds)
        relay = Relay(store.events, sink, leases)
        runner = JobRunner(
            store,
            files,
            changes,
            leases,
            relay,
            max_running=config.max_running_jobs,
            chunk_rows=config.job_chunk_rows,
        )
        idempotency = Idempotency(store.idempotency, config.idempotency_ttl_seconds)
        # Calls a killed server left half done hold their request ids; the
        # ids are free again the moment it is known that nobody runs them.
        released = await idempotency.release_abandoned()
        if released:
            log.info("released abandoned request ids", extra={"fields": {"claims": released}})
        batches.register(server, store, files, runner, changes, idempotency)
        processor = BulkProcessor(store, leases, batch_of)
        events.register(server, store, processor, idempotency)
        track.register(server, store, idempotency)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable(server, [*CONTRACT_SERVICES, health.SERVICE_NAME])

        port = _listen(server, config)
        if config.metrics_listen is not None and not worker:
            try:
                exporter = metrics.serve_process(config.metrics_listen)
            except metrics.MetricsUnavailable as e:
                raise PortUnavailable(str(e)) from None
        await server.start()
        # Jobs that nobody holds (queued, or left by a worker that died) go
        # on from their checkpoints, here or on another worker.
        await leases.start()
        runner.start()
        processor.start()
        relay.start()
    except BaseException:
        if exporter is not None:
            exporter.stop()
        await store.close()
        raise
    # SERVING while the store and the sink answer (batchgrpc.health).
    monitor = HealthMonitor(health_servicer, ("", *CONTRACT_SERVICES), {"store": store.ping, "sink": sink.ping})
    await monitor.start()
    refresher = None
    if config.metrics_listen is not None and gauges:
        refresher = metrics.GaugeRefresher(store, sink)
        refresher.start()
    return Running(
        server,
        port,
        store,
        keyring,
        health_servicer,
        first_admin_key,
        runner,
        processor,
        leases,
        relay,
        monitor,
        refresher,
        exporter,
    )


async def stop(running: Running, grace_seconds: float) -> None:
    """NOT_SERVING first, so balancers drain us, then let calls finish."""
    await running.health.enter_graceful_shutdown()
    await running.monitor.stop()
    await running.server.stop(grace_seconds)
    if running.gauges is not None:
        await running.gauges.stop()
    if running.exporter is not None:
        running.exporter.stop()
    # Jobs stop at a chunk boundary and resume on the next start.
    await running.runner.stop()
    await running.processor.stop()
    await running.relay.stop()
    await running.leases.stop()
    await running.store.close()
    # The last calls' and jobs' spans, exported before the process may go.
    await asyncio.to_thread(tracing.flush)


def announce_first_key(new: NewKey) -> None:
    # stdout, not the log: this is the one time the secret is shown.
    print(
        f'Created the first API key, for account "{new.key.account}" with scopes '
        f"{', '.join(sorted(new.key.scopes))}.\n"
        "It is shown only this once; store it now:\n"
        f"  key id: {new.key.key_id}\n"
        f"  token:  {new.token}\n"
        f"Use it as 'authorization: Bearer {new.token}'.",
        flush=True,
    )


#: How long a thread may hold the interpreter while another waits for it
#: (Python's default is 5 ms). The store's writing thread gives it up for
#: every SQLite step and needs it back for the next, and its time bounds
#: throughput (it holds the database's one write lock), so it should not
#: wait 5 ms each time the event loop has it. Measured with `make
#: bench-ingest` (1 / 2 workers): 35,383 / 40,942 durable bulk events/s and
#: 197 / 239 tracking requests/s at 5 ms; 44,615 / 48,114 and 212 / 330 at
#: 1 ms (0.2 ms: no better than 5 ms, the switches themselves cost).
SWITCH_INTERVAL_SECONDS = 0.001


async def serve(
    config: Config,
    stop_signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    *,
    worker: Callable[[int], None] | None = None,
    gauges: bool = True,
) -> None:
    """Runs until a stop signal, then shuts down gracefully.

    With `worker`, this process is one of a supervisor's workers: set-up was
    the supervisor's, which logs the `listening` line once all serve, and
    `worker(port)` tells it this one does; `gauges` says whether this one
    reads the store's gauges for the metrics (`start`)."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    running = await start(config, worker=worker is not None, gauges=gauges)
    host = config.listen.rpartition(":")[0]
    address = f"{host}:{running.port}"
    if worker is not None:
        log.info("worker serving", extra={"fields": {"address": address, "port": running.port}})
        worker(running.port)
    else:
        if running.first_admin_key is not None:
            announce_first_key(running.first_admin_key)
        log.info("listening", extra={"fields": listening_fields(config, running.port, [os.getpid()])})
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_signals:
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping", extra={"fields": {"grace_seconds": config.grace_period_seconds}})
    await stop(running, config.grace_period_seconds)
    log.info("stopped")


def listening_fields(config: Config, port: int, pids: list[int]) -> dict[str, object]:
    """The `listening` line's fields, the same with one process or workers."""
    host = config.listen.rpartition(":")[0]
    return {
        "address": f"{host}:{port}",
        "port": port,
        "tls": config.tls.enabled,
        "mutual_tls": config.tls.client_ca_file is not None,
        "data_dir": str(config.data_dir),
        "rate_limits": config.rate_limits.enabled,
        "workers": len(pids),
        "worker_pids": pids,
    }
