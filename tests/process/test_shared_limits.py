"""Rate limits hold per account across replicas: two `batchgrpc serve`
processes on one data directory spend one budget per account."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc import aio

from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc
from batchgrpc.store.sqlite import DATABASE_NAME
from batchgrpc.store.sqlite_limits import SUFFIX

from ..conftest import rich_error
from ..hostile.served import BATCHGRPC, Served, served

#: An hour per token: nothing refills while the test runs, however slow.
LIMIT = 5
WINDOW_SECONDS = 3600
#: The harness turns rate limits off unless told otherwise.
LIMITS_ON = {"BATCHGRPC_NO_RATE_LIMITS": ""}


async def list_jobs(server: Served, token: str) -> dict[str, str]:
    """One batches call; its trailing metadata."""
    call = batch_job_pb2_grpc.BatchJobServiceStub(server.channel).ListBatchJobs(
        batch_job_pb2.ListBatchJobsRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=10
    )
    await call
    return {k: v for k, v in await call.trailing_metadata() or () if isinstance(v, str)}


async def create_key(data_dir: Path, account: str, scope: str) -> str:
    """`batchgrpc keys create`, as an operator would run it; the new token."""
    proc = await asyncio.create_subprocess_exec(
        BATCHGRPC, "keys", "create", "--account", account, "--scope", scope, "--json", "--data-dir", str(data_dir),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr
    token: str = json.loads(stdout)["token"]
    return token


async def test_two_replicas_on_one_data_directory_share_each_accounts_budget(tmp_path: Path) -> None:
    config = tmp_path / "limits.toml"
    config.write_text(f'[rate_limits]\nbatches = "{LIMIT}/h"\n')
    args = ["--config", str(config)]
    async with (
        served(tmp_path, env=LIMITS_ON, args=args, name="a") as a,
        served(tmp_path, env=LIMITS_ON, args=args, name="b", again=a) as b,
    ):
        assert a.port != b.port
        replicas = (a, b)

        # Alternating between the replicas, the budget counts down as one.
        for n in range(LIMIT):
            trailing = await list_jobs(replicas[n % 2], a.token)
            assert trailing["ratelimit-limit"] == str(LIMIT)
            assert trailing["ratelimit-remaining"] == str(LIMIT - 1 - n)

        # Spent on both.
        for replica in (b, a):
            with pytest.raises(aio.AioRpcError) as caught:
                await list_jobs(replica, a.token)
            error = rich_error(caught.value)
            assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.info.reason == "RATE_LIMITED"
            assert error.trailing["ratelimit-remaining"] == "0"
            retry_after = int(error.trailing["retry-after"])
            assert WINDOW_SECONDS / LIMIT - 60 < retry_after <= WINDOW_SECONDS / LIMIT
            assert error.retry is not None
            assert abs(error.retry.retry_delay.ToSeconds() - retry_after) <= 1

        # Another account has a budget of its own, shared the same way.
        other = await create_key(a.data_dir, "other", "batches:read")
        assert (await list_jobs(b, other))["ratelimit-remaining"] == str(LIMIT - 1)
        assert (await list_jobs(a, other))["ratelimit-remaining"] == str(LIMIT - 2)
        with pytest.raises(aio.AioRpcError) as caught:
            await list_jobs(a, a.token)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_with_rate_limits_off_no_request_touches_the_limiter_file(tmp_path: Path) -> None:
    async with served(tmp_path) as server:
        trailing = await list_jobs(server, server.token)
        assert "ratelimit-limit" not in trailing
        assert not (server.data_dir / (DATABASE_NAME + SUFFIX)).exists()
