"""The one server interceptor: authentication, scopes, rate limits, the
`revision` check, the access log, the RPC metrics (`batchgrpc.metrics`), the
RPC's trace span (`batchgrpc.tracing`), and
the mapping of every exception to a gRPC status with rich details.

Servicers raise `batchgrpc.errors` exceptions and never call `context.abort`;
they read the caller with `current_principal()`.

Requests arrive as bytes and are decoded here, after authentication
(`batchgrpc.requests`): malformed bytes are INVALID_ARGUMENT for a caller with
a key, and nothing for one without. A method marked `@raw_request` gets the
bytes themselves, for the Rust core to decode.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from grpc import aio

from batchgrpc import memory, metrics, requests, tracing
from batchgrpc.auth import Keyring, Principal, authorize, policy_for
from batchgrpc.errors import AmbiguousCredentials, BatchgrpcError, Internal, RateLimited
from batchgrpc.events.revision import check_revision, set_current
from batchgrpc.ratelimit import Decision, RateLimiter

log = logging.getLogger("batchgrpc.rpc")

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")

Metadata = list[tuple[str, str | bytes]]
#: The servicer context of any RPC.
#: (Strings: the grpc classes are generic only in their stubs.)
Context: TypeAlias = "aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


F = TypeVar("F", bound=Callable[..., Any])


def raw_request(method: F) -> F:
    """Marks a servicer method that takes its request as the serialized
    bytes: the Rust core decodes and checks them with the API's own errors
    (Python's decoder would fail on a Struct nested past its recursion
    limit before the API's nesting rule could speak)."""
    method.raw_request = True  # type: ignore[attr-defined]
    return method


def current_principal() -> Principal:
    """The authenticated caller of the RPC being served."""
    try:
        return _principal.get()
    except LookupError:
        # Only reachable if a servicer runs outside the interceptor: a bug.
        raise RuntimeError("no authenticated principal for this call") from None


class _Call:
    """One RPC passing through the interceptor."""

    def __init__(self, method: str, context: Context, rpc: metrics.Rpc) -> None:
        self.method = method
        self.context = context
        self.rpc = rpc
        self.policy = policy_for(method)
        self.principal: Principal | None = None
        self.decision: Decision | None = None
        self.started = time.perf_counter()
        rpc.started()

    async def admit(self, keyring: Keyring, limiter: RateLimiter) -> None:
        pairs = [(k, v) for k, v in self.context.invocation_metadata() or () if isinstance(v, str)]
        credentials = [v for k, v in pairs if k == "authorization"]
        if len(credentials) > 1:
            # Which one would the caller mean? Guessing could run a call as
            # the wrong key.
            raise AmbiguousCredentials("More than one authorization value: send exactly one.")
        metadata = dict(pairs)
        self.principal = await keyring.authenticate(metadata.get("authorization"))
        authorize(self.principal, self.policy, self.method)
        self.decision = await limiter.acquire(self.principal.account, self.policy.api)
        if self.decision is not None and not self.decision.allowed:
            metrics.rate_limited.labels(self.policy.api.value).inc()
            raise RateLimited(
                f"Request was throttled. Expected available in {self.decision.retry_after_seconds} second(s).",
                retry_after=self.decision.retry_after or 1.0,
                metadata={"limit": str(self.decision.limit)},
            )
        if self.policy.revision:
            set_current(check_revision(metadata.get("revision")))
        _principal.set(self.principal)

    def response_metadata(self) -> Metadata:
        return list(self.decision.metadata()) if self.decision is not None else []

    async def fail(self, error: Exception) -> None:
        """Ends the call with the status for `error`; unexpected ones become INTERNAL."""
        if not isinstance(error, BatchgrpcError):
            log.error(
                "unhandled exception",
                exc_info=error,
                extra={"fields": {"method": self.method}},
            )
            error = Internal()
        self.log(error.code, error.reason.value)
        _forget_frames(error)
        status = error.to_status(self.policy.api)
        metadata = self.response_metadata()
        metadata.append(("grpc-status-details-bin", status.SerializeToString()))
        await self.context.abort(error.code, error.message, trailing_metadata=tuple(metadata))

    def succeed(self) -> None:
        self.context.set_trailing_metadata(tuple(self.response_metadata()))
        self.log(grpc.StatusCode.OK)

    def cancelled(self) -> None:
        """The caller went away (or the server is stopping) mid-call."""
        self.rpc.handled(grpc.StatusCode.CANCELLED, time.perf_counter() - self.started)
        tracing.rpc_ended(grpc.StatusCode.CANCELLED)

    def log(self, code: grpc.StatusCode, reason: str = "") -> None:
        seconds = time.perf_counter() - self.started
        # Every call that ends with a status ends here, once.
        self.rpc.handled(code, seconds)
        tracing.rpc_ended(code, reason)
        fields: dict[str, Any] = {
            "method": self.method,
            "code": code.name,
            "ms": round(seconds * 1000, 3),
        }
        if reason:
            fields["reason"] = reason
        if self.principal is not None:
            fields["account"] = self.principal.account
            fields["key_id"] = self.principal.key_id
        log.info("rpc", extra={"fields": fields})


class CallInterceptor(aio.ServerInterceptor):
    def __init__(self, keyring: Keyring, limiter: RateLimiter) -> None:
        self._keyring = keyring
        self._limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not policy_for(method).authenticated:
            # Unknown methods get the transport's UNIMPLEMENTED; health and
            # reflection need no key and keep their own handlers.
            return handler
        return self._wrap(method, handler)

    def _wrap(self, method: str, handler: Handler) -> Handler:
        keyring, limiter = self._keyring, self._limiter
        rpc = metrics.Rpc.of(
            method, request_streaming=handler.request_streaming, response_streaming=handler.response_streaming
        )
        deserialize = handler.request_deserializer
        message_type = getattr(deserialize, "__self__", None)
        if message_type is None:
            # Every generated handler has one; only a hand-made handler could
            # lack it, and it must not be served undecoded.
            raise TypeError(f"{method}: the request deserializer is not a message's FromString")

        def request_of(behavior: Callable[..., Any], data: Any) -> Any:
            if handler.request_streaming:
                data = _counted(rpc, data)
            if getattr(behavior, "raw_request", False):
                return data
            if handler.request_streaming:
                return _decoded(message_type, data)
            return requests.decode(message_type, data)

        async def unary(behavior: Callable[..., Any], request: Any, context: Context) -> Any:
            call = _Call(method, context, rpc)
            if not handler.request_streaming:
                # As go-grpc-prometheus: a unary request counts as received
                # before anything else, whatever the call's end.
                rpc.received()
            try:
                await call.admit(keyring, limiter)
                response = await behavior(request_of(behavior, request), context)
            except aio.AbortError:
                raise
            except asyncio.CancelledError:
                call.cancelled()
                raise
            except Exception as error:  # noqa: BLE001 - every error becomes a status here
                large = isinstance(request, bytes) and len(request) >= memory.TRIM_AFTER_BYTES
                del request  # see _unary below
                if large:
                    memory.give_back_soon()
                await call.fail(error)
            call.succeed()
            rpc.sent()
            return response

        async def streaming(behavior: Callable[..., Any], request: Any, context: Context) -> AsyncIterator[Any]:
            call = _Call(method, context, rpc)
            if not handler.request_streaming:
                rpc.received()
            try:
                await call.admit(keyring, limiter)
                result = behavior(request_of(behavior, request), context)
                if inspect.isasyncgen(result):
                    async for response in result:
                        yield response
                        rpc.sent()
                else:
                    await result
            except aio.AbortError:
                raise
            except (asyncio.CancelledError, GeneratorExit):
                # GeneratorExit: grpc closes the stream of a caller that left.
                call.cancelled()
                raise
            except Exception as error:  # noqa: BLE001 - every error becomes a status here
                del request  # see _unary below
                await call.fail(error)
            call.succeed()

        def bind(kind: Callable[..., Handler], wrapper: Callable[..., Any], behavior: Any) -> Handler:
            async def _unary(request: Any, context: Context) -> Any:
                try:
                    with tracing.rpc(method, context.invocation_metadata):
                        return await wrapper(behavior, request, context)
                except aio.AbortError:
                    # grpc keeps the abort in a cycle with the call's state
                    # until the garbage collector runs; its traceback must
                    # not keep the request's bytes alive with it.
                    del request
                    raise

            async def _stream(request: Any, context: Context) -> AsyncIterator[Any]:
                with tracing.rpc(method, context.invocation_metadata):
                    async for response in wrapper(behavior, request, context):
                        yield response

            return kind(
                _stream if wrapper is streaming else _unary,
                # Bytes in: decoding waits until the caller is known.
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )

        if handler.unary_unary:
            return bind(grpc.unary_unary_rpc_method_handler, unary, handler.unary_unary)
        if handler.stream_unary:
            return bind(grpc.stream_unary_rpc_method_handler, unary, handler.stream_unary)
        if handler.unary_stream:
            return bind(grpc.unary_stream_rpc_method_handler, streaming, handler.unary_stream)
        return bind(grpc.stream_stream_rpc_method_handler, streaming, handler.stream_stream)


def _forget_frames(error: BaseException) -> None:
    """Drops the tracebacks of `error` and the errors it chains to, once
    logged. Their frames hold the request (megabytes of bytes) and form
    cycles with the abort that follows: kept, they would pile up until the
    garbage collector happens to run."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


async def _counted(rpc: metrics.Rpc, messages: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A client stream's messages, each counted as it arrives."""
    async for data in messages:
        rpc.received()
        yield data


async def _decoded(message_type: Any, messages: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    """A client stream's messages, each decoded and checked as it arrives."""
    async for data in messages:
        yield requests.decode(message_type, data)
