"""A key without a batch job's role sees nothing of the job on any read
path: not its record, not its events, not the notifications about it, and
not its record through a `request_id` replay."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc
from batchgrpc.events.v1 import event_pb2

from ..conftest import Harness, rich_error
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


async def test_a_replay_does_not_show_a_job_to_a_caller_without_its_role(harness: Harness, admin: Client) -> None:
    asset = await admin.upload(CSV)
    request = batch_job_pb2.CreateBatchJobRequest(
        data_source=batch_job_pb2.DataSource(type="FILE_ASSET", file_asset_id=asset.id),
        default_event_name="e",
        request_id="r-1",
    )
    job = (await admin.jobs.CreateBatchJob(request, metadata=admin.metadata)).batch_job
    # Restricted after creation, as UpdateBatchJob allows.
    await admin.jobs.UpdateBatchJob(
        batch_job_pb2.UpdateBatchJobRequest(batch_id=job.id, scopes=["CLIENT_SUPERUSER"]), metadata=admin.metadata
    )
    writer = Client(harness.channel, (await harness.key(["batches:read", "batches:write", "CLIENT_ADMIN"])).token)
    with pytest.raises(aio.AioRpcError) as caught:
        await writer.jobs.CreateBatchJob(request, metadata=writer.metadata)
    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.info.reason == "BATCH_JOB_NOT_FOUND"
    # The one who may see it gets the replay, as it is now.
    replay = (await admin.jobs.CreateBatchJob(request, metadata=admin.metadata)).batch_job
    assert replay.id == job.id
    listed = await batch_job_pb2_grpc.BatchJobServiceStub(harness.channel).ListBatchJobs(
        batch_job_pb2.ListBatchJobsRequest(), metadata=admin.metadata
    )
    assert [j.id for j in listed.batch_jobs] == [job.id]
