"""gRPC servicers of `batchgrpc.events.v1` (the Klaviyo mirror)."""

from __future__ import annotations

import time

from grpc import aio

from batchgrpc import _core
from batchgrpc.errors import FieldViolation, InvalidArgument, NotYetImplemented
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc, event_pb2_grpc, profile_pb2_grpc
from batchgrpc.interceptor import Context
from batchgrpc.pending import pending

_READS = "profiles and the event log are not built yet"


def validate_bulk_request(request: bulk_pb2.CreateEventBulkCreateJobRequest) -> None:
    """Upstream's rules, all at once: the 5 MB / 1,000-event limits fail the
    request first; then every violation is listed with its JSON:API pointer."""
    violations = _core.validate_bulk_request(request.SerializeToString(), time.time())
    if violations:
        raise InvalidArgument(
            f"The payload provided in the request is invalid: {len(violations)} problem(s), "
            "each listed with its JSON:API pointer.",
            violations=[FieldViolation(pointer, message, reason) for pointer, reason, message in violations],
        )


class EventBulkCreateJobService(event_bulk_create_job_pb2_grpc.EventBulkCreateJobServiceServicer):
    async def CreateEventBulkCreateJob(
        self, request: bulk_pb2.CreateEventBulkCreateJobRequest, context: Context
    ) -> bulk_pb2.CreateEventBulkCreateJobResponse:
        validate_bulk_request(request)
        raise NotYetImplemented(
            "EventBulkCreateJobService.CreateEventBulkCreateJob is in the contract but not served yet: "
            "the request is valid, but storing and ingesting it is not built yet; nothing was stored."
        )

    GetEventBulkCreateJob = pending("EventBulkCreateJobService.GetEventBulkCreateJob", "bulk jobs are not built yet")


class ProfileService(profile_pb2_grpc.ProfileServiceServicer):
    GetProfile = pending("ProfileService.GetProfile", _READS)
    ListProfiles = pending("ProfileService.ListProfiles", _READS)


class EventService(event_pb2_grpc.EventServiceServicer):
    ListEvents = pending("EventService.ListEvents", _READS)


def register(server: aio.Server) -> None:
    event_bulk_create_job_pb2_grpc.add_EventBulkCreateJobServiceServicer_to_server(EventBulkCreateJobService(), server)
    profile_pb2_grpc.add_ProfileServiceServicer_to_server(ProfileService(), server)
    event_pb2_grpc.add_EventServiceServicer_to_server(EventService(), server)
