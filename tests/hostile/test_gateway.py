"""Hostile bodies through the REST sidecar: the real `batchgrpc-gateway`
binary in front of a real server process, with request bodies written by
hand over a socket (truncated, stalled, chunked, with parts in the wrong
place).

Each test checks the exact HTTP status, what the API's error envelope says
(upstream's code, the field, Extole's reason), and that nothing was stored: no file asset over gRPC
and no file, complete or partial, in the data directory.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchgrpc.batches.v6 import file_asset_pb2, file_asset_pb2_grpc
from batchgrpc.errors import Reason

from ..process.test_gateway import GATEWAY, Rest
from .served import Served, responsive, served

BOUNDARY = "hostile-boundary-51c2"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
#: Bigger than the sidecar's 1 MiB chunk: some of it reaches the server
#: before the body goes wrong.
FILE_BYTES = 2 * 1024 * 1024 + 12345


@dataclass
class Gateway:
    proc: asyncio.subprocess.Process
    host: str
    port: int
    rest: Rest

    def peak_rss(self) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
        assert match, text
        return int(match.group(1)) * 1024


@asynccontextmanager
async def gateway(s: Served, tmp_path: Path, *args: str) -> AsyncIterator[Gateway]:
    """The sidecar binary in front of the server process `s`."""
    assert os.access(GATEWAY, os.X_OK), "the gateway is not built: `make gateway` builds it"
    log = tmp_path / "gateway.err"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            GATEWAY, "--listen", "127.0.0.1:0", "--backend", s.address, *args, stderr=stderr
        )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            while not (match := re.search(r"listening on (\S+):(\d+),", log.read_text())):
                assert proc.returncode is None, log.read_text()
                await asyncio.sleep(0.02)
        host, port = match.group(1), int(match.group(2))
        yield Gateway(proc, host, port, Rest(f"http://{host}:{port}", s.token))
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as s:
        yield s


@pytest.fixture
async def gw(server: Served, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway(server, tmp_path, "--upload-idle-timeout", "1s", "--read-header-timeout", "1s") as g:
        yield g


@dataclass
class Answer:
    status: int
    body: Any
    #: The sidecar closed the connection after answering.
    closed: bool
    seconds: float


def _exchange(host: str, port: int, pieces: Iterable[bytes], watch_close: bool) -> Answer:
    """Sends `pieces` as they come (from a thread of their own: the sidecar
    may answer and stop reading before the body is all sent) and reads the
    HTTP answer; with `watch_close`, waits for the sidecar to close the
    connection (2 s at most)."""
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=30) as sock:

        def send() -> None:
            try:
                for piece in pieces:
                    sock.sendall(piece)
            except OSError:
                pass  # the sidecar gave up on the body, as it should

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        response = http.client.HTTPResponse(sock)
        response.begin()
        raw = response.read()
        seconds = time.perf_counter() - started
        closed = response.will_close
        if watch_close and not closed:
            sock.settimeout(2)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                closed = False
            except OSError:
                closed = True
        return Answer(response.status, json.loads(raw) if raw else None, closed, seconds)


async def exchange(gw: Gateway, pieces: Iterable[bytes], *, watch_close: bool = False) -> Answer:
    return await asyncio.to_thread(_exchange, gw.host, gw.port, pieces, watch_close)


def head(gw: Gateway, token: str, path: str, content_type: str, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {path} HTTP/1.1\r\nHost: {gw.host}:{gw.port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\n\r\n"
    ).encode()


def field(name: str, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + data + b"\r\n"


def file_head(filename: str = "people.csv", name: str = "file") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()


def csv_rows(size: int) -> Iterator[bytes]:
    """A CSV file of about `size` bytes, 64 KiB at a time."""
    yield b"person_id,email\n"
    row = b"1,ann@example.com\n"
    block = row * (65536 // len(row))
    sent = 0
    while sent < size:
        yield block
        sent += len(block)


def closing() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def with_length(gw: Gateway, token: str, pieces: Iterable[bytes], path: str = "/v6/files") -> Iterator[bytes]:
    """A request whose Content-Length is exactly the bytes of `pieces`."""
    body = list(pieces)
    yield head(gw, token, path, CONTENT_TYPE, sum(map(len, body)))
    yield from body


def chunked(gw: Gateway, token: str, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """A chunked request, properly terminated, carrying `pieces`."""
    yield head(gw, token, "/v6/files", CONTENT_TYPE, None)
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


@dataclass
class Refusal:
    """What an error body in its API's own envelope says: upstream's code,
    the fields at fault and, for Extole, the reason; None where the
    envelope has no member for it (Bloomreach's carries only text)."""

    message: str
    code: str | None = None
    fields: list[str] | None = None
    reason: str | None = None


def refusal(answer: Answer) -> Refusal:
    body = answer.body
    if "unique_id" in body:  # Extole
        assert body["http_status_code"] == answer.status, body
        parameters = body["parameters"]
        assert parameters.get("reason", "INVALID_ARGUMENT") in Reason.__members__, body
        fields = [parameters["field"]] if "field" in parameters else []
        return Refusal(body["message"], body["code"], fields, parameters.get("reason"))
    if "success" in body:  # Bloomreach
        assert body["success"] is False, body
        return Refusal(body.get("message") or " ".join(body["errors"]))
    errors = body["errors"]  # Klaviyo
    assert errors, body
    assert all(e["status"] == answer.status and e["id"] and e["title"] for e in errors), body
    (code,) = {e["code"] for e in errors}
    fields = [e["source"].get("pointer") or e["source"]["parameter"] for e in errors]
    return Refusal(" ".join(e["detail"] for e in errors), code, ["body" if f == "/data" else f for f in fields])


def assert_refused(answer: Answer, status: int, reason: str, field_name: str, code: str = "invalid_parameter") -> str:
    """The answer is `status` with `reason`, upstream's `code` and the field
    `field_name`, as far as the API's envelope says them (Bloomreach's
    message names the field); returns the message."""
    assert answer.status == status, answer.body
    got = refusal(answer)
    if got.code is None:
        assert field_name in got.message, answer.body
    else:
        assert got.code == code, answer.body
        assert got.fields == [field_name], answer.body
    if got.reason is not None:
        assert got.reason == reason, answer.body
    return got.message


async def assert_nothing_stored(s: Served) -> None:
    """No file asset, and no file (complete or `.part`) in the data dir,
    once the server has seen the cancelled stream."""
    files = s.data_dir / "files"
    deadline = time.monotonic() + 10
    # The server removes its .part when the cancel reaches it.
    while (left := os.listdir(files)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert left == [], left
    stub = file_asset_pb2_grpc.FileAssetServiceStub(s.channel)
    listed = await stub.ListFileAssets(file_asset_pb2.ListFileAssetsRequest(), metadata=s.metadata)
    assert list(listed.file_assets) == []


# 1. A body that ends before the closing boundary.

TRUNCATIONS = {
    # Content-Length says exactly the bytes sent; they stop inside the file.
    "inside-the-file": lambda: [field("tags", "q4"), file_head(), *csv_rows(FILE_BYTES)],
    # The delimiter after the file, but not the "--" that closes the body.
    "no-closing-dashes": lambda: [file_head(), *csv_rows(FILE_BYTES), f"\r\n--{BOUNDARY}".encode()],
    # The delimiter line and its CRLF, then nothing: a part announced, never sent.
    "delimiter-then-nothing": lambda: [file_head(), *csv_rows(FILE_BYTES), f"\r\n--{BOUNDARY}\r\n".encode()],
    # Inside a form field, before any file.
    "inside-a-field": lambda: [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nhal'.encode()],
}


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("cut", sorted(TRUNCATIONS))
async def test_a_truncated_multipart_upload_is_400_and_stores_nothing(
    server: Served, gw: Gateway, cut: str, framing: str
) -> None:
    pieces = TRUNCATIONS[cut]()
    request = (
        with_length(gw, server.token, pieces) if framing == "content-length" else chunked(gw, server.token, pieces)
    )
    answer, slowest = await responsive(server, exchange(gw, request))
    field_name = "name" if cut == "inside-a-field" else "file"
    message = assert_refused(answer, 400, "INVALID_ARGUMENT", field_name)
    assert "closing boundary" in message, message
    assert slowest < 0.1
    await assert_nothing_stored(server)


async def test_a_whole_multipart_upload_is_still_stored(server: Served, gw: Gateway) -> None:
    """The control: the same bytes with the closing boundary are a file."""
    answer = await exchange(gw, with_length(gw, server.token, [file_head(), *csv_rows(FILE_BYTES), closing()]))
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "AVAILABLE"
    assert int(answer.body["size"]) > FILE_BYTES


# 2. Parts after the file.


@pytest.mark.parametrize(
    ("after", "part"),
    [
        (file_head("second.csv") + b"9,nine@example.com\r\n", "file"),
        (field("tags", "late"), "tags"),
        (field("name", "late.csv"), "name"),
        (field("colour", "red"), "colour"),
    ],
    ids=["second-file", "tags", "name", "unknown"],
)
async def test_a_part_after_the_file_is_400_naming_it_and_stores_nothing(
    server: Served, gw: Gateway, after: bytes, part: str
) -> None:
    pieces = [file_head(), *csv_rows(FILE_BYTES), b"\r\n", after[:-2], closing()]
    answer = await exchange(gw, with_length(gw, server.token, pieces))
    message = assert_refused(answer, 400, "INVALID_ARGUMENT", part)
    assert f'"{part}"' in message, message
    await assert_nothing_stored(server)


# 3. JSON decode errors carry ErrorInfo and a BadRequest naming the field.

BULK = "/api/event-bulk-create-jobs"
TRACK = "/track/v2/projects/default/batch"


@pytest.mark.parametrize(
    ("method", "path", "body", "field_name", "code"),
    [
        ("POST", TRACK, b'{"commands": [', "body", "bad_request"),
        ("POST", TRACK, b'{"commands": "x"}', "commands", "bad_request"),
        ("POST", TRACK, b'{"commands": [{"name": "system/time"}, {"nmae": "customers"}]}', "commands[1].nmae",
         "bad_request"),
        ("POST", TRACK, b'{"commands": []} {"more": 1}', "body", "bad_request"),
        ("POST", "/track/v2/projects/default/customers", b'{"customer_ids": 3}', "customer_ids", "bad_request"),
        ("POST", BULK, json.dumps({"data": {"type": "event-bulk-create-job", "attributes": {
            "events-bulk-create": {"data": [{"type": "event", "atributes": {}}]}}}}).encode(),
         "/data/attributes/events-bulk-create/data/0/atributes", "invalid"),
        ("POST", BULK, b'{"data": {"type": 7}}', "/data/type", "invalid"),
        ("POST", BULK, b"[1, 2", "body", "invalid"),
        ("POST", "/v6/batches", b'{"data_source": {"type": "NOPE"}}', "data_source.type", "invalid_parameter"),
        ("POST", "/v6/batches", b'{"name": "a", "name": "b"}', "name", "invalid_parameter"),
        ("POST", "/v6/batches", b"{'name': 1}", "body", "invalid_parameter"),
        ("GET", "/v6/batches?page_size=abc", None, "page_size", "invalid_parameter"),
        ("GET", "/api/profiles?page%5Bsize%5D=abc", None, "page[size]", "invalid"),
        ("GET", "/api/profiles?page%5Bsize%5D=101", None, "page[size]", "invalid"),
        ("GET", "/api/events?page%5Bsize%5D=0", None, "page[size]", "invalid"),
        ("GET", "/api/events?page_size=10", None, "page_size", "invalid"),
        ("GET", "/api/events?filter=equals(metric_id,%22a%22)&filter=equals(metric_id,%22b%22)", None, "filter",
         "invalid"),
        ("GET", "/api/events?filter=equals(metric_id,%22a%22),equals(metric_id,%22b%22)", None, "filter",
         "invalid"),
        ("GET", "/api/events?filter=equals(metric_id,7)", None, "filter", "invalid"),
        ("GET", "/api/events/1?sort=datetime", None, "sort", "invalid"),
        ("GET", "/api/profiles?" + "&".join(f"p{i}=1" for i in range(17)), None, "query", "invalid"),
    ],
)  # fmt: skip
async def test_a_json_decode_error_is_400_with_error_info_and_the_field(
    gw: Gateway, method: str, path: str, body: bytes | None, field_name: str, code: str
) -> None:
    reply = await gw.rest.call(method, path, body, **{"revision": "2026-07-15"})
    answer = Answer(reply.status, reply.body, False, 0)
    assert_refused(answer, 400, "INVALID_ARGUMENT", field_name, code)


def assert_short_echo(body: Any, sent: str) -> None:
    """At most 256 characters of `sent` anywhere in the answer."""
    text = json.dumps(body)
    assert sent[:257] not in text, text[:2000]
    assert len(text) < 4096, text[:2000]


@pytest.mark.parametrize(
    "build",
    [
        lambda long: b'{"commands": [{"' + long.encode() + b'": 1}]}',
        lambda long: b'{"' + long.encode() + b'": 1}',
        lambda long: b'{"data_source": {"type": "' + long.encode() + b'"}}',
        lambda long: b'{"name": ' + long.encode() + b"}",
    ],
    ids=["nested-unknown-field", "unknown-field", "enum-value", "bad-token"],
)
async def test_a_long_client_value_is_not_echoed_by_a_decode_error(gw: Gateway, build: Any) -> None:
    long = "x" * 100_000
    for path in (TRACK, "/v6/batches"):
        reply = await gw.rest.call("POST", path, build(long))
        assert reply.status == 400, reply.body
        assert refusal(Answer(reply.status, reply.body, False, 0)).reason in (None, "INVALID_ARGUMENT")
        assert_short_echo(reply.body, long)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("filter=equals(email,%22{long}%22)", "filter"),
        ("filter=equals(email,%22{short}%22)", "filter"),
        ("page%5Bcursor%5D={long}", "page[cursor]"),
        ("fields%5Bprofile%5D={short}", "fields[profile]"),
        ("{long}=1", "{long}"),
    ],
    ids=["long-filter", "email-over-1000", "long-cursor", "unknown-field", "long-name"],
)
async def test_a_json_api_query_over_its_limits_is_400_naming_the_parameter(
    gw: Gateway, query: str, parameter: str
) -> None:
    long, short = "x" * 50_000, "y" * 1_500
    reply = await gw.rest.call("GET", "/api/profiles?" + query.format(long=long, short=short), revision="2026-07-15")
    assert reply.status == 400, reply.body
    (error,) = reply.body["errors"]
    assert error["source"]["parameter"] == parameter.format(long=long)[:256] + ("…" if "long" in parameter else "")
    assert_short_echo(reply.body, long)


async def test_a_long_query_value_and_part_name_are_not_echoed(server: Served, gw: Gateway) -> None:
    long = "7" * 50_000
    reply = await gw.rest.call("GET", f"/v6/batches?page_size={long}x")
    assert_refused(Answer(reply.status, reply.body, False, 0), 400, "INVALID_ARGUMENT", "page_size")
    assert_short_echo(reply.body, long)
    name = "n" * 5_000
    answer = await exchange(gw, with_length(gw, server.token, [field(name, "v"), file_head(), b"a\n", closing()]))
    assert answer.status == 400
    assert refusal(answer).reason == "INVALID_ARGUMENT"
    assert_short_echo(answer.body, name)
    await assert_nothing_stored(server)


# 4. Idle bodies and slow headers.


async def test_an_idle_upload_is_abandoned_after_the_timeout_and_stores_nothing(server: Served, gw: Gateway) -> None:
    stalled = threading.Event()

    def stalling() -> Iterator[bytes]:
        # A Content-Length for a whole body; half of it, then nothing.
        pieces = [file_head(), *csv_rows(FILE_BYTES)]
        yield head(gw, server.token, "/v6/files", CONTENT_TYPE, 2 * sum(map(len, pieces)))
        yield from pieces
        stalled.wait(30)

    try:
        answer = await exchange(gw, stalling(), watch_close=True)
    finally:
        stalled.set()
    assert 0.9 < answer.seconds < 5, answer.seconds
    message = assert_refused(answer, 408, "INVALID_ARGUMENT", "file")
    assert "no byte for 1s" in message, message
    assert answer.closed
    await assert_nothing_stored(server)


async def test_an_idle_json_body_is_abandoned_too(server: Served, gw: Gateway) -> None:
    stalled = threading.Event()

    def stalling() -> Iterator[bytes]:
        yield head(gw, server.token, TRACK, "application/json", 100)
        yield b'{"commands": ['
        stalled.wait(30)

    try:
        answer = await exchange(gw, stalling(), watch_close=True)
    finally:
        stalled.set()
    assert 0.9 < answer.seconds < 5, answer.seconds
    assert_refused(answer, 408, "INVALID_ARGUMENT", "body", "bad_request")
    assert answer.closed


async def test_slow_headers_are_cut_off(gw: Gateway) -> None:
    def slowloris() -> float:
        started = time.perf_counter()
        with socket.create_connection((gw.host, gw.port), timeout=10) as sock:
            sock.sendall(b"POST /v6/files HTTP/1.1\r\nHost: x\r\n")
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        return time.perf_counter() - started

    assert await asyncio.to_thread(slowloris) < 3


# 5. Form field limits.


@pytest.mark.parametrize(
    ("fields", "status", "reason", "field_name"),
    [
        ([("name", "n" * 256 + ".csv")], 400, "INVALID_ARGUMENT", "name"),
        ([("name", "é" * 251 + ".csv")], 200, None, None),  # characters, not bytes
        ([("tags", "t" * 256)], 400, "INVALID_ARGUMENT", "tags[0]"),
        ([("tags", f"t{i}") for i in range(101)], 400, "TOO_MANY_ITEMS", "tags"),
        ([("tags", f"t{i}") for i in range(100)], 200, None, None),
        ([("tags", "a"), ("tags", "b\x00c")], 400, "INVALID_ARGUMENT", "tags[1]"),
        ([("name", "a\x00.csv")], 400, "INVALID_ARGUMENT", "name"),
        ([("name", b"\xff\xfe.csv")], 400, "INVALID_ARGUMENT", "name"),
        ([("name", "a.csv"), ("name", "b.csv")], 400, "INVALID_ARGUMENT", "name"),
        ([("format", "CSV"), ("format", "PSV")], 400, "INVALID_ARGUMENT", "format"),
        ([("request_id", "r" * 129)], 400, "INVALID_ARGUMENT", "request_id"),
        ([("tags", "t" * (64 * 1024 + 1))], 400, "PAYLOAD_TOO_LARGE", "tags"),
        ([("name", "n" * (10 * 1024 * 1024))], 400, "PAYLOAD_TOO_LARGE", "name"),
    ],
    ids=[
        "long-name", "name-of-255-characters", "long-tag", "101-tags", "100-tags", "nul-in-tag", "nul-in-name",
        "name-not-utf8", "two-names", "two-formats", "long-request-id", "tag-over-64KiB", "name-of-10MiB",
    ],
)  # fmt: skip
async def test_form_field_limits(
    server: Served,
    gw: Gateway,
    fields: list[tuple[str, str | bytes]],
    status: int,
    reason: str | None,
    field_name: str | None,
) -> None:
    pieces = [*(field(n, v) for n, v in fields), file_head("x.csv"), b"a,b\n1,2\n", closing()]
    answer = await exchange(gw, with_length(gw, server.token, pieces))
    if reason is None:
        assert answer.status == status, answer.body
        return
    assert field_name is not None
    assert_refused(answer, status, reason, field_name)
    assert_short_echo(answer.body, "n" * 300)
    await assert_nothing_stored(server)


async def test_a_huge_part_header_is_refused_without_buffering_it(server: Served, gw: Gateway) -> None:
    header = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\nX-Pad: {"p" * (9 * 1024 * 1024)}\r\n\r\n'
    pieces = [header.encode(), b"a.csv\r\n", file_head(), b"a\n", closing()]
    before = gw.peak_rss()
    answer = await exchange(gw, with_length(gw, server.token, pieces))
    assert_refused(answer, 400, "PAYLOAD_TOO_LARGE", "body")
    # Multipart headers are read whole: the sidecar stops at 1 MiB (Go's
    # own limit is 10 MB).
    assert gw.peak_rss() - before < 8 * 1024 * 1024
    await assert_nothing_stored(server)


async def test_a_json_body_over_the_cap_is_400_with_flat_sidecar_memory(server: Served, tmp_path: Path) -> None:
    async with gateway(server, tmp_path, "--max-body-bytes", "1048576") as small:
        size = 50 * 1024 * 1024

        prefix, block, suffix = b'{"commands": [], "x": "', b"y" * 65536, b'"}'
        blocks = size // len(block)

        def body() -> Iterator[bytes]:
            yield head(small, server.token, TRACK, "application/json", len(prefix) + blocks * len(block) + len(suffix))
            yield prefix
            for _ in range(blocks):
                yield block
            yield suffix

        before = small.peak_rss()
        answer = await exchange(small, body())
        assert_refused(answer, 400, "PAYLOAD_TOO_LARGE", "body", "bad_request")
        assert small.peak_rss() - before < 8 * 1024 * 1024


# Class 3 through the sidecar: properties nested past the protobuf runtime's
# recursion limit answered HTTP 500; now the API's own nesting rule speaks.


def _with_nest(body: Any, depth: int) -> bytes:
    """`body` as JSON, its "NEST" string replaced by objects `depth` deep
    (written as text: Python's json module cannot nest that deep)."""
    return json.dumps(body).replace('"NEST"', '{"p": ' * depth + '"leaf"' + "}" * depth).encode()


@pytest.mark.parametrize("depth", [50, 5_000])
async def test_properties_nested_deep_are_the_apis_own_error_through_the_sidecar(
    server: Served, gw: Gateway, depth: int
) -> None:
    stored = server.stored()
    bulk = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [{
        "type": "event-bulk-create",
        "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": "deep@example.com"}}},
            "events": {"data": [{"type": "event", "attributes": {
                "properties": "NEST",
                "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}},
            }}]},
        },
    }]}}}}  # fmt: skip
    reply = await gw.rest.call("POST", BULK, _with_nest(bulk, depth), **{"revision": "2026-07-15"})
    assert reply.status == 400, reply.body
    # Klaviyo's envelope: one error object, pointing into the properties.
    (error,) = reply.body["errors"]
    assert (error["code"], error["title"]) == ("invalid", "Invalid input."), error
    assert "nest" in error["detail"], error
    assert error["source"]["pointer"].startswith("/data/attributes/events-bulk-create/data/0/attributes/events/data/0/")

    track = {"commands": [
        {"name": "customers/events", "data": {"customer_ids": {"registered": "deep"}, "event_type": "view",
                                              "properties": "NEST"}},
        {"name": "customers/events", "data": {"customer_ids": {"registered": "ok"}, "event_type": "view"}},
    ]}  # fmt: skip
    reply = await gw.rest.call("POST", TRACK, _with_nest(track, depth))
    assert reply.status == 200, reply.body
    deep, fine = reply.body["results"]
    assert deep["success"] is False
    assert "nests too deep" in " ".join(deep["errors"])
    assert fine["success"] is True
    after = server.stored()
    # The one good command is tracked; nothing of the deep ones.
    assert after["events"] == stored["events"] + 1
    assert after["bulk_jobs"] == stored["bulk_jobs"]
