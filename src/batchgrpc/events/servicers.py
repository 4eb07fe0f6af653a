"""gRPC servicers of `batchgrpc.events.v1` (the Klaviyo mirror)."""

from __future__ import annotations

import json
import time

from google.protobuf import struct_pb2
from grpc import aio

from batchgrpc import _core, paging
from batchgrpc.batches.convert import timestamp
from batchgrpc.errors import FieldViolation, InvalidArgument, NotYetImplemented
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc, event_pb2, event_pb2_grpc, profile_pb2_grpc
from batchgrpc.interceptor import Context, current_principal
from batchgrpc.pending import pending
from batchgrpc.store import Event, EventFilter, Store

_READS = "profiles are not built yet"


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


def event_message(event: Event) -> event_pb2.Event:
    data = struct_pb2.Struct()
    data.update(json.loads(event.data))
    message = event_pb2.Event(
        event_id=event.event_id,
        event_name=event.event_name,
        event_time=timestamp(event.event_time),
        profile_id=event.profile_id,
        identity=event.identity,
        data=data,
        job_id=event.job_id,
        row_number=event.row_number,
        source=event.source,
        value_currency=event.value_currency,
        unique_id=event.unique_id,
    )
    if event.value is not None:
        message.value = event.value
    return message


class EventService(event_pb2_grpc.EventServiceServicer):
    def __init__(self, store: Store) -> None:
        self._store = store

    async def ListEvents(self, request: event_pb2.ListEventsRequest, context: Context) -> event_pb2.ListEventsResponse:
        page = await self._store.events.list(
            current_principal().account,
            EventFilter(profile_id=request.profile_id, event_name=request.metric, job_id=request.job_id),
            cursor=paging.decode(request.page_token),
            limit=paging.page_size(request.page_size),
        )
        return event_pb2.ListEventsResponse(
            events=[event_message(e) for e in page.items], next_page_token=paging.encode(page.next_cursor)
        )


def register(server: aio.Server, store: Store) -> None:
    event_bulk_create_job_pb2_grpc.add_EventBulkCreateJobServiceServicer_to_server(EventBulkCreateJobService(), server)
    profile_pb2_grpc.add_ProfileServiceServicer_to_server(ProfileService(), server)
    event_pb2_grpc.add_EventServiceServicer_to_server(EventService(store), server)
