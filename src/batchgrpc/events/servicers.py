"""gRPC servicers of `batchgrpc.events.v1` (the Klaviyo mirror)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence

from google.protobuf import json_format, message, struct_pb2
from grpc import aio

from batchgrpc import core, paging, tracing
from batchgrpc.auth import Principal
from batchgrpc.batches.convert import timestamp
from batchgrpc.batches.jobs import visible
from batchgrpc.batches.sources import new_id
from batchgrpc.errors import FieldViolation, InvalidArgument, MalformedRequest, NotFound
from batchgrpc.events.bulk import BulkProcessor, rejected_by
from batchgrpc.events.revision import current_revision
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import (
    event_bulk_create_job_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
)
from batchgrpc.idempotency import Idempotency
from batchgrpc.interceptor import Context, current_principal, raw_request
from batchgrpc.store import BulkJob, Event, EventFilter, Profile, Store


def decode_checked(request: bytes) -> bulk_pb2.CreateEventBulkCreateJobRequest:
    """The request as a message, for a `request_id`'s fingerprint, once the
    core has passed its bytes (the processor never decodes it in Python:
    `core.bulk_rows` does).

    Only then: the core refuses (`fails_whole`) any request with a `Struct`
    or list nested past the 20 levels it decodes, and Python's protobuf
    runtime takes about 30 there, so it never meets one deeper than the core
    allows. The core reads every field it knows, strings checked as UTF-8;
    what Python would still refuse fails here, as malformed.
    """
    try:
        return bulk_pb2.CreateEventBulkCreateJobRequest.FromString(request)
    except message.DecodeError:
        name = bulk_pb2.CreateEventBulkCreateJobRequest.DESCRIPTOR
        raise MalformedRequest(
            f"The request is not a valid {name.name} message.", metadata={"message": name.full_name}
        ) from None


def invalid(violations: list[tuple[str, str, str]]) -> InvalidArgument:
    # One problem is said in the message itself: a REST client's one error
    # object shows the message (gateway/internal/rest/envelope.go).
    if len(violations) == 1:
        summary = f"The payload provided in the request is invalid: {violations[0][2]}"
    else:
        summary = (
            f"The payload provided in the request is invalid: {len(violations)} problem(s), "
            "each listed with its JSON:API pointer."
        )
    return InvalidArgument(
        summary,
        violations=[FieldViolation(pointer, message, reason) for pointer, reason, message in violations],
    )


def bulk_job_message(job: BulkJob) -> bulk_pb2.EventBulkCreateJob:
    return bulk_pb2.EventBulkCreateJob(
        id=job.id,
        status=job.status,
        event_count=job.event_count,
        accepted_count=job.accepted_count,
        deduplicated_count=job.deduplicated_count,
        rejected_count=job.rejected_count,
        errors=[bulk_pb2.BulkError(pointer=p, reason=r, message=m) for p, r, m in job.errors],
        created_time=timestamp(job.created_time),
        completed_time=timestamp(job.completed_time),
    )


class EventBulkCreateJobService(event_bulk_create_job_pb2_grpc.EventBulkCreateJobServiceServicer):
    def __init__(
        self, store: Store, processor: BulkProcessor, idempotency: Idempotency, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._processor = processor
        self._idempotency = idempotency
        self._clock = clock

    @raw_request
    async def CreateEventBulkCreateJob(  # type: ignore[override]
        self, data: bytes, context: Context
    ) -> bulk_pb2.CreateEventBulkCreateJobResponse:
        account = current_principal().account
        now = self._clock()
        # Upstream's rules, all at once, from the request's bytes: the 5 MB /
        # 1,000-event limits and malformed bytes fail the request first
        # (raised); then every violation with its JSON:API pointer.
        validation = await core.validate_bulk_request(data, now, current_revision().earliest_event_time)
        violations = validation.violations
        if validation.fails_whole:
            # Nested past what the core decodes: the request fails whole even
            # with partial_success, and is never decoded in Python.
            raise invalid(violations)
        rejected_events = 0
        if violations:
            # All or nothing, as upstream; with partial_success, the items
            # and events the violations point into are left out instead.
            whole = [v for v in violations if rejected_by(v[0]) is None]
            if not validation.partial_success or whole:
                raise invalid(whole or violations)
            rejected = {hit for v in violations if (hit := rejected_by(v[0])) is not None}
            rejected_events = sum(
                1
                for i, count in enumerate(validation.item_events)
                for j in range(count)
                if (i, None) in rejected or (i, j) in rejected
            )

        async def create() -> bulk_pb2.CreateEventBulkCreateJobResponse:
            job = BulkJob(
                id=new_id("bulk"),
                account=account,
                status="QUEUED",
                event_count=sum(validation.item_events),
                accepted_count=0,
                deduplicated_count=0,
                rejected_count=rejected_events,
                errors=tuple(violations),
                created_time=now,
                completed_time=None,
                request=data,
                traceparent=tracing.current_traceparent(),
            )
            # Durable before the answer: the processor may run after a crash.
            await self._store.bulk_jobs.create(job, self._processor.lease())
            self._processor.submit(job.id)
            return bulk_pb2.CreateEventBulkCreateJobResponse(event_bulk_create_job=bulk_job_message(job))

        if not validation.request_id:
            return await create()
        # Decoded for its fingerprint, so that maps in another order are the
        # same request: up to 5 MB of protobuf for Python, on a thread.
        request = await asyncio.to_thread(decode_checked, data)
        return await self._idempotency.once(
            account=account,
            method="CreateEventBulkCreateJob",
            request_id=validation.request_id,
            request=request,
            response_type=bulk_pb2.CreateEventBulkCreateJobResponse,
            create=create,
        )

    async def GetEventBulkCreateJob(
        self, request: bulk_pb2.GetEventBulkCreateJobRequest, context: Context
    ) -> bulk_pb2.GetEventBulkCreateJobResponse:
        job = await self._store.bulk_jobs.get(current_principal().account, request.id)
        if job is None:
            raise NotFound("Bulk create job not found", metadata={"id": request.id})
        return bulk_pb2.GetEventBulkCreateJobResponse(event_bulk_create_job=bulk_job_message(job))


def profile_message(profile: Profile) -> profile_pb2.Profile:
    attributes = dict(profile.attributes)
    kx = attributes.pop("_kx", "")
    message = profile_pb2.Profile(
        id=profile.id,
        customer_ids=profile.customer_ids,
        created_time=timestamp(profile.created_time),
        updated_time=timestamp(profile.updated_time),
    )
    json_format.ParseDict(attributes, message.attributes, ignore_unknown_fields=True)
    message.attributes.kx = kx
    return message


class ProfileService(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self, store: Store) -> None:
        self._store = store

    async def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: Context
    ) -> profile_pb2.GetProfileResponse:
        profile = await self._store.profiles.get(current_principal().account, request.id)
        if profile is None:
            raise NotFound("Profile not found", metadata={"id": request.id})
        return profile_pb2.GetProfileResponse(profile=profile_message(profile))

    async def ListProfiles(
        self, request: profile_pb2.ListProfilesRequest, context: Context
    ) -> profile_pb2.ListProfilesResponse:
        account = current_principal().account
        identifiers = {"email": request.email, "phone_number": request.phone_number, "external_id": request.external_id}
        cursor = paging.decode(request.page_token)
        limit = paging.page_size(request.page_size)
        if request.id:
            # One page of at most one profile: the one with this id, if the
            # identifiers (each names at most one profile) name it too.
            found = None if cursor is not None else await self._store.profiles.get(account, request.id)
            if found is not None and any(identifiers.values()):
                named = await self._store.profiles.list(account, identifiers, cursor=None, limit=1)
                found = found if [p.id for p in named.items] == [found.id] else None
            return profile_pb2.ListProfilesResponse(profiles=[] if found is None else [profile_message(found)])
        page = await self._store.profiles.list(account, identifiers, cursor=cursor, limit=limit)
        return profile_pb2.ListProfilesResponse(
            profiles=[profile_message(p) for p in page.items], next_page_token=paging.encode(page.next_cursor)
        )


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
        backfill=event.backfill,
        metric_service=event.metric_service,
        id=str(event.position),
    )
    if event.value is not None:
        message.value = event.value
    return message


class EventService(event_pb2_grpc.EventServiceServicer):
    def __init__(self, store: Store) -> None:
        self._store = store

    async def ListEvents(self, request: event_pb2.ListEventsRequest, context: Context) -> event_pb2.ListEventsResponse:
        principal = current_principal()
        page = await self._store.events.list(
            principal.account,
            EventFilter(profile_id=request.profile_id, event_name=request.metric, job_id=request.job_id),
            cursor=paging.decode(request.page_token),
            limit=paging.page_size(request.page_size),
        )
        seen = await self._visible_jobs(principal, page.items)
        return event_pb2.ListEventsResponse(
            # A batch job's events, and the notifications about it, show only
            # to callers whose roles see the job, as every batch RPC does (a
            # page may then be short; the token goes on from the right place).
            events=[event_message(e) for e in page.items if seen.get(_job_of(e), True)],
            next_page_token=paging.encode(page.next_cursor),
        )

    async def GetEvent(self, request: event_pb2.GetEventRequest, context: Context) -> event_pb2.GetEventResponse:
        principal = current_principal()
        position = _position(request.id)
        event = None if position is None else await self._store.events.get(principal.account, position)
        # Hidden as ListEvents hides it: a batch job's event shows only to
        # callers whose roles see the job.
        if event is None or not (await self._visible_jobs(principal, [event])).get(_job_of(event), True):
            raise NotFound("Event not found", metadata={"id": request.id})
        return event_pb2.GetEventResponse(event=event_message(event))

    async def _visible_jobs(self, principal: Principal, events: Sequence[Event]) -> dict[str, bool]:
        """Whether the caller may see each job the events came from or tell
        of. A job that is gone (deleted) shows to nobody: its scopes are gone
        with it."""
        seen: dict[str, bool] = {}
        for job_id in {_job_of(e) for e in events} - {""}:
            job = await self._store.jobs.get(job_id, principal.account)
            seen[job_id] = job is not None and visible(job, principal)
        return seen


def _position(event_id: str) -> int | None:
    """The log position an event's `id` names, or None for a string that
    is not one the server gives out (a not-found, like an unknown one)."""
    if event_id.isascii() and event_id.isdigit() and len(event_id) <= 18:
        return int(event_id)
    return None


def _job_of(event: Event) -> str:
    """The batch job an event came from, or that a notification is about."""
    if event.source == "NOTIFICATION":
        return str(json.loads(event.data).get("batch_job_id", ""))
    return event.job_id if event.source == "BATCH_JOB" else ""


def register(
    server: aio.Server,
    store: Store,
    processor: BulkProcessor,
    idempotency: Idempotency,
    clock: Callable[[], float] = time.time,
) -> None:
    event_bulk_create_job_pb2_grpc.add_EventBulkCreateJobServiceServicer_to_server(
        EventBulkCreateJobService(store, processor, idempotency, clock), server
    )
    profile_pb2_grpc.add_ProfileServiceServicer_to_server(ProfileService(store), server)
    event_pb2_grpc.add_EventServiceServicer_to_server(EventService(store), server)
