"""The REST sidecar (gateway/) as a real process in front of a real server:
the upstream bodies posted unchanged, upstream-shaped answers, errors as
HTTP codes in each upstream API's own error body, headers both ways.

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
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
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
    # As upstream: "errors" only on a command that failed.
    assert set(clock) == {"success", "time"}
    assert customer == {"success": True, "command_id": "abc"}
    assert purchase == {"success": True}
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
    assert (no_id.status, no_id.body) == (400, {"success": False, "errors": ["At least one id should be specified."]})


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
    # The reads answer JSON:API documents, their queries JSON:API's.
    query = "filter=" + urllib.parse.quote('equals(email,"sarah.mason@klaviyo-demo.com")')
    profiles = await rest.call("GET", f"/api/profiles?{query}", **klaviyo)
    assert profiles.status == 200, profiles.body
    (sarah,) = profiles.body["data"]
    assert profiles.body["links"] == {"self": f"{rest.base}/api/profiles?{query}", "next": None, "prev": None}
    assert (sarah["type"], sarah["attributes"]["first_name"]) == ("profile", "Sarah")
    assert sarah["links"] == {"self": f"{rest.base}/api/profiles/{sarah['id']}"}
    # Upstream's profile attributes have no _kx: what they lack is in meta,
    # with upstream's spelling where no proto name can have it.
    assert "_kx" not in sarah["attributes"]
    assert sarah["meta"]["_kx"] == "kx-1"
    by_profile = "filter=" + urllib.parse.quote(f'equals(profile_id,"{sarah["id"]}")')
    events = await rest.call("GET", f"/api/events?{by_profile}", **klaviyo)
    assert [e["relationships"]["metric"]["data"] for e in events.body["data"]] == [
        {"type": "metric", "id": "Placed Order"}
    ] * 2
    (event, _) = events.body["data"]
    assert set(event["attributes"]) == {"timestamp", "datetime", "event_properties", "uuid"}
    assert (event["meta"]["source"], event["meta"]["job_id"]) == ("BULK_CREATE", job["id"])
    one = await rest.call("GET", f"/api/events/{event['id']}", **klaviyo)
    assert one.body == {"data": event, "links": {"self": f"{rest.base}/api/events/{event['id']}"}}


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def envelope(reply: Reply) -> Any:
    """The error body with each error id checked to be a UUID, then blanked:
    Extole's `unique_id`, the `id` of each Klaviyo error object."""
    body = json.loads(json.dumps(reply.body))
    ids = [body] if "unique_id" in body else [e for e in body.get("errors", ()) if isinstance(e, dict)]
    for holder in ids:
        key = "unique_id" if "unique_id" in holder else "id"
        assert UUID.fullmatch(holder[key]), body
        holder[key] = "ID"
    return body


def klaviyo_error(status: int, code: str, title: str, detail: str, **source: str) -> dict[str, Any]:
    return {
        "id": "ID", "status": status, "code": code, "title": title, "detail": detail,
        "source": source or {"pointer": "/data"}, "meta": {},
    }  # fmt: skip


def extole_error(status: int, code: str, message: str, **parameters: str) -> dict[str, Any]:
    return {"unique_id": "ID", "http_status_code": status, "code": code, "message": message, "parameters": parameters}


NO_KEY = "Missing credentials: send an authorization header (Bearer, Klaviyo-API-Key, Token or Basic)."
KLAVIYO = {"scheme": "Klaviyo-API-Key", REVISION[0]: REVISION[1]}
EMAIL = "/data/attributes/events-bulk-create/data/{}/attributes/profile/data/attributes/email"


def bulk_body(*emails: str) -> dict[str, Any]:
    """A bulk create of one event for each email."""
    event = {
        "type": "event",
        "attributes": {"properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": "M"}}}},
    }
    items = [
        {"type": "event-bulk-create", "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}}, "events": {"data": [event]},
        }}
        for email in emails
    ]  # fmt: skip
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": items}}}}


