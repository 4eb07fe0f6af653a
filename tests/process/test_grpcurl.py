"""grpcurl itself against a real server: what engineers run to debug it.

`make test` installs grpcurl (pinned) and points BATCHGRPC_GRPCURL at it.
The server runs in this process on an ephemeral port; grpcurl is a child
process, awaited without blocking the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from ..conftest import REVISION, Harness
from ..seeds import TRACK_SEED_COMMANDS
from ..wire.test_bulk import SEED_BODY
from . import GO_BIN

#: Where `make test` puts it; BATCHGRPC_GRPCURL overrides.
GRPCURL = os.environ.get("BATCHGRPC_GRPCURL") or str(GO_BIN / "grpcurl")


class Grpcurl:
    def __init__(self, harness: Harness) -> None:
        assert os.access(GRPCURL, os.X_OK), "grpcurl is missing: `make test` installs it"
        self.address = f"127.0.0.1:{harness.running.port}"
        self.token = harness.admin.token

    async def run(self, *args: str, body: Any = None, auth: bool = True) -> tuple[int, str, str]:
        argv = [GRPCURL, "-plaintext"]
        if auth:
            argv += ["-H", f"authorization: Bearer {self.token}", "-H", f"{REVISION[0]}: {REVISION[1]}"]
        if body is not None:
            argv += ["-d", json.dumps(body)]
        proc = await asyncio.create_subprocess_exec(
            *argv, self.address, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def call(self, method: str, body: Any) -> dict[str, Any]:
        code, out, err = await self.run(method, body=body)
        assert code == 0, err
        result: dict[str, Any] = json.loads(out)
        return result


@pytest.fixture
def grpcurl(harness: Harness) -> Grpcurl:
    return Grpcurl(harness)


async def test_list_and_describe_through_reflection(grpcurl: Grpcurl) -> None:
    code, out, err = await grpcurl.run("list", auth=False)
    assert code == 0, err
    assert set(out.split()) >= {
        "batchgrpc.batches.v6.BatchJobService",
        "batchgrpc.batches.v6.FileAssetService",
        "batchgrpc.batches.v6.ReportService",
        "batchgrpc.batches.v6.AudienceListService",
        "batchgrpc.events.v1.EventBulkCreateJobService",
        "batchgrpc.events.v1.ProfileService",
        "batchgrpc.events.v1.EventService",
        "batchgrpc.track.v2.TrackingService",
        "grpc.health.v1.Health",
    }
    code, out, err = await grpcurl.run("describe", "batchgrpc.track.v2.TrackingService", auth=False)
    assert code == 0, err
    assert "rpc Batch ( .batchgrpc.track.v2.BatchRequest ) returns ( .batchgrpc.track.v2.BatchResponse )" in out
    code, out, err = await grpcurl.run("describe", "batchgrpc.track.v2.CommandResult", auth=False)
    assert code == 0, err
    assert "optional string command_id = 3;" in out


async def test_one_call_per_service_with_json(harness: Harness, grpcurl: Grpcurl) -> None:
    batch = await grpcurl.call(
        "batchgrpc.track.v2.TrackingService/Batch", {"project_token": "default", "commands": TRACK_SEED_COMMANDS}
    )
    assert batch["success"] is True
    assert [r.get("commandId") for r in batch["results"]] == [None, "abc", None]

    # The seed body as JSON, with the upstream's own field names.
    job = await grpcurl.call("batchgrpc.events.v1.EventBulkCreateJobService/CreateEventBulkCreateJob", SEED_BODY)
    job = job["eventBulkCreateJob"]
    assert (job["status"], job["eventCount"]) == ("QUEUED", "3")  # int64 is a JSON string
    await harness.running.processor.wait_idle()
    done = await grpcurl.call("batchgrpc.events.v1.EventBulkCreateJobService/GetEventBulkCreateJob", {"id": job["id"]})
    assert done["eventBulkCreateJob"]["status"] == "COMPLETE"

    profiles = await grpcurl.call("batchgrpc.events.v1.ProfileService/ListProfiles", {"email": "bob@example.com"})
    assert len(profiles["profiles"]) == 1
    events = await grpcurl.call("batchgrpc.events.v1.EventService/ListEvents", {"metric": "purchase"})
    assert [e["eventName"] for e in events["events"]] == ["purchase"]

    report = await grpcurl.call("batchgrpc.batches.v6.ReportService/CreateReport", {"name": "q4", "format": "CSV"})
    assert report["report"]["status"] == "PENDING"
    lists = await grpcurl.call(
        "batchgrpc.batches.v6.AudienceListService/CreateAudienceList",
        {"name": "vips", "format": "CSV", "event_columns": ["email"]},
    )
    assert lists["audienceList"]["status"] == "BUILDING"
    assert await grpcurl.call("batchgrpc.batches.v6.FileAssetService/ListFileAssets", {}) == {}
    jobs = await grpcurl.call("batchgrpc.batches.v6.BatchJobService/ListBatchJobs", {"page_size": 10})
    assert jobs == {}


async def test_grpcurl_prints_the_error_details_decoded(grpcurl: Grpcurl) -> None:
    code, out, err = await grpcurl.run(
        "batchgrpc.track.v2.TrackingService/Batch", body={"project_token": "default", "commands": []}
    )
    assert code != 0
    text = out + err
    assert "Code: InvalidArgument" in text
    assert "Message: No commands" in text
    assert '"@type": "type.googleapis.com/google.rpc.ErrorInfo"' in text
    assert '"reason": "NO_COMMANDS"' in text
    assert '"@type": "type.googleapis.com/google.rpc.BadRequest"' in text
    assert '"field": "commands"' in text
