"""gRPC servicers of `batchgrpc.track.v2` (the Bloomreach mirror)."""

from __future__ import annotations

import time

from grpc import aio

from batchgrpc import _core
from batchgrpc.errors import FieldViolation, NotYetImplemented, ProjectTokenMismatch
from batchgrpc.interceptor import Context, current_principal
from batchgrpc.pending import pending
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

_TRACKING = "customer and event tracking is not built yet"


def check_project_token(project_token: str) -> None:
    """The project token names the account and must be the key's own."""
    principal = current_principal()
    if project_token != principal.account:
        raise ProjectTokenMismatch(
            "The project token does not match the API key's project.",
            violations=[FieldViolation("project_token", "must be the API key's project (account)")],
        )


class TrackingService(tracking_pb2_grpc.TrackingServiceServicer):
    async def Batch(self, request: tracking_pb2.BatchRequest, context: Context) -> tracking_pb2.BatchResponse:
        check_project_token(request.project_token)
        _core.check_track_batch(request.ByteSize(), [command.ByteSize() for command in request.commands])
        raise NotYetImplemented(
            f"TrackingService.Batch is in the contract but not served yet: the batch is within the limits, "
            f"but {_TRACKING}."
        )

    UpdateCustomerProperties = pending("TrackingService.UpdateCustomerProperties", _TRACKING)
    AddEvent = pending("TrackingService.AddEvent", _TRACKING)

    async def GetSystemTime(
        self, request: tracking_pb2.GetSystemTimeRequest, context: Context
    ) -> tracking_pb2.GetSystemTimeResponse:
        check_project_token(request.project_token)
        return tracking_pb2.GetSystemTimeResponse(success=True, time=time.time())


def register(server: aio.Server) -> None:
    tracking_pb2_grpc.add_TrackingServiceServicer_to_server(TrackingService(), server)
