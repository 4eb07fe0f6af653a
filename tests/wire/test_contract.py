"""The whole contract is served: reflection, health, and every RPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from batchgrpc import server
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import REVISION, Harness, bearer, rich_error

API_MD_SERVICES = {
    "batchgrpc.batches.v6.BatchJobService",
    "batchgrpc.batches.v6.FileAssetService",
    "batchgrpc.batches.v6.ReportService",
    "batchgrpc.batches.v6.AudienceListService",
    "batchgrpc.events.v1.EventBulkCreateJobService",
    "batchgrpc.events.v1.ProfileService",
    "batchgrpc.events.v1.EventService",
    "batchgrpc.track.v2.TrackingService",
}

API_MD_RPCS = {
    "BatchJobService": {
        "CreateBatchJob",
        "GetBatchJob",
        "ListBatchJobs",
        "UpdateBatchJob",
        "CancelBatchJob",
        "ExpireBatchJob",
        "DeleteBatchJob",
        "WatchBatchJob",
        "ListBatchJobRowErrors",
    },
    "FileAssetService": {"UploadFileAsset", "GetFileAsset", "ListFileAssets", "DeleteFileAsset"},
    "ReportService": {"CreateReport", "UploadReportResult", "GetReport", "ListReports"},
    "AudienceListService": {"CreateAudienceList", "UploadAudienceListMembers", "GetAudienceList", "ListAudienceLists"},
    "EventBulkCreateJobService": {"CreateEventBulkCreateJob", "GetEventBulkCreateJob"},
    "ProfileService": {"GetProfile", "ListProfiles"},
    "EventService": {"ListEvents", "GetEvent"},
    "TrackingService": {"Batch", "UpdateCustomerProperties", "AddEvent", "GetSystemTime"},
}


async def reflect(
    channel: aio.Channel, request: reflection_pb2.ServerReflectionRequest, *, v1: bool = False
) -> reflection_pb2.ServerReflectionResponse:
    if v1:
        # v1 and v1alpha share their messages; only the method path differs.
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
    else:
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield request

    async for response in call(requests()):
        return response
    raise AssertionError("no reflection response")


@pytest.mark.parametrize("v1", [False, True], ids=["v1alpha", "v1"])
async def test_reflection_lists_every_service_of_the_contract(harness: Harness, v1: bool) -> None:
    response = await reflect(harness.channel, reflection_pb2.ServerReflectionRequest(list_services=""), v1=v1)
    names = {s.name for s in response.list_services_response.service}
    assert names >= API_MD_SERVICES
    assert {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    } <= names


@pytest.mark.parametrize("v1", [False, True], ids=["v1alpha", "v1"])
async def test_reflection_describes_services_and_error_details(harness: Harness, v1: bool) -> None:
    response = await reflect(
        harness.channel,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="batchgrpc.track.v2.TrackingService"),
        v1=v1,
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in response.file_descriptor_response.file_descriptor_proto
    ]
    assert "batchgrpc/track/v2/tracking.proto" in {f.name for f in files}
    # grpcurl resolves error detail types through reflection to decode them.
    details = await reflect(
        harness.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol="google.rpc.ErrorInfo"), v1=v1
    )
    assert details.file_descriptor_response.file_descriptor_proto
    # Reflection describes itself under both names.
    for name in ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"):
        itself = await reflect(
            harness.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=name), v1=v1
        )
        assert itself.file_descriptor_response.file_descriptor_proto, name


def test_the_descriptors_have_exactly_api_mds_services_and_rpcs() -> None:
    assert set(server.CONTRACT_SERVICES) == API_MD_SERVICES
    from batchgrpc.auth import POLICIES
    from batchgrpc.server import _CONTRACT_FILES

    methods = set()
    for module in _CONTRACT_FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            assert {m.name for m in service.methods} == API_MD_RPCS[service.name], service.name
            methods |= {f"/{service.full_name}/{m.name}" for m in service.methods}
    # Every RPC has an auth policy, and no policy names an RPC that is gone.
    assert set(POLICIES) == methods


async def test_health_is_serving_without_a_key(harness: Harness) -> None:
    stub = health_pb2_grpc.HealthStub(harness.channel)
    for service in ("", *API_MD_SERVICES):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_goes_not_serving_on_shutdown(harness: Harness) -> None:
    stub = health_pb2_grpc.HealthStub(harness.channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    await harness.running.health.enter_graceful_shutdown()
    second = await asyncio.wait_for(watch.read(), 5)
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()


#: RPCs that answer an empty request with OK. Every other RPC must refuse
#: it with rich details (a bad request, or a missing resource).
SERVED_WITH_EMPTY_REQUEST: set[str] = {
    # Lists: an empty request is the first page of everything.
    "/batchgrpc.batches.v6.BatchJobService/ListBatchJobs",
    "/batchgrpc.batches.v6.FileAssetService/ListFileAssets",
    "/batchgrpc.batches.v6.ReportService/ListReports",
    "/batchgrpc.batches.v6.AudienceListService/ListAudienceLists",
    "/batchgrpc.events.v1.EventService/ListEvents",
    "/batchgrpc.events.v1.ProfileService/ListProfiles",
}


def _all_methods() -> list[tuple[str, object]]:
    from batchgrpc.server import _CONTRACT_FILES

    found = []
    for module in _CONTRACT_FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                found.append((f"/{service.full_name}/{m.name}", m))
    return found


@pytest.mark.parametrize(("path", "method"), _all_methods(), ids=[p for p, _ in _all_methods()])
async def test_every_rpc_exists_and_answers_with_rich_details(harness: Harness, path: str, method: object) -> None:
    from google.protobuf import message_factory

    request_cls = message_factory.GetMessageClass(method.input_type)  # type: ignore[attr-defined]
    response_cls = message_factory.GetMessageClass(method.output_type)  # type: ignore[attr-defined]
    kwargs = {"request_serializer": request_cls.SerializeToString, "response_deserializer": response_cls.FromString}
    metadata = (*bearer(harness.admin), REVISION)
    client_streaming = method.client_streaming  # type: ignore[attr-defined]
    server_streaming = method.server_streaming  # type: ignore[attr-defined]

    async def one() -> AsyncIterator[object]:
        yield request_cls()

    served = path in SERVED_WITH_EMPTY_REQUEST
    failure: aio.AioRpcError | None = None
    try:
        if client_streaming and server_streaming:
            raise AssertionError("the contract has no bidirectional streams")
        if client_streaming:
            await harness.channel.stream_unary(path, **kwargs)(one(), metadata=metadata)
        elif server_streaming:
            async for _ in harness.channel.unary_stream(path, **kwargs)(request_cls(), metadata=metadata):
                pass
        else:
            await harness.channel.unary_unary(path, **kwargs)(request_cls(), metadata=metadata)
    except aio.AioRpcError as e:
        failure = e
    if served:
        assert failure is None, f"{path} failed: {failure.details() if failure else ''}"
        return
    assert failure is not None, f"{path} answered OK to an empty request"
    # Every RPC is served: none answers UNIMPLEMENTED, and every refusal
    # carries ErrorInfo.
    error = rich_error(failure)
    assert error.code != grpc.StatusCode.UNIMPLEMENTED, error.message
    assert error.info.reason


async def test_get_system_time_is_served(harness: Harness) -> None:
    import time

    stub = tracking_pb2_grpc.TrackingServiceStub(harness.channel)
    before = time.time()
    response = await stub.GetSystemTime(
        tracking_pb2.GetSystemTimeRequest(project_token="default"), metadata=bearer(harness.admin)
    )
    assert response.success
    assert before - 1 <= response.time <= time.time() + 1


async def test_a_method_outside_the_contract_is_the_transports_unimplemented(harness: Harness) -> None:
    call = harness.channel.unary_unary("/batchgrpc.track.v2.TrackingService/Nope")
    with pytest.raises(aio.AioRpcError) as caught:
        await call(b"", metadata=bearer(harness.admin))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