async def test_klaviyo_routes_answer_errors_as_json_api_error_objects(rest: Rest, harness: Harness) -> None:
    invalid = await rest.call("POST", "/api/event-bulk-create-jobs", bulk_body("x@", "ok@example.com", "y@"), **KLAVIYO)
    assert invalid.status == 400
    # One error object per violation, each pointing at its item.
    assert envelope(invalid) == {"errors": [
        klaviyo_error(400, "invalid", "Invalid input.", '"x@" is not a valid email address', pointer=EMAIL.format(0)),
        klaviyo_error(400, "invalid", "Invalid input.", '"y@" is not a valid email address', pointer=EMAIL.format(2)),
    ]}  # fmt: skip
    one = await rest.call("POST", "/api/event-bulk-create-jobs", bulk_body("x@"), **KLAVIYO)
    assert envelope(one) == {"errors": [klaviyo_error(
        400, "invalid", "Invalid input.",
        'The payload provided in the request is invalid: "x@" is not a valid email address',
        pointer=EMAIL.format(0),
    )]}  # fmt: skip

    no_revision = await rest.call("GET", "/api/profiles", scheme="Klaviyo-API-Key")
    assert no_revision.status == 400
    assert envelope(no_revision) == {"errors": [klaviyo_error(
        400, "invalid", "Invalid input.",
        "The revision header is required: send metadata `revision: YYYY-MM-DD` (optionally `.suffix`).",
        parameter="revision",
    )]}  # fmt: skip

    no_key = await rest.call("GET", "/api/profiles", scheme="", **{REVISION[0]: REVISION[1]})
    assert (no_key.status, no_key.headers["www-authenticate"]) == (401, "Klaviyo-API-Key")
    assert envelope(no_key) == {"errors": [
        klaviyo_error(401, "not_authenticated", "Authentication credentials were not provided.", NO_KEY)
    ]}  # fmt: skip

    reader = Rest(rest.base, (await harness.key(["events:read"])).token)
    denied = await reader.call("POST", "/api/event-bulk-create-jobs", bulk_body("ok@example.com"), **KLAVIYO)
    assert denied.status == 403
    assert envelope(denied) == {"errors": [klaviyo_error(
        403, "permission_denied", "You do not have permission to perform this action.",
        "The API key lacks the scope this call needs: events:write.",
    )]}  # fmt: skip

    missing = await rest.call("GET", "/api/event-bulk-create-jobs/nope", **KLAVIYO)
    assert missing.status == 404
    assert envelope(missing) == {"errors": [klaviyo_error(404, "not_found", "Not found.", "Bulk create job not found")]}

    # Bodies the sidecar refuses itself: the same envelope.
    bad_json = await rest.call("POST", "/api/event-bulk-create-jobs", b'{"data": {"type": ', **KLAVIYO)
    assert bad_json.status == 400
    assert envelope(bad_json) == {"errors": [
        klaviyo_error(400, "invalid", "Invalid input.", "Invalid JSON body at body: unexpected EOF")
    ]}  # fmt: skip
    typo = await rest.call("POST", "/api/event-bulk-create-jobs", {"data": {"typ": "x"}}, **KLAVIYO)
    assert envelope(typo) == {"errors": [klaviyo_error(
        400, "invalid", "Invalid input.", 'Invalid JSON body at /data/typ: unknown field "typ"', pointer="/data/typ"
    )]}  # fmt: skip
    wrong_method = await rest.call("DELETE", "/api/profiles", **KLAVIYO)
    assert wrong_method.status == 405
    assert envelope(wrong_method) == {"errors": [klaviyo_error(
        405, "method_not_allowed", "Method not allowed.",
        "The method is not allowed on this route: DELETE /api/profiles",
    )]}  # fmt: skip


