"""OpenTelemetry traces (API.md, "Operating it"): off unless
OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set;
the SDK reads every other standard OTEL_* variable itself (sampler, batch
processor, exporter headers, resource attributes, propagators).

What makes spans:

- `rpc`: one server span per RPC, in the one interceptor, continuing the
  caller's `traceparent`/`tracestate` from the call's metadata;
- `span`: a child for the core's work, a store write, a job's processing;
  never a root, so the background loops (lease renewals, job polls, the
  relay's bookkeeping) write no trace of their own every tick;
- `delivery`: one root span per relay batch handed to a sink, linked to the
  traces its events came from.

An event keeps the `traceparent` of the request that produced it
(`current_traceparent`) in the event log, so the relay, which runs later and
maybe in another process, puts it on the event's Kafka message.

Off, every function here returns at its first line: no provider is
installed, the SDK is never imported, and nothing is extracted or injected.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer
    from opentelemetry.util.types import AttributeValue

log = logging.getLogger("batchgrpc.tracing")

T = TypeVar("T")

#: The variables that turn tracing on: the exporter's endpoint.
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
#: service.name when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names one.
SERVICE_NAME = "batchgrpc"

#: The codes for which a server span's status is Error (OpenTelemetry's RPC
#: conventions): the server's failures, not the caller's mistakes.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


def enabled() -> bool:
    return _tracer is not None


def configure(worker_index: int | None = None) -> bool:
    """Installs the tracer provider when an OTLP endpoint is configured;
    says whether it did. Each process (each of `--workers`) exports its own
    spans, its pid and worker index in the resource."""
    global _provider, _tracer
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, AttributeValue] = {"process.pid": os.getpid()}
    if worker_index is not None:
        attributes["batchgrpc.worker.index"] = worker_index
    resource = Resource.create(attributes)
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    # The sampler from OTEL_TRACES_SAMPLER, the exporter and the processor
    # from theirs: the SDK reads them when given none.
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("batchgrpc")
    log.info(
        "tracing",
        extra={"fields": {"service_name": resource.attributes["service.name"], "worker": worker_index}},
    )
    return True


def flush() -> None:
    """Exports the spans ended so far (at a server's stop)."""
    if _provider is not None:
        _provider.force_flush()


def shutdown() -> None:
    """Exports what is left and stops the exporter (at a process's exit)."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _provider = _tracer = None


@contextlib.contextmanager
def _rpc(tracer: Tracer, method: str, metadata: Iterable[tuple[str, Any]]) -> Iterator[None]:
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    carrier = {key: value for key, value in metadata if isinstance(value, str)}
    service, _, name = method.lstrip("/").partition("/")
    with tracer.start_as_current_span(
        f"{service}/{name}",
        context=propagate.extract(carrier),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        # The interceptor sets the status from the call's code (`rpc_ended`);
        # an abort is how a call ends with one, not an error of the span's.
        record_exception=False,
        set_status_on_exception=False,
    ):
        yield


def rpc(
    method: str, metadata: Callable[[], Iterable[tuple[str, Any]] | None]
) -> contextlib.AbstractContextManager[None]:
    """The server span of one call of `method` ("/package.Service/Method"),
    current while the call runs; `metadata` gives the call's (read only
    when tracing is on)."""
    if _tracer is None:
        return _OFF
    return _rpc(_tracer, method, metadata() or ())


def rpc_ended(code: grpc.StatusCode, reason: str = "") -> None:
    """Records the current call's status code, and the ErrorInfo reason of an error."""
    if _tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    span = trace.get_current_span()
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if reason:
        span.set_attribute("error.type", reason)
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, reason or code.name))


def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one, current inside; nothing when there
    is no recording span to be the child of."""
    if _tracer is None:
        return _OFF
    from opentelemetry import trace

    if not trace.get_current_span().is_recording():
        return _OFF
    return _tracer.start_as_current_span(name, attributes=attributes)


def continued(name: str, traceparent: str) -> contextlib.AbstractContextManager[Any]:
    """A span in the trace of `traceparent` (a job's creation request),
    child of the span that sent it; nothing without one."""
    if _tracer is None or not traceparent:
        return _OFF
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    return _tracer.start_as_current_span(name, context=parent)


def current_traceparent() -> str:
    """The W3C `traceparent` of the current span, for an event to carry to
    the sink; empty when tracing is off or no span is current."""
    if _tracer is None:
        return ""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", "")


def delivery(
    sink: str, attributes: Mapping[str, AttributeValue], traceparents: Sequence[str]
) -> contextlib.AbstractContextManager[Any]:
    """The span of one relay batch sent to a sink: a trace of its own (the
    relay serves no request), linked to those of its events."""
    if _tracer is None:
        return _OFF
    from opentelemetry import context, trace
    from opentelemetry.trace import Link, SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    links = []
    for traceparent in dict.fromkeys(t for t in traceparents if t):
        linked = trace.get_current_span(propagator.extract({"traceparent": traceparent})).get_span_context()
        if linked.is_valid:
            links.append(Link(linked))
    return _tracer.start_as_current_span(
        f"{sink} send", context=context.Context(), kind=SpanKind.PRODUCER, attributes=attributes, links=links
    )


def carried(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn`, to run in the current context on another thread: a
    ThreadPoolExecutor's submit and run_in_executor do not carry contextvars
    (asyncio.to_thread does), and the spans made there need their parent."""
    if _tracer is None:
        return fn
    return functools.partial(contextvars.copy_context().run, fn)
