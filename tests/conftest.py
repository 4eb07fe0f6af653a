"""Shared fixtures: a real grpc.aio server on an ephemeral port over a real
SQLite store in a temporary data directory."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc import aio
from grpc_status import rpc_status

from batchgrpc import config as configuration
from batchgrpc import server
from batchgrpc.auth import NewKey
from batchgrpc.errors import Reason

T = TypeVar("T")

#: A revision every events.v1 call needs.
REVISION = ("revision", "2026-07-15")


@dataclasses.dataclass
class Harness:
    """A running server and a client channel to it."""

    running: server.Running
    config: configuration.Config
    channel: aio.Channel

    @property
    def admin(self) -> NewKey:
        assert self.running.first_admin_key is not None
        return self.running.first_admin_key

    async def key(self, scopes: Iterable[str], *, account: str = "default", public: bool = False) -> NewKey:
        return await self.running.keyring.create(account, scopes, public=public)


def make_config(data_dir: Path, **changes: object) -> configuration.Config:
    return dataclasses.replace(
        configuration.Config(), listen="127.0.0.1:0", data_dir=data_dir, grace_period_seconds=0.5, **changes
    )


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    config = make_config(tmp_path / "data")
    running = await server.start(config)
    channel = aio.insecure_channel(f"127.0.0.1:{running.port}")
    harness = Harness(running, config, channel)
    try:
        yield harness
    finally:
        await channel.close()
        # A test may have restarted the server: stop the one running now.
        await server.stop(harness.running, 0)


def bearer(key: NewKey) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key.token}"),)


@dataclasses.dataclass
class RichError:
    code: grpc.StatusCode
    message: str
    info: error_details_pb2.ErrorInfo
    bad_request: error_details_pb2.BadRequest | None
    retry: error_details_pb2.RetryInfo | None
    trailing: dict[str, str]


def rich_error(error: aio.AioRpcError) -> RichError:
    """Decodes the google.rpc.Status details a failed call carries; fails the
    test if there are none (a bare transport error)."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    info = bad = retry = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    assert info is not None, "every error carries ErrorInfo"
    assert info.domain == "batchgrpc"
    assert info.reason in Reason.__members__, f"reason {info.reason} is not in the catalogue"
    assert info.metadata["code"], "upstream's code is always there"
    trailing = {k: v for k, v in (error.trailing_metadata() or ()) if isinstance(v, str)}
    return RichError(error.code(), error.details() or "", info, bad, retry, trailing)


async def eventually(check: Callable[[], Awaitable[T]], *, seconds: float = 30.0, every: float = 0.05) -> T:
    """Polls `check` until it returns something true (another process's or
    thread's progress, which no event of ours announces); fails after
    `seconds`."""
    async with asyncio.timeout(seconds):
        while not (result := await check()):  # noqa: ASYNC110 - the one poll, for progress nobody announces
            await asyncio.sleep(every)
    return result