async def test_extole_routes_answer_errors_as_rest_exception_responses(rest: Rest, harness: Harness) -> None:
    no_source = await rest.call("POST", "/v6/batches", {"name": "x"})
    assert no_source.status == 400
    assert envelope(no_source) == extole_error(
        400, "batch_job_data_source_empty", "Data source is required",
        field="data_source", description="type and the id of a report, audience list or file asset",
        reason="INVALID_ARGUMENT",
    )  # fmt: skip

    no_key = await rest.call("GET", "/v6/batches", scheme="")
    assert (no_key.status, no_key.headers["www-authenticate"]) == (401, "Bearer")
    assert envelope(no_key) == extole_error(401, "missing_access_token", NO_KEY)

    reader = Rest(rest.base, (await harness.key(["events:read"])).token)
    denied = await reader.call("GET", "/v6/batches")
    assert denied.status == 403
    assert envelope(denied) == extole_error(
        403, "scopes_denied", "The API key lacks the scope this call needs: batches:read.",
        method="/batchgrpc.batches.v6.BatchJobService/ListBatchJobs", required_scopes="batches:read",
    )  # fmt: skip

    missing = await rest.call("GET", "/v6/batches/job_nope")
    assert missing.status == 404
    assert envelope(missing) == extole_error(404, "batch_job_not_found", "Batch job not found", batch_job_id="job_nope")

    bad_json = await rest.call("POST", "/v6/batches", b"{'name': 1}")
    assert bad_json.status == 400
    body = envelope(bad_json)
    assert body["message"].startswith("Invalid JSON body at body: syntax error (line 1:2)")
    assert body == extole_error(
        400, "invalid_parameter", body["message"], field="body", description=body["message"], reason="INVALID_ARGUMENT"
    )
    no_route = await rest.call("GET", "/v6/nothing")
    assert (no_route.status, envelope(no_route)) == (
        404,
        extole_error(404, "not_found", "No such route: GET /v6/nothing"),
    )


async def test_tracking_routes_answer_errors_as_success_false(rest: Rest, harness: Harness) -> None:
    base = "/track/v2/projects/default"
    # A whole batch refused says why in "message"; a single command lists "errors".
    empty = await rest.call("POST", f"{base}/batch", {"commands": []})
    assert (empty.status, empty.body) == (400, {"success": False, "message": "No commands"})
    no_id = await rest.call("POST", f"{base}/customers/events", {"event_type": "x"})
    assert (no_id.status, no_id.body) == (400, {"success": False, "errors": ["At least one id should be specified."]})

    no_key = await rest.call("POST", f"{base}/batch", {"commands": []}, scheme="")
    assert (no_key.status, no_key.headers["www-authenticate"]) == (401, 'Basic realm="tracking"')
    assert no_key.body == {"success": False, "message": NO_KEY}
    other = await rest.call("GET", "/track/v2/projects/someone-else/system/time")
    assert (other.status, other.body) == (
        403, {"success": False, "errors": ["The project token does not match the API key's project."]}
    )  # fmt: skip
    reader = Rest(rest.base, (await harness.key(["events:set"])).token)
    denied = await reader.call("POST", f"{base}/customers", {"customer_ids": {"registered": "a"}})
    assert (denied.status, denied.body) == (
        403, {"success": False, "errors": ["The API key lacks the scope this call needs: customers:set."]}
    )  # fmt: skip

    bad_json = await rest.call("POST", f"{base}/batch", b'{"commands": [')
    assert (bad_json.status, bad_json.body) == (
        400,
        {"success": False, "message": "Invalid JSON body at body: unexpected EOF"},
    )
    typo = await rest.call("POST", f"{base}/customers", {"customer_idz": {}})
    assert (typo.status, typo.body) == (
        400, {"success": False, "errors": ['Invalid JSON body at customer_idz: unknown field "customer_idz"']}
    )  # fmt: skip


def rate_headers(reply: Reply) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k.startswith("ratelimit-") or k == "retry-after"}


