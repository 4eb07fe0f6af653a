"""gRPC servicers of `batchgrpc.batches.v6` (the Extole mirror), wired up."""

from __future__ import annotations

import time
from collections.abc import Callable

from grpc import aio

from batchgrpc.batches.files import Files
from batchgrpc.batches.jobs import BatchJobService
from batchgrpc.batches.runner import Changes, JobRunner
from batchgrpc.batches.sources import AudienceListService, FileAssetService, ReportService
from batchgrpc.batches.v6 import audience_list_pb2_grpc, batch_job_pb2_grpc, file_asset_pb2_grpc, report_pb2_grpc
from batchgrpc.idempotency import Idempotency
from batchgrpc.store import Store


def register(
    server: aio.Server,
    store: Store,
    files: Files,
    runner: JobRunner,
    changes: Changes,
    idempotency: Idempotency,
    clock: Callable[[], float] = time.time,
) -> None:
    batch_job_pb2_grpc.add_BatchJobServiceServicer_to_server(
        BatchJobService(store, runner, changes, idempotency, clock), server
    )
    file_asset_pb2_grpc.add_FileAssetServiceServicer_to_server(
        FileAssetService(store, files, idempotency, clock), server
    )
    report_pb2_grpc.add_ReportServiceServicer_to_server(ReportService(store, files, idempotency, clock), server)
    audience_list_pb2_grpc.add_AudienceListServiceServicer_to_server(
        AudienceListService(store, files, idempotency, clock), server
    )
