"""The gRPC server: every service of the contract, health, reflection, TLS,
and a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass

# Imported for their side effect: the rich error detail types and the http
# annotations enter the descriptor pool, so reflection serves them and grpcurl
# decodes ErrorInfo, BadRequest and RetryInfo in error details.
import google.api.annotations_pb2
import google.rpc.error_details_pb2  # noqa: F401
import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from batchgrpc import reflection
from batchgrpc.auth import Keyring, NewKey, load_or_create_pepper
from batchgrpc.batches import servicers as batches
from batchgrpc.batches.files import FileStore
from batchgrpc.batches.runner import Changes, JobRunner
from batchgrpc.batches.v6 import audience_list_pb2, batch_job_pb2, file_asset_pb2, report_pb2
from batchgrpc.config import Config
from batchgrpc.events import servicers as events
from batchgrpc.events.bulk import BulkProcessor
from batchgrpc.events.v1 import event_bulk_create_job_pb2, event_pb2, profile_pb2
from batchgrpc.idempotency import Idempotency
from batchgrpc.interceptor import CallInterceptor
from batchgrpc.ratelimit import RateLimiter
from batchgrpc.store.sqlite import SqliteStore
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
    store: SqliteStore
    keyring: Keyring
    health: health.aio.HealthServicer
    #: The admin key created on this start, when the store had no keys.
    first_admin_key: NewKey | None
    runner: JobRunner
    processor: BulkProcessor


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


async def start(config: Config) -> Running:
    """Opens the store, creates the first key if needed, and starts serving."""
    store = await SqliteStore.open(config.data_dir)
    try:
        keyring = Keyring(store.keys, load_or_create_pepper(config.data_dir))
        first_admin_key = await keyring.create_first_admin()
        server = aio.server(
            interceptors=[CallInterceptor(keyring, RateLimiter(config.rate_limits, store.limits))],
            options=[
                ("grpc.max_receive_message_length", config.max_receive_message_bytes),
                ("grpc.max_send_message_length", config.max_receive_message_bytes),
            ],
        )
        changes = Changes()
        files = FileStore(config.data_dir / "files", config.max_upload_bytes)
        runner = JobRunner(
            store,
            files.path,
            changes,
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
        processor = BulkProcessor(store)
        events.register(server, store, processor, idempotency)
        track.register(server, store, idempotency)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable(server, [*CONTRACT_SERVICES, health.SERVICE_NAME])

        credentials = _credentials(config)
        if credentials is None:
            port = server.add_insecure_port(config.listen)
        else:
            port = server.add_secure_port(config.listen, credentials)
        await server.start()
        # Jobs a previous process left unfinished go on from their checkpoints.
        await runner.resume()
        await processor.resume()
    except BaseException:
        await store.close()
        raise
    for name in ("", *CONTRACT_SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Running(server, port, store, keyring, health_servicer, first_admin_key, runner, processor)


async def stop(running: Running, grace_seconds: float) -> None:
    """NOT_SERVING first, so balancers drain us, then let calls finish."""
    await running.health.enter_graceful_shutdown()
    await running.server.stop(grace_seconds)
    # Jobs stop at a chunk boundary and resume on the next start.
    await running.runner.stop()
    await running.processor.stop()
    await running.store.close()


def _announce_first_key(new: NewKey) -> None:
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


async def serve(config: Config, stop_signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Runs until a stop signal, then shuts down gracefully."""
    running = await start(config)
    if running.first_admin_key is not None:
        _announce_first_key(running.first_admin_key)
    host = config.listen.rpartition(":")[0]
    log.info(
        "listening",
        extra={
            "fields": {
                "address": f"{host}:{running.port}",
                "port": running.port,
                "tls": config.tls.enabled,
                "mutual_tls": config.tls.client_ca_file is not None,
                "data_dir": str(config.data_dir),
                "rate_limits": config.rate_limits.enabled,
            }
        },
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_signals:
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping", extra={"fields": {"grace_seconds": config.grace_period_seconds}})
    await stop(running, config.grace_period_seconds)
    log.info("stopped")