async def test_a_rate_limited_call_is_429_in_each_apis_envelope_with_retry_after(tmp_path: Path) -> None:
    """One request per second (per minute for batches), so that every figure
    is exact: the first request takes the only token, the second waits for
    the whole window."""
    async with (
        serving(tmp_path, tracking="1/s", bulk_events="1/s", batches="1/min") as harness,
        sidecar(harness) as rest,
    ):
        first = await rest.call("GET", "/track/v2/projects/default/system/time")
        assert first.status == 200
        # Every answer of a limited route says where its account stands.
        assert rate_headers(first) == {"ratelimit-limit": "1", "ratelimit-remaining": "0", "ratelimit-reset": "1"}
        refused = await rest.call("POST", "/track/v2/projects/default/batch", {"commands": TRACK_SEED_COMMANDS})
        assert refused.status == 429
        assert rate_headers(refused) == {
            "retry-after": "1", "ratelimit-limit": "1", "ratelimit-remaining": "0", "ratelimit-reset": "1",
        }  # fmt: skip
        assert refused.body == {
            "success": False,
            "message": "Request was throttled. Expected available in 1 second(s).",
        }

        accepted = await rest.call("POST", "/api/event-bulk-create-jobs", bulk_body("ok@example.com"), **KLAVIYO)
        assert accepted.status == 202
        assert rate_headers(accepted) == {"ratelimit-limit": "1", "ratelimit-remaining": "0", "ratelimit-reset": "1"}
        throttled = await rest.call("POST", "/api/event-bulk-create-jobs", bulk_body("ok@example.com"), **KLAVIYO)
        assert throttled.status == 429
        # The Klaviyo SDK sleeps int(Retry-After) and retries.
        assert rate_headers(throttled) == {
            "retry-after": "1", "ratelimit-limit": "1", "ratelimit-remaining": "0", "ratelimit-reset": "1",
        }  # fmt: skip
        assert envelope(throttled) == {"errors": [klaviyo_error(
            429, "throttled", "Request was throttled.", "Request was throttled. Expected available in 1 second(s)."
        )]}  # fmt: skip

        listed = await rest.call("GET", "/v6/batches")
        assert listed.status == 200
        assert rate_headers(listed) == {"ratelimit-limit": "1", "ratelimit-remaining": "0", "ratelimit-reset": "60"}
        again = await rest.call("GET", "/v6/batches")
        assert again.status == 429
        assert rate_headers(again) == {
            "retry-after": "60", "ratelimit-limit": "1", "ratelimit-remaining": "0", "ratelimit-reset": "60",
        }  # fmt: skip
        assert envelope(again) == extole_error(
            429, "too_many_requests", "Request was throttled. Expected available in 60 second(s).", limit="1"
        )


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
    assert not_multipart.status == 415
    assert not_multipart.body["code"] == "unsupported_media_type"
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


OPENAPI = Path(__file__).resolve().parents[2] / "gateway" / "openapi" / "batchgrpc.swagger.json"
#: Each API's error body in the OpenAPI document (proto/batchgrpc/*/*/errors.proto).
ERROR_BODIES = {
    "/v6/": "v6RestExceptionResponse",
    "/api/": "eventsV1ErrorResponse",
    "/track/v2/": "trackV2ErrorResponse",
}


def closed(definitions: dict[str, Any]) -> dict[str, Any]:
    """`definitions` as JSON Schema, with no member past those they name
    (what the sidecar sends must be what the document says, not only
    include it) and Swagger's `x-nullable` as a null type."""
    out = json.loads(json.dumps(definitions))

    def visit(schema: Any) -> None:
        if isinstance(schema, dict):
            if schema.pop("x-nullable", False) and "type" in schema:
                schema["type"] = [schema["type"], "null"]
                if "enum" in schema:
                    schema["enum"] = [*schema["enum"], None]
            for value in schema.values():
                visit(value)
        elif isinstance(schema, list):
            for value in schema:
                visit(value)

    for schema in out.values():
        visit(schema)
        if schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False
    return out


def error_schema(document: dict[str, Any], path: str, verb: str) -> str:
    """The definition an operation's error answer (`default`) refers to."""
    ref: str = document["paths"][path][verb]["responses"]["default"]["schema"]["$ref"]
    return ref.removeprefix("#/definitions/")


def test_every_rest_operation_documents_its_apis_error_body() -> None:
    document = json.loads(OPENAPI.read_text())
    operations = [(p, v) for p, verbs in document["paths"].items() for v in verbs]
    assert len(operations) >= 27
    for path, verb in operations:
        [expected] = [body for prefix, body in ERROR_BODIES.items() if path.startswith(prefix)]
        assert error_schema(document, path, verb) == expected, (path, verb)
    assert "rpcStatus" not in document["definitions"]


