"""A key without a batch job's role sees nothing of the job on any read
path: not its record, not its events, not the notifications about it, and
not its record through a `request_id` replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc import aio

from batchgrpc import server
from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc
from batchgrpc.events.v1 import event_pb2

from ..conftest import Harness, make_config, rich_error
from ..wire.batches_client import Client

NOTIFICATION = event_pb2.Event.Source.NOTIFICATION
CSV = b"id,email\n1,a@example.com\n2,b@example.com\n"


@pytest.fixture
async def admin(harness: Harness) -> Client:
    return Client(harness.channel, harness.admin.token)


async def test_events_of_a_job_the_caller_may_not_see_are_not_listed(harness: Harness, admin: Client) -> None:
    secret = await admin.run(CSV, default_event_name="e", scopes=["CLIENT_SUPERUSER"])
    public = await admin.run(CSV, default_event_name="e")
    assert len(await admin.events_of(secret.id)) == 2
    reader = Client(harness.channel, (await harness.key(["batches:read", "events:read"])).token)

    # The batch RPCs say NOT_FOUND, and so does every other read path.
    with pytest.raises(aio.AioRpcError) as caught:
        await reader.get(secret.id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await reader.events_of(secret.id) == []
    everything = await reader.events_of()
    assert {e.job_id for e in everything if e.job_id} == {public.id}
    told_of = {e.data["batch_job_id"] for e in everything if e.source == NOTIFICATION}
    assert told_of == {public.id}
    # The admin still sees both jobs' events and notifications.
    told_admin = {e.data["batch_job_id"] for e in await admin.events_of() if e.source == NOTIFICATION}
    assert told_admin == {public.id, secret.id}


async def test_a_replay_does_not_show_a_job_to_a_caller_without_its_role(tmp_path: Path) -> None:
    # No slot to run in: the job stays QUEUED, so it may still be updated
    # (a job this small is DONE before the next call otherwise).
    running = await server.start(make_config(tmp_path / "data", max_running_jobs=0))
    try:
        async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert running.first_admin_key is not None
            admin = Client(channel, running.first_admin_key.token)
            asset = await admin.upload(CSV)
            request = batch_job_pb2.CreateBatchJobRequest(
                data_source=batch_job_pb2.DataSource(type="FILE_ASSET", file_asset_id=asset.id),
                default_event_name="e",
                request_id="r-1",
            )
            job = (await admin.jobs.CreateBatchJob(request, metadata=admin.metadata)).batch_job
            # Restricted after creation, as UpdateBatchJob allows.
            await admin.jobs.UpdateBatchJob(
                batch_job_pb2.UpdateBatchJobRequest(batch_id=job.id, scopes=["CLIENT_SUPERUSER"]),
                metadata=admin.metadata,
            )
            key = await running.keyring.create("default", ["batches:read", "batches:write", "CLIENT_ADMIN"])
            writer = Client(channel, key.token)
            with pytest.raises(aio.AioRpcError) as caught:
                await writer.jobs.CreateBatchJob(request, metadata=writer.metadata)
            error = rich_error(caught.value)
            assert error.code == grpc.StatusCode.NOT_FOUND
            assert error.info.reason == "BATCH_JOB_NOT_FOUND"
            # Not even the hidden job's id.
            assert job.id not in f"{error.message} {error.info} {error.trailing}"
            # The one who may see it gets the replay, as it is now.
            replay = (await admin.jobs.CreateBatchJob(request, metadata=admin.metadata)).batch_job
            assert replay.id == job.id
            listed = await batch_job_pb2_grpc.BatchJobServiceStub(channel).ListBatchJobs(
                batch_job_pb2.ListBatchJobsRequest(), metadata=admin.metadata
            )
            assert [j.id for j in listed.batch_jobs] == [job.id]
    finally:
        await server.stop(running, 0)


async def test_a_watch_ends_when_the_jobs_scopes_no_longer_let_the_caller_see_it(tmp_path: Path) -> None:
    # No slot to run in: the job stays QUEUED, its watch open.
    running = await server.start(make_config(tmp_path / "data", max_running_jobs=0))
    try:
        async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert running.first_admin_key is not None
            admin = Client(channel, running.first_admin_key.token)
            job = await admin.create((await admin.upload(CSV)).id, default_event_name="e")
            watcher = Client(channel, (await running.keyring.create("default", ["batches:read", "CLIENT_ADMIN"])).token)
            request = batch_job_pb2.WatchBatchJobRequest(batch_id=job.id)
            watch = watcher.jobs.WatchBatchJob(request, metadata=watcher.metadata)
            first = await watch.read()
            assert first.batch_job.id == job.id
            await admin.jobs.UpdateBatchJob(
                batch_job_pb2.UpdateBatchJobRequest(batch_id=job.id, scopes=["CLIENT_SUPERUSER"]),
                metadata=admin.metadata,
            )
            with pytest.raises(aio.AioRpcError) as caught:
                await asyncio.wait_for(_rest_of(watch), 10)
            error = rich_error(caught.value)
            assert (error.code, error.info.reason) == (grpc.StatusCode.NOT_FOUND, "BATCH_JOB_NOT_FOUND")
    finally:
        await server.stop(running, 0)


async def _rest_of(watch: object) -> None:
    """Reads a watch to its end; nothing may show the job's new scopes."""
    while (update := await watch.read()) is not aio.EOF:  # type: ignore[attr-defined]
        assert not update.batch_job.scopes
