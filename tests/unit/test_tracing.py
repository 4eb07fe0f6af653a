"""Tracing off (no OTLP endpoint): nothing is installed and every hook
returns at once; and the sink's messages carry an event's traceparent only
when it has one. The spans themselves are tested against a real receiver
(tests/process/test_traces.py)."""

from __future__ import annotations

import contextlib

import grpc
import pytest
from opentelemetry import trace

from batchgrpc import tracing
from batchgrpc.sinks.message import message_of
from tests.store.build import event

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_without_an_endpoint_no_provider_is_installed_and_every_hook_is_a_no_op(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # What would configure everything else, without an endpoint.
    monkeypatch.setenv("OTEL_SERVICE_NAME", "other")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    assert tracing.configure(worker_index=0) is False
    assert not tracing.enabled()
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)

    def metadata() -> list[tuple[str, str]]:
        raise AssertionError("the call's metadata is read only when tracing is on")

    # The same do-nothing context manager every time: no span, no context.
    for manager in (
        tracing.rpc("/batchgrpc.track.v2.TrackingService/Batch", metadata),
        tracing.span("core.prepare_track_batch"),
        tracing.continued("bulk.process", TRACEPARENT),
        tracing.delivery("kafka:events", {}, [TRACEPARENT]),
    ):
        assert isinstance(manager, contextlib.nullcontext)
        with manager as inside:
            assert inside is None
            assert not trace.get_current_span().get_span_context().is_valid
            assert tracing.current_traceparent() == ""
    tracing.rpc_ended(grpc.StatusCode.INTERNAL, "INTERNAL")

    def fn() -> int:
        return 1

    assert tracing.carried(fn) is fn
    tracing.flush()
    tracing.shutdown()


def test_a_message_carries_the_events_traceparent_only_when_it_has_one() -> None:
    traced = message_of(event("e1", traceparent=TRACEPARENT, position=7))
    assert dict(traced.headers)["traceparent"] == TRACEPARENT.encode()
    assert [name for name, _ in traced.headers] == ["event_id", "account", "source", "traceparent"]
    untraced = message_of(event("e2"))
    assert [name for name, _ in untraced.headers] == ["event_id", "account", "source"]