async def test_the_error_bodies_the_sidecar_sends_are_those_the_openapi_document_describes(
    rest: Rest, harness: Harness
) -> None:
    document = json.loads(OPENAPI.read_text())
    definitions = closed(document["definitions"])
    reader = Rest(rest.base, (await harness.key(["events:read"])).token)
    answers = [
        ("/api/event-bulk-create-jobs", "post", await rest.call(
            "POST", "/api/event-bulk-create-jobs", bulk_body("x@", "y@"), **KLAVIYO)),
        ("/api/event-bulk-create-jobs", "post", await reader.call(
            "POST", "/api/event-bulk-create-jobs", bulk_body("ok@example.com"), **KLAVIYO)),
        ("/api/profiles", "get", await rest.call("GET", "/api/profiles", scheme="Klaviyo-API-Key")),
        ("/api/profiles/{id}", "get", await rest.call("GET", "/api/profiles/01NOPE", **KLAVIYO)),
        ("/v6/batches/{batch_id}", "get", await rest.call("GET", "/v6/batches/job_nope")),
        ("/v6/batches", "post", await rest.call("POST", "/v6/batches", {"data_source": {"type": "FILE_ASSET"}})),
        ("/v6/batches", "get", await rest.call("GET", "/v6/batches", scheme="")),
        ("/track/v2/projects/{project_token}/batch", "post", await rest.call(
            "POST", "/track/v2/projects/default/batch", {"commands": []})),
        ("/track/v2/projects/{project_token}/customers/events", "post", await rest.call(
            "POST", "/track/v2/projects/default/customers/events", {"customer_ids": {}, "event_type": "x"})),
    ]  # fmt: skip
    for path, verb, answer in answers:
        assert answer.status >= 400, (path, answer)
        schema = {"$ref": f"#/definitions/{error_schema(document, path, verb)}", "definitions": definitions}
        jsonschema.validate(answer.body, schema)


async def test_the_klaviyo_reads_answer_what_the_openapi_document_describes(rest: Rest, harness: Harness) -> None:
    # Every query parameter the document lists, in a call the sidecar
    # answers; each answer valid for the document's schema, closed.
    document = json.loads(OPENAPI.read_text())
    definitions = closed(document["definitions"])
    created = await rest.call(
        "POST", "/api/event-bulk-create-jobs", bulk_body("ann@example.com", "bob@example.com"), **KLAVIYO
    )
    assert created.status == 202
    await harness.running.processor.wait_idle()
    used: dict[str, set[str]] = {}

    async def read(path: str, route: str, query: dict[str, str]) -> Any:
        answer = await rest.call("GET", path + ("?" + urllib.parse.urlencode(query) if query else ""), **KLAVIYO)
        assert answer.status == 200, (path, query, answer.body)
        schema = document["paths"][route]["get"]["responses"]["200"]["schema"]
        jsonschema.validate(answer.body, {**schema, "definitions": definitions})
        used.setdefault(route, set()).update(query)
        return answer.body

    ann = (await read("/api/profiles", "/api/profiles", {"filter": 'equals(email,"ann@example.com")'}))["data"][0]
    first = await read(
        "/api/profiles", "/api/profiles", {"page[size]": "1", "sort": "created", "fields[profile]": "email"}
    )
    assert first["data"][0]["attributes"] == {"email": "ann@example.com"}
    cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(first["links"]["next"]).query)["page[cursor]"][0]
    second = await read("/api/profiles", "/api/profiles", {"page[size]": "1", "page[cursor]": cursor})
    assert [p["attributes"]["email"] for p in second["data"]] == ["bob@example.com"]
    await read(f"/api/profiles/{ann['id']}", "/api/profiles/{id}", {"fields[profile]": "email,created"})
    page = await read("/api/events", "/api/events", {"filter": f'equals(profile_id,"{ann["id"]}")', "page[size]": "1"})
    event = page["data"][0]
    listed = await read("/api/events", "/api/events", {"filter": 'equals(metric_id,"M")', "page[size]": "1"})
    cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(listed["links"]["next"]).query)["page[cursor]"][0]
    rest_of = await read("/api/events", "/api/events", {"page[cursor]": cursor, "fields[event]": "datetime"})
    assert [list(e["attributes"]) for e in rest_of["data"]] == [["datetime"]]
    await read(f"/api/events/{event['id']}", "/api/events/{id}", {"fields[event]": "uuid,timestamp"})
    for route, verbs in document["paths"].items():
        if route in used:
            listed = {p["name"] for p in verbs["get"]["parameters"] if p["in"] == "query"}
            assert listed == used[route], route
    # What the document does not list, the sidecar refuses, naming it.
    refused = await rest.call("GET", "/api/events?page_size=5", **KLAVIYO)
    assert refused.status == 400
    assert refused.body["errors"][0]["source"] == {"parameter": "page_size"}
