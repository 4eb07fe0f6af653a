"""gRPC servicers of `batchgrpc.track.v2` (the Bloomreach mirror)."""

from __future__ import annotations

import time
from collections.abc import Callable

from google.protobuf import struct_pb2
from grpc import aio

from batchgrpc import _core
from batchgrpc.errors import FieldViolation, InvalidArgument, ProjectTokenMismatch
from batchgrpc.idempotency import Idempotency
from batchgrpc.interceptor import Context, current_principal
from batchgrpc.store import Store
from batchgrpc.track.commands import CUSTOMERS, EVENTS, Outcome, field_violations, plan
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc


def check_project_token(project_token: str) -> None:
    """The project token names the account and must be the key's own."""
    principal = current_principal()
    if project_token != principal.account:
        raise ProjectTokenMismatch(
            "The project token does not match the API key's project.",
            violations=[FieldViolation("project_token", "must be the API key's project (account)")],
        )


def result_message(command: _core.TrackCommand, outcome: Outcome) -> tracking_pb2.CommandResult:
    result = tracking_pb2.CommandResult(success=outcome.success, errors=outcome.errors)
    if command.command_id is not None:
        result.command_id = command.command_id
    if outcome.time is not None:
        result.time = outcome.time
    return result


def single_command(name: str, data: struct_pb2.Struct) -> bytes:
    """A single-command RPC as the batch of one it behaves like."""
    request = tracking_pb2.BatchRequest(commands=[tracking_pb2.Command(name=name, data=data)])
    return request.SerializeToString()


class TrackingService(tracking_pb2_grpc.TrackingServiceServicer):
    def __init__(self, store: Store, idempotency: Idempotency, clock: Callable[[], float]) -> None:
        self._store = store
        self._idempotency = idempotency
        self._clock = clock

    async def _apply(self, commands: list[_core.TrackCommand], now: float) -> list[Outcome]:
        """Runs the commands that can run, all in one store transaction: a
        batch is tracked whole or, on a store error, not at all."""
        principal = current_principal()
        outcomes, items = plan(commands, principal.scopes, now)
        if items:
            await self._store.profiles.ingest(principal.account, items, now)
        return outcomes

    async def Batch(self, request: tracking_pb2.BatchRequest, context: Context) -> tracking_pb2.BatchResponse:
        check_project_token(request.project_token)
        start = self._clock()
        # Raises for a batch that fails whole: no commands, more than 50, too big.
        commands = _core.prepare_track_batch(request.SerializeToString(), start)

        async def run() -> tracking_pb2.BatchResponse:
            outcomes = await self._apply(commands, start)
            return tracking_pb2.BatchResponse(
                results=[result_message(c, o) for c, o in zip(commands, outcomes, strict=True)],
                start_time=start,
                end_time=self._clock(),
                success=True,
            )

        return await self._idempotency.once(
            account=current_principal().account,
            method="Batch",
            request_id=request.request_id,
            request=request,
            response_type=tracking_pb2.BatchResponse,
            create=run,
        )

    async def _single(self, name: str, data: struct_pb2.Struct) -> None:
        """Runs one command; its errors are the RPC's INVALID_ARGUMENT."""
        now = self._clock()
        (command,) = _core.prepare_track_batch(single_command(name, data), now)
        if command.errors:
            raise InvalidArgument(
                " ".join(message for _, message in command.errors),
                violations=[FieldViolation(field, message) for field, message in field_violations(command.errors)],
            )
        await self._apply([command], now)

    async def UpdateCustomerProperties(
        self, request: tracking_pb2.UpdateCustomerPropertiesRequest, context: Context
    ) -> tracking_pb2.UpdateCustomerPropertiesResponse:
        check_project_token(request.project_token)
        data = struct_pb2.Struct()
        data.get_or_create_struct("customer_ids").update(dict(request.customer_ids))
        if request.HasField("properties"):
            data.get_or_create_struct("properties").CopyFrom(request.properties)
        if request.HasField("update_timestamp"):
            data["update_timestamp"] = request.update_timestamp
        await self._single(CUSTOMERS, data)
        return tracking_pb2.UpdateCustomerPropertiesResponse(success=True)

    async def AddEvent(self, request: tracking_pb2.AddEventRequest, context: Context) -> tracking_pb2.AddEventResponse:
        check_project_token(request.project_token)
        data = struct_pb2.Struct()
        data.get_or_create_struct("customer_ids").update(dict(request.customer_ids))
        data["event_type"] = request.event_type
        if request.HasField("timestamp"):
            data.fields["timestamp"].CopyFrom(request.timestamp)
        if request.HasField("properties"):
            data.get_or_create_struct("properties").CopyFrom(request.properties)
        await self._single(EVENTS, data)
        return tracking_pb2.AddEventResponse(success=True)

    async def GetSystemTime(
        self, request: tracking_pb2.GetSystemTimeRequest, context: Context
    ) -> tracking_pb2.GetSystemTimeResponse:
        check_project_token(request.project_token)
        return tracking_pb2.GetSystemTimeResponse(success=True, time=self._clock())


def register(
    server: aio.Server, store: Store, idempotency: Idempotency, clock: Callable[[], float] = time.time
) -> None:
    tracking_pb2_grpc.add_TrackingServiceServicer_to_server(TrackingService(store, idempotency, clock), server)
