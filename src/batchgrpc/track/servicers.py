"""gRPC servicers of `batchgrpc.track.v2` (the Bloomreach mirror).

`Batch`, `UpdateCustomerProperties` and `AddEvent` take their requests as
bytes (`@raw_request`): the Rust core decodes them, `Struct`s included, so a
command nested past Python's protobuf recursion limit fails alone with its
own error instead of failing the request in Python's decoder.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from grpc import aio

from batchgrpc import core, metrics, tracing
from batchgrpc.errors import FieldViolation, InvalidArgument, ProjectTokenMismatch
from batchgrpc.idempotency import Idempotency
from batchgrpc.interceptor import Context, current_principal, raw_request
from batchgrpc.requests import MAX_ID
from batchgrpc.store import IngestBatch, Store
from batchgrpc.track.commands import CUSTOMERS, EVENTS, Outcome, field_violations, plan
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc


def check_project_token(project_token: str) -> None:
    """The project token names the account and must be the key's own."""
    if len(project_token) > MAX_ID:
        raise InvalidArgument(
            f"project_token is longer than {MAX_ID} characters.",
            violations=[FieldViolation("project_token", f"at most {MAX_ID} characters, got {len(project_token)}")],
        )
    principal = current_principal()
    if project_token != principal.account:
        raise ProjectTokenMismatch(
            "The project token does not match the API key's project.",
            violations=[FieldViolation("project_token", "must be the API key's project (account)")],
        )


def summary(errors: list[tuple[str, str]]) -> str:
    """The status message of a single-command RPC that fails: its one error,
    or the first and how many more. Each error echoes at most 256 characters
    of the client's text, so the message does too; every error stays in the
    BadRequest violations."""
    first = errors[0][1]
    if len(errors) == 1:
        return first
    return f"{len(errors)} problems; the first: {first} See the field violations for all of them."


def result_message(command: core.TrackCommand, outcome: Outcome) -> tracking_pb2.CommandResult:
    result = tracking_pb2.CommandResult(success=outcome.success, errors=outcome.errors)
    if command.command_id is not None:
        result.command_id = command.command_id
    if outcome.time is not None:
        result.time = outcome.time
    return result


class TrackingService(tracking_pb2_grpc.TrackingServiceServicer):
    def __init__(self, store: Store, idempotency: Idempotency, clock: Callable[[], float]) -> None:
        self._store = store
        self._idempotency = idempotency
        self._clock = clock

    async def _apply(self, commands: list[core.TrackCommand], now: float) -> list[Outcome]:
        """Runs the commands that can run, all in one store transaction: a
        batch is tracked whole or, on a store error, not at all."""
        principal = current_principal()
        outcomes, items = plan(commands, principal.scopes, now)
        if items:
            batch = IngestBatch.of(items, traceparent=tracing.current_traceparent())
            applied = await self._store.profiles.ingest(principal.account, batch, now)
            metrics.dispatched("TRACKING", sum(o.accepted for o in applied))
        return outcomes

    @raw_request
    async def Batch(self, request: bytes, context: Context) -> tracking_pb2.BatchResponse:  # type: ignore[override]
        start = self._clock()
        # Raises for bytes that are not a BatchRequest and for a batch that
        # fails whole: no commands, more than 50, too big.
        batch = await core.prepare_track_batch(request, start)
        check_project_token(batch.project_token)
        commands = batch.commands

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
            request_id=batch.request_id,
            # What the core decoded, not the bytes: a Struct's keys have no
            # fixed wire order, so a genuine retry may arrive as other bytes.
            request=batch.fingerprint,
            response_type=tracking_pb2.BatchResponse,
            create=run,
        )

    async def _single(self, kind: str, request: bytes) -> None:
        """Runs the one command a single-command request stands for; its
        errors are the RPC's INVALID_ARGUMENT."""
        now = self._clock()
        batch = await core.prepare_track_command(kind, request, now)
        check_project_token(batch.project_token)
        (command,) = batch.commands
        if command.errors:
            raise InvalidArgument(
                summary(command.errors),
                violations=[FieldViolation(field, message) for field, message in field_violations(command.errors)],
            )
        await self._apply([command], now)

    @raw_request
    async def UpdateCustomerProperties(  # type: ignore[override]
        self, request: bytes, context: Context
    ) -> tracking_pb2.UpdateCustomerPropertiesResponse:
        await self._single(CUSTOMERS, request)
        return tracking_pb2.UpdateCustomerPropertiesResponse(success=True)

    @raw_request
    async def AddEvent(self, request: bytes, context: Context) -> tracking_pb2.AddEventResponse:  # type: ignore[override]
        await self._single(EVENTS, request)
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
