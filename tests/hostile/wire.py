"""Calling any RPC of the contract by its descriptor, with any request, and
the paths into request messages that the hostile tests aim at."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc import aio

from batchgrpc import server
from batchgrpc.batches.jobs import BatchJobService
from batchgrpc.batches.sources import AudienceListService, FileAssetService, ReportService
from batchgrpc.events.servicers import EventBulkCreateJobService, EventService, ProfileService
from batchgrpc.track.servicers import TrackingService

from ..conftest import REVISION

_SERVICERS: dict[str, type] = {
    "batchgrpc.batches.v6.BatchJobService": BatchJobService,
    "batchgrpc.batches.v6.FileAssetService": FileAssetService,
    "batchgrpc.batches.v6.ReportService": ReportService,
    "batchgrpc.batches.v6.AudienceListService": AudienceListService,
    "batchgrpc.events.v1.EventBulkCreateJobService": EventBulkCreateJobService,
    "batchgrpc.events.v1.ProfileService": ProfileService,
    "batchgrpc.events.v1.EventService": EventService,
    "batchgrpc.track.v2.TrackingService": TrackingService,
}


def methods() -> Iterator[MethodDescriptor]:
    for module in server._CONTRACT_FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            yield from service.methods


def is_raw(method: MethodDescriptor) -> bool:
    """Whether the servicer takes this method's request as bytes (the Rust
    core decodes it)."""
    return bool(getattr(getattr(_SERVICERS[method.containing_service.full_name], method.name), "raw_request", False))


def decoded_methods() -> list[MethodDescriptor]:
    """The methods whose requests the server decodes in Python."""
    return [m for m in methods() if not is_raw(m)]


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def metadata_for(method: MethodDescriptor, token: str) -> tuple[tuple[str, str], ...]:
    auth = ("authorization", f"Bearer {token}")
    return (auth, REVISION) if method.full_name.startswith("batchgrpc.events.") else (auth,)


async def call(
    channel: aio.Channel, method: MethodDescriptor, request: Message | bytes, metadata: Any, *, chunk: bytes = b"x"
) -> Any:
    """Calls `method` with `request` (a message, or raw bytes sent as they
    are). A client-streaming upload sends `request` first, then `chunk`."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_type = message_class(method.output_type)
    serialize = (lambda r: r) if isinstance(request, bytes) else (lambda r: r.SerializeToString())
    if method.client_streaming:
        stub = channel.stream_unary(path, request_serializer=serialize, response_deserializer=response_type.FromString)
        follow = message_class(method.input_type)(chunk=chunk) if chunk else None

        async def messages() -> AsyncIterator[Any]:
            yield request
            if follow is not None:
                yield follow if isinstance(request, Message) else follow.SerializeToString()

        return await stub(messages(), metadata=metadata, timeout=30)
    if method.server_streaming:
        streaming = channel.unary_stream(
            path, request_serializer=serialize, response_deserializer=response_type.FromString
        )
        return [r async for r in streaming(request, metadata=metadata, timeout=30)]
    unary = channel.unary_unary(path, request_serializer=serialize, response_deserializer=response_type.FromString)
    return await unary(request, metadata=metadata, timeout=30)


_JSON = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


@dataclass(frozen=True)
class Target:
    """A field somewhere inside a method's request: `steps` lead to it."""

    method: MethodDescriptor
    steps: tuple[FieldDescriptor, ...]

    @property
    def field(self) -> FieldDescriptor:
        return self.steps[-1]

    @property
    def path(self) -> str:
        """The field path a violation names (repeated messages at index 0)."""
        parts = []
        for step in self.steps[:-1]:
            parts.append(f"{step.name}[0]" if step.is_repeated else step.name)
        return ".".join([*parts, self.field.name])

    def request(self) -> tuple[Message, Message]:
        """A request, and the message inside it that holds the field."""
        request = message_class(self.method.input_type)()
        holder = request
        for step in self.steps[:-1]:
            holder = getattr(holder, step.name).add() if step.is_repeated else getattr(holder, step.name)
        return request, holder


def targets(method: MethodDescriptor) -> Iterator[Target]:
    """Every field reachable in the method's request, outside JSON values
    (the core's) and map entries (their keys and values are aimed at through
    the map)."""

    def walk(descriptor: Descriptor, steps: tuple[FieldDescriptor, ...]) -> Iterator[Target]:
        for field in descriptor.fields:
            here = (*steps, field)
            yield Target(method, here)
            sub = field.message_type
            if sub is not None and not sub.GetOptions().map_entry and sub.full_name not in _JSON:
                yield from walk(sub, here)

    yield from walk(method.input_type, ())
