"""The REST sidecar (gateway/) as a real process in front of a real server:
the upstream bodies posted unchanged, upstream-shaped answers, errors as
HTTP codes with the rich details, headers both ways.

`make test` builds the sidecar and points BATCHGRPC_GATEWAY at it. The
server runs in this process; HTTP calls run in a thread so that the
server's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REVISION, Harness
from ..seeds import TRACK_SEED_COMMANDS
from ..wire.test_bulk import SEED_BODY
from ..wire.test_limits import serving
from . import GO_BIN

#: Where `make test` builds it; BATCHGRPC_GATEWAY overrides.
GATEWAY = os.environ.get("BATCHGRPC_GATEWAY") or str(GO_BIN / "batchgrpc-gateway")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


class Rest:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token

    def _call(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Reply:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw, status, got = response.read(), response.status, response.headers
        except urllib.error.HTTPError as error:
            raw, status, got = error.read(), error.code, error.headers
        return Reply(status, {k.lower(): v for k, v in got.items()}, json.loads(raw) if raw else None)

    async def call(self, method: str, path: str, body: Any = None, *, scheme: str = "Bearer", **headers: str) -> Reply:
        sent = {"content-type": "application/json", **headers}
        if scheme:
            sent["authorization"] = f"{scheme} {self.token}"
        return await asyncio.to_thread(self._call, method, path, body, sent)


@asynccontextmanager
async def sidecar(harness: Harness) -> AsyncIterator[Rest]:
    """The gateway binary in front of `harness`'s server."""
    assert os.access(GATEWAY, os.X_OK), "the gateway is not built: `make test` builds it"
    proc = await asyncio.create_subprocess_exec(
        GATEWAY, "--listen", "127.0.0.1:0", "--backend", f"127.0.0.1:{harness.running.port}",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
    match = re.search(r"listening on (\S+),", line)
    assert match, line
    try:
        yield Rest(f"http://{match.group(1)}", harness.admin.token)
    finally:
        proc.terminate()
        await proc.wait()


@pytest.fixture
async def rest(harness: Harness) -> AsyncIterator[Rest]:
    async with sidecar(harness) as client:
        yield client


async def test_tracking_seed_body_unchanged_gives_upstream_results(rest: Rest) -> None:
    reply = await rest.call("POST", "/track/v2/projects/default/batch", {"commands": TRACK_SEED_COMMANDS})
    assert reply.status == 200
    body = reply.body
    assert body["success"] is True
    assert body["start_time"] <= body["end_time"]
    clock, customer, purchase = body["results"]
    assert clock["success"] is True
    assert isinstance(clock["time"], float)
    assert customer == {"success": True, "errors": [], "command_id": "abc"}
    assert purchase == {"success": True, "errors": []}
    # Rate limits come back as the HTTP headers clients know.
    assert reply.headers["ratelimit-limit"] == "100"
    assert "ratelimit-remaining" in reply.headers

    errors = await rest.call(
        "POST",
        "/track/v2/projects/default/batch",
        {
            "commands": [
                {"name": "customers", "command_id": "my command 1", "data": {"properties": {"a": 1}}},
                {"name": "customers/events", "command_id": "my command 2", "data": {"customer_ids": {"r": "x"}}},
            ]
        },
    )
    assert errors.status == 200
    assert errors.body["results"] == [
        {"success": False, "errors": ["At least one id should be specified."], "command_id": "my command 1"},
        {"success": False, "errors": ["Field 'event_type' is required."], "command_id": "my command 2"},
    ]


async def test_single_tracking_routes_take_the_standalone_bodies(rest: Rest) -> None:
    base = "/track/v2/projects/default"
    clock = await rest.call("GET", f"{base}/system/time")
    assert clock.status == 200
    assert set(clock.body) == {"success", "errors", "time"}  # as upstream's standalone answer
    customer = await rest.call(
        "POST",
        f"{base}/customers",
        {"customer_ids": {"registered": "ann@example.com"}, "properties": {"first_name": "Ann"}},
    )
    assert (customer.status, customer.body) == (200, {"success": True, "errors": []})
    event = await rest.call(
        "POST",
        f"{base}/customers/events",
        {
            "customer_ids": {"registered": "ann@example.com"},
            "event_type": "purchase",
            "timestamp": 123456.78,
            "properties": {"total_price": 1234.50, "voucher_code": "KA54-548C-TEST"},
        },
    )
    assert (event.status, event.body) == (200, {"success": True, "errors": []})
    no_id = await rest.call("POST", f"{base}/customers", {"properties": {"first_name": "X"}})
    assert no_id.status == 400
    assert no_id.body["message"] == "At least one id should be specified."


async def test_bulk_seed_body_unchanged_is_accepted_with_202(rest: Rest, harness: Harness) -> None:
    klaviyo = {"scheme": "Klaviyo-API-Key", REVISION[0]: REVISION[1]}
    reply = await rest.call("POST", "/api/event-bulk-create-jobs", SEED_BODY, **klaviyo)
    assert reply.status == 202, reply.body
    job = reply.body  # the bare job, as upstream returns bare records
    assert (job["status"], job["event_count"]) == ("QUEUED", "3")
    await harness.running.processor.wait_idle()
    got = await rest.call("GET", f"/api/event-bulk-create-jobs/{job['id']}", **klaviyo)
    assert got.body["status"] == "COMPLETE"
    assert got.status == 200
    assert got.body["accepted_count"] == "3"
    profiles = await rest.call("GET", "/api/profiles?email=sarah.mason@klaviyo-demo.com", **klaviyo)
    (sarah,) = profiles.body["profiles"]
    assert sarah["attributes"]["first_name"] == "Sarah"
    # Upstream's spelling on the way out too, where no proto name can have it.
    assert sarah["attributes"]["_kx"] == "kx-1"
    assert "kx" not in sarah["attributes"]
    events = await rest.call("GET", f"/api/events?profile_id={sarah['id']}", **klaviyo)
    assert sorted(e["event_name"] for e in events.body["events"]) == ["Placed Order", "Placed Order"]


async def test_errors_are_http_codes_with_the_rich_details(rest: Rest) -> None:
    empty = await rest.call("POST", "/track/v2/projects/default/batch", {"commands": []})
    assert empty.status == 400
    assert empty.body["message"] == "No commands"
    info, bad = empty.body["details"]
    assert (info["@type"], info["reason"]) == ("type.googleapis.com/google.rpc.ErrorInfo", "NO_COMMANDS")
    assert bad["field_violations"][0]["field"] == "commands"

    # A misspelled field is refused by name, never dropped.
    typo = await rest.call("POST", "/track/v2/projects/default/batch", {"comands": []})
    assert typo.status == 400
    assert 'unknown field "comands"' in typo.body["message"]

    assert (await rest.call("GET", "/track/v2/projects/default/system/time", scheme="")).status == 401
    other = await rest.call("GET", "/track/v2/projects/someone-else/system/time")
    assert other.status == 403
    assert other.body["details"][0]["reason"] == "PROJECT_TOKEN_MISMATCH"
    missing = await rest.call("GET", "/v6/batches/job_nope")
    assert missing.status == 404
    # The revision header reaches the server as metadata: without it, the
    # Klaviyo routes refuse the call.
    no_revision = await rest.call("GET", "/api/profiles", scheme="Klaviyo-API-Key")
    assert no_revision.status == 400
    assert no_revision.body["details"][1]["field_violations"][0]["field"] == "revision"


async def test_a_rate_limited_call_is_429_with_retry_after(tmp_path: Path) -> None:
    async with serving(tmp_path, tracking="1/s") as harness, sidecar(harness) as rest:
        assert (await rest.call("GET", "/track/v2/projects/default/system/time")).status == 200
        refused = await rest.call("GET", "/track/v2/projects/default/system/time")
        assert refused.status == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["ratelimit-remaining"] == "0"
        assert refused.body["details"][0]["reason"] == "RATE_LIMITED"


def multipart(fields: list[tuple[str, str]], file: tuple[str, bytes] | None) -> tuple[bytes, str]:
    """A multipart/form-data body: the fields, then the file part if any."""
    boundary = "batchgrpc-test-boundary-7f3a"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields
    ]
    if file is not None:
        filename, content = file
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: text/csv\r\n\r\n" + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def test_a_multipart_upload_then_a_batch_job_to_done(rest: Rest) -> None:
    rows = 100_000  # about 3.4 MB: several 1 MiB chunks through the sidecar
    content = b"person_id,email,event_name\n" + b"".join(
        f"{i},user{i}@example.com,{'signup' if i % 7 else ''}\n".encode() for i in range(rows)
    )
    assert len(content) > 3 * 1024 * 1024
    body, content_type = multipart([("tags", "q4"), ("tags", "rest")], ("people.csv", content))
    reply = await rest.call("POST", "/v6/files", body, **{"content-type": content_type})
    assert reply.status == 200, reply.body
    asset = reply.body
    assert (asset["name"], asset["format"], asset["tags"]) == ("people.csv", "CSV", ["q4", "rest"])
    assert int(asset["size"]) == len(content)
    assert reply.headers["ratelimit-limit"] == "100"

    job = await rest.call(
        "POST",
        "/v6/batches",
        {
            "data_source": {"type": "FILE_ASSET", "file_asset_id": asset["id"]},
            "default_event_name": "visit",
            "columns": [{"type": "FULL_NAME_MATCH", "name": "email", "validation_policy": "REQUIRED_VALUE"}],
        },
    )
    assert job.status == 200, job.body
    terminal = ("DONE", "FAILED")
    async with asyncio.timeout(60):
        # Polling, as a REST client would: the job runs in the server.
        while (got := await rest.call("GET", f"/v6/batches/{job.body['id']}")).body["status"] not in terminal:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert got.body["status"] == "DONE"
    assert (got.body["rows_read"], got.body["success_rows"]) == (str(rows), str(rows))

    not_multipart = await rest.call("POST", "/v6/files", {"metadata": {"name": "x.csv"}})
    assert not_multipart.status == 400
    assert "multipart/form-data" in not_multipart.body["message"]


@pytest.mark.parametrize(
    ("fields", "with_file", "message"),
    [
        ([("name", "x.csv")], False, 'no part named "file"'),
        ([("colour", "red")], True, 'unknown multipart field "colour"'),
        ([("format", "XLSX")], True, 'format "XLSX"'),
    ],
)
async def test_a_bad_multipart_upload_is_400_and_stores_nothing(
    rest: Rest, fields: list[tuple[str, str]], with_file: bool, message: str
) -> None:
    body, content_type = multipart(fields, ("x.csv", b"a,b\n1,2\n") if with_file else None)
    reply = await rest.call("POST", "/v6/files", body, **{"content-type": content_type})
    assert reply.status == 400, reply.body
    assert message in reply.body["message"]
    assert (await rest.call("GET", "/v6/files")).body["file_assets"] == []
