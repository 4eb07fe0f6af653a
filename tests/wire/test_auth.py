"""Authentication and scopes through a real server, for all four schemes."""

from __future__ import annotations

import base64
import sqlite3

import grpc
import pytest
from grpc import aio

from batchgrpc import server
from batchgrpc.auth import NewKey
from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc
from batchgrpc.events.v1 import event_pb2, event_pb2_grpc
from batchgrpc.store.sqlite import DATABASE_NAME
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import REVISION, Harness, make_config, rich_error


def credentials(scheme: str, key: NewKey) -> str:
    if scheme == "Basic":
        return f"Basic {key.basic}"
    return f"{scheme} {key.token}"


SCHEMES = ["Bearer", "Klaviyo-API-Key", "Token", "Basic"]


async def system_time(
    harness: Harness, authorization: str | None, project: str = "default"
) -> tracking_pb2.GetSystemTimeResponse:
    metadata = () if authorization is None else (("authorization", authorization),)
    stub = tracking_pb2_grpc.TrackingServiceStub(harness.channel)
    return await stub.GetSystemTime(tracking_pb2.GetSystemTimeRequest(project_token=project), metadata=metadata)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_every_scheme_authenticates_the_same_key(harness: Harness, scheme: str) -> None:
    response = await system_time(harness, credentials(scheme, harness.admin))
    assert response.success


@pytest.mark.parametrize("scheme", [s.lower() for s in SCHEMES] + [s.upper() for s in SCHEMES])
async def test_scheme_names_are_case_insensitive(harness: Harness, scheme: str) -> None:
    key = harness.admin
    value = f"{scheme} {key.basic if scheme.lower() == 'basic' else key.token}"
    assert (await system_time(harness, value)).success


async def test_no_credentials_is_unauthenticated_with_error_info(harness: Harness) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await system_time(harness, None)
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.info.reason == "MISSING_CREDENTIALS"
    assert error.info.metadata["code"] == "access_key_not_found"


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_wrong_secret_is_unauthenticated_for_every_scheme(harness: Harness, scheme: str) -> None:
    forged = NewKey(harness.admin.key, harness.admin.secret[:-2] + "xx")
    with pytest.raises(aio.AioRpcError) as caught:
        await system_time(harness, credentials(scheme, forged))
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.info.reason == "INVALID_CREDENTIALS"
    assert harness.admin.secret not in error.message


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer not-a-key",
        "Bearer bgk_nothing.here",
        "Digest abc",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"bgk_x:").decode(),
    ],
)
async def test_malformed_credentials_are_unauthenticated(harness: Harness, authorization: str) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await system_time(harness, authorization)
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.info.reason == "INVALID_CREDENTIALS"


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_missing_scope_is_permission_denied_for_every_scheme(harness: Harness, scheme: str) -> None:
    key = await harness.key(["events:read"])
    stub = batch_job_pb2_grpc.BatchJobServiceStub(harness.channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.CreateBatchJob(
            batch_job_pb2.CreateBatchJobRequest(), metadata=(("authorization", credentials(scheme, key)),)
        )
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.info.reason == "MISSING_SCOPE"
    assert error.info.metadata["code"] == "scopes_denied"
    assert error.info.metadata["required_scopes"] == "batches:write"


async def test_read_scope_does_not_write_and_write_scope_does_not_read(harness: Harness) -> None:
    reader = await harness.key(["batches:read"])
    stub = batch_job_pb2_grpc.BatchJobServiceStub(harness.channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.CancelBatchJob(
            batch_job_pb2.CancelBatchJobRequest(batch_id="x"), metadata=(("authorization", f"Bearer {reader.token}"),)
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # With the right scope the call gets past auth (to the job lookup).
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.GetBatchJob(
            batch_job_pb2.GetBatchJobRequest(batch_id="x"), metadata=(("authorization", f"Bearer {reader.token}"),)
        )
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.info.reason == "BATCH_JOB_NOT_FOUND"
    assert error.info.metadata["code"] == "batch_job_not_found"


async def test_public_keys_may_only_track(harness: Harness) -> None:
    public = await harness.key(["events:set"], public=True)
    assert (await system_time(harness, f"Token {public.token}")).success
    stub = event_pb2_grpc.EventServiceStub(harness.channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.ListEvents(
            event_pb2.ListEventsRequest(), metadata=(("authorization", f"Token {public.token}"), REVISION)
        )
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert "Public keys" in error.message


async def test_project_token_must_be_the_keys_account(harness: Harness) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await system_time(harness, f"Bearer {harness.admin.token}", project="someone-else")
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.info.reason == "PROJECT_TOKEN_MISMATCH"
    assert [v.field for v in error.bad_request.field_violations] == ["project_token"]  # type: ignore[union-attr]


async def test_a_revoked_key_stops_working_at_once(harness: Harness) -> None:
    key = await harness.key(["events:set"])
    assert (await system_time(harness, f"Bearer {key.token}")).success
    await harness.running.store.keys.revoke(key.key.key_id, 0.0)
    with pytest.raises(aio.AioRpcError) as caught:
        await system_time(harness, f"Bearer {key.token}")
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.info.reason == "API_KEY_REVOKED"


async def test_keys_are_not_stored_in_clear(harness: Harness) -> None:
    key = await harness.key(["events:read"])
    db = sqlite3.connect(harness.config.data_dir / DATABASE_NAME)
    dump = "\n".join(db.iterdump())
    raw = b"".join(row[0] for row in db.execute("SELECT secret_hash FROM api_keys"))
    for secret in (key.secret, harness.admin.secret):
        assert secret not in dump
        assert secret.encode() not in raw
    # What is stored is a 32-byte HMAC-SHA-256 per key.
    assert all(len(row[0]) == 32 for row in db.execute("SELECT secret_hash FROM api_keys"))


async def test_a_restart_keeps_the_keys_and_creates_no_new_admin(harness: Harness) -> None:
    key = await harness.key(["events:set"])
    config = harness.config
    await server.stop(harness.running, 0)
    restarted = await server.start(config)
    try:
        assert restarted.first_admin_key is None
        async with aio.insecure_channel(f"127.0.0.1:{restarted.port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            for k in (key, harness.admin):
                response = await stub.GetSystemTime(
                    tracking_pb2.GetSystemTimeRequest(project_token="default"),
                    metadata=(("authorization", f"Bearer {k.token}"),),
                )
                assert response.success
    finally:
        await server.stop(restarted, 0)
        harness.running = await server.start(config)  # the fixture stops it again


async def test_the_pepper_is_required_to_verify_keys(tmp_path: object) -> None:
    # A copy of the database alone (without the pepper file) verifies nothing.
    from pathlib import Path

    data = Path(str(tmp_path)) / "data"
    running = await server.start(make_config(data))
    admin = running.first_admin_key
    await server.stop(running, 0)
    assert admin is not None
    (data / "pepper").unlink()
    running = await server.start(make_config(data))
    try:
        async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = tracking_pb2_grpc.TrackingServiceStub(channel)
            with pytest.raises(aio.AioRpcError) as caught:
                await stub.GetSystemTime(
                    tracking_pb2.GetSystemTimeRequest(project_token="default"),
                    metadata=(("authorization", f"Bearer {admin.token}"),),
                )
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(running, 0)
