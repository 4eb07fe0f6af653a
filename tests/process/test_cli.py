"""`batchgrpc serve` and `batchgrpc keys` as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

BATCHGRPC = str(Path(sys.executable).parent / "batchgrpc")
TOKEN = re.compile(r"token:\s+(bgk_\S+)")


@dataclass
class Process:
    proc: asyncio.subprocess.Process
    port: int
    stdout: str
    log: list[dict[str, object]]


@asynccontextmanager
async def serve(data_dir: Path, *extra: str) -> AsyncIterator[Process]:
    env = {**os.environ, "BATCHGRPC_GRACE_PERIOD_SECONDS": "1"}
    proc = await asyncio.create_subprocess_exec(
        BATCHGRPC,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        *extra,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    assert proc.stdout is not None
    log: list[dict[str, object]] = []
    try:
        while True:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, "the server exited before listening"
            entry = json.loads(line)
            log.append(entry)
            if entry["msg"] == "listening":
                break
        # Everything printed before "listening" is on stdout by now.
        stdout = b""
        while True:
            try:
                chunk = await asyncio.wait_for(proc.stdout.read(4096), 0.2)
            except TimeoutError:
                break
            if not chunk:
                break
            stdout += chunk
        yield Process(proc, int(entry["port"]), stdout.decode(), log)  # type: ignore[arg-type]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def system_time(port: int, token: str) -> tracking_pb2.GetSystemTimeResponse:
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return await tracking_pb2_grpc.TrackingServiceStub(channel).GetSystemTime(
            tracking_pb2.GetSystemTimeRequest(project_token="default"),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=5,
        )


def keys(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BATCHGRPC, "keys", *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=30
    )


async def test_first_start_prints_an_admin_key_once_and_sigterm_drains(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with serve(data) as p:
        match = TOKEN.search(p.stdout)
        assert match, p.stdout
        token = match.group(1)
        assert "shown only this once" in p.stdout
        assert (await system_time(p.port, token)).success

        async with aio.insecure_channel(f"127.0.0.1:{p.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            p.proc.send_signal(signal.SIGTERM)
            assert (await asyncio.wait_for(watch.read(), 10)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await asyncio.wait_for(p.proc.wait(), 15) == 0

    # A restart keeps the key and prints no new one.
    async with serve(data) as p:
        assert "token:" not in p.stdout
        assert (await system_time(p.port, token)).success
        p.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(p.proc.wait(), 15) == 0


async def test_keys_create_list_revoke(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = keys(data, "create", "--account", "default", "--scope", "events:set", "--scope", "CLIENT_ADMIN", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert set(key) >= {"key_id", "secret", "token", "account", "scopes"}
    assert key["token"] == f"{key['key_id']}.{key['secret']}"
    assert key["scopes"] == ["CLIENT_ADMIN", "events:set"]

    listed = keys(data, "list", "--json")
    assert listed.returncode == 0
    (entry,) = json.loads(listed.stdout)
    assert entry["key_id"] == key["key_id"]
    assert entry["revoked_time"] is None
    assert key["secret"] not in listed.stdout

    async with serve(data) as p:
        # Keys existed, so no admin key is made.
        assert "token:" not in p.stdout
        assert (await system_time(p.port, key["token"])).success
        revoked = keys(data, "revoke", key["key_id"], "--json")
        assert revoked.returncode == 0
        assert json.loads(revoked.stdout)["revoked_time"]
        with pytest.raises(aio.AioRpcError) as caught:
            await system_time(p.port, key["token"])
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_keys_create_refuses_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    unknown = keys(data, "create", "--account", "default", "--scope", "everything")
    assert unknown.returncode == 2
    assert "unknown scope" in unknown.stderr
    public = keys(data, "create", "--account", "default", "--scope", "batches:write", "--public")
    assert public.returncode == 2
    assert "public key may hold only" in public.stderr
    account = keys(data, "create", "--account", "no spaces", "--scope", "events:set")
    assert account.returncode == 2
    assert "account" in account.stderr
    assert json.loads(keys(data, "list", "--json").stdout) == []
    missing = keys(data, "revoke", "bgk_missing")
    assert missing.returncode == 1
    assert "no key" in missing.stderr


def test_serve_refuses_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('listen = "127.0.0.1:0"\nunknown_thing = 1\n')
    result = subprocess.run(
        [BATCHGRPC, "serve", "--config", str(config), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "unknown setting(s): unknown_thing" in result.stderr
