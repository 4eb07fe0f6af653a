"""Hostile requests the interceptor answers before any servicer runs:
malformed protobuf, enum numbers the contract does not define, every string,
list and map over its limit (API.md, "Limits on everything a client sends"),
two credentials, and errors that would echo a client's long values."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpc import aio

from batchgrpc import requests, server
from batchgrpc.batches.v6 import batch_job_pb2, batch_job_pb2_grpc, file_asset_pb2, file_asset_pb2_grpc
from batchgrpc.config import RateLimitConfig
from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.events.v1 import event_bulk_create_job_pb2_grpc as bulk_grpc
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import REVISION, Harness, bearer, make_config, rich_error
from ..wire.batches_client import Client
from . import raw
from .served import responsive, served
from .wire import Target, call, decoded_methods, metadata_for, methods, targets


@pytest.fixture
async def open_harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """The in-process server with rate limits off: these tests make many calls."""
    config = make_config(tmp_path / "data", rate_limits=RateLimitConfig(enabled=False))
    running = await server.start(config)
    async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        try:
            yield Harness(running, config, channel)
        finally:
            await server.stop(running, 0)


async def failure(coro: object) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as caught:
        await coro  # type: ignore[misc]
    return caught.value


# --- the table of limits is the contract's, for every field -----------------


def test_every_string_list_and_map_of_a_decoded_request_has_a_limit() -> None:
    """A new field cannot come without a limit: the table names every
    string, bytes, repeated and map field of every request Python decodes,
    and nothing else."""
    wanted: set[tuple[str, str]] = set()
    for method in decoded_methods():
        for target in targets(method):
            field = target.field
            if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES) or field.is_repeated:
                wanted.add((field.containing_type.full_name, field.name))
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                wanted |= {(entry.full_name, "key"), (entry.full_name, "value")}
    listed = {(message, field) for message, fields in requests.LIMITS.items() for field in fields}
    assert wanted - listed == set(), "fields without a limit"
    assert listed - wanted == set(), "limits of fields no decoded request has"


def _limited_targets() -> list[tuple[Target, str, int]]:
    """(target, "chars" or "items", limit) for every limit of the table, aimed
    at the first method whose request reaches the field."""
    found: dict[tuple[str, str], Target] = {}
    for method in decoded_methods():
        for target in targets(method):
            found.setdefault((target.field.containing_type.full_name, target.field.name), target)
    cases = []
    for message, fields in requests.LIMITS.items():
        for name, limit in fields.items():
            if name in ("key", "value") and message.endswith("Entry"):
                continue  # aimed at through the map field below
            target = found[(message, name)]
            for kind in ("chars", "items"):
                if getattr(limit, kind) is not None:
                    cases.append((target, kind, getattr(limit, kind)))
    # Map keys and values, through their map field.
    for method in decoded_methods():
        for target in targets(method):
            entry = target.field.message_type
            if entry is not None and entry.GetOptions().map_entry and entry.full_name in requests.LIMITS:
                for part in ("key", "value"):
                    limit = requests.LIMITS[entry.full_name][part]
                    assert limit.chars is not None
                    cases.append((target, part, limit.chars))
    return cases


def _fill(target: Target, kind: str, size: int) -> Message:
    """The target's request with the field `size` characters or items long."""
    request, holder = target.request()
    field = target.field
    value = getattr(holder, field.name)
    if kind in ("key", "value"):
        key, item = ("k" * size, "v") if kind == "key" else ("k", "v" * size)
        value[key] = item
    elif kind == "items" and field.message_type is not None and field.message_type.GetOptions().map_entry:
        for i in range(size):
            value[f"k{i}"] = "v"
    elif kind == "items" and field.type == FieldDescriptor.TYPE_MESSAGE:
        for _ in range(size):
            value.add()
    elif kind == "items":
        item = 1 if field.type == FieldDescriptor.TYPE_ENUM else "x"
        value.extend([item] * size)
    elif field.is_repeated:
        value.append("x" * size)
    else:
        setattr(holder, field.name, "x" * size)
    return request


def _names_field(error: aio.AioRpcError, target: Target, kind: str) -> bool:
    if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return False
    bad = rich_error(error).bad_request
    path = target.path + ("[0]" if kind == "chars" and target.field.is_repeated else "")
    # A limit's violation says "at most ..."; a page token of the right
    # length may still be refused as a token.
    return bad is not None and any(
        (v.field == path or (kind in ("key", "value") and v.field.startswith(target.path + "[")))
        and v.description.startswith("at most")
        for v in bad.field_violations
    )


@pytest.mark.parametrize(
    ("target", "kind", "limit"),
    _limited_targets(),
    ids=lambda v: v.method.name + ":" + v.path if isinstance(v, Target) else str(v),
)
async def test_each_limit_passes_at_the_limit_and_fails_one_over(
    open_harness: Harness, target: Target, kind: str, limit: int
) -> None:
    metadata = metadata_for(target.method, open_harness.admin.token)
    at_limit: aio.AioRpcError | None = None
    try:
        await call(open_harness.channel, target.method, _fill(target, kind, limit), metadata)
    except aio.AioRpcError as error:
        at_limit = error
    # It may fail further on (no such job, ...), never for this field.
    assert at_limit is None or not _names_field(at_limit, target, kind), rich_error(at_limit)
    over = await failure(call(open_harness.channel, target.method, _fill(target, kind, limit + 1), metadata))
    assert _names_field(over, target, kind), (over.code(), over.details())
    assert rich_error(over).info.reason == "INVALID_ARGUMENT"


async def test_the_decoder_takes_at_most_its_byte_cap_but_any_upload_chunk(open_harness: Harness) -> None:
    files = file_asset_pb2_grpc.FileAssetServiceStub(open_harness.channel)
    jobs = batch_job_pb2_grpc.BatchJobServiceStub(open_harness.channel)
    metadata = bearer(open_harness.admin)
    over = batch_job_pb2.CreateBatchJobRequest(name="x" * (requests.MAX_DECODED_BYTES + 1))
    error = rich_error(await failure(jobs.CreateBatchJob(over, metadata=metadata)))
    assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_TOO_LARGE")

    # A chunk is one copy to decode, however big: 8 MiB in one message.
    async def big_chunk() -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
        yield file_asset_pb2.UploadFileAssetRequest(metadata=file_asset_pb2.FileAssetMetadata(name="big.csv"))
        yield file_asset_pb2.UploadFileAssetRequest(chunk=b"id\n" + b"1\n" * (4 << 20))

    asset = (await files.UploadFileAsset(big_chunk(), metadata=metadata)).file_asset
    assert asset.size == 3 + (8 << 20)

    # But a stream message that is not a lone chunk is held to the cap.
    async def big_metadata() -> AsyncIterator[file_asset_pb2.UploadFileAssetRequest]:
        yield file_asset_pb2.UploadFileAssetRequest(
            metadata=file_asset_pb2.FileAssetMetadata(name="m.csv", tags=["t"] * requests.MAX_DECODED_BYTES)
        )

    error = rich_error(await failure(files.UploadFileAsset(big_metadata(), metadata=metadata)))
    assert (error.code, error.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_TOO_LARGE")


async def test_nul_in_a_name_is_refused(open_harness: Harness) -> None:
    stub = batch_job_pb2_grpc.BatchJobServiceStub(open_harness.channel)
    request = batch_job_pb2.CreateBatchJobRequest(name="bad\0name", tags=["ok", "t\0"])
    error = rich_error(await failure(stub.CreateBatchJob(request, metadata=bearer(open_harness.admin))))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.bad_request is not None
    assert {v.field for v in error.bad_request.field_violations} == {"name", "tags[1]"}
    assert all("NUL" in v.description for v in error.bad_request.field_violations)


# --- enums ---------------------------------------------------------------------


def _enum_targets() -> list[Target]:
    return [t for m in decoded_methods() for t in targets(m) if t.field.type == FieldDescriptor.TYPE_ENUM]


def test_the_enum_fields_of_the_contract_are_all_aimed_at() -> None:
    # About eight places were seen crashing to INTERNAL: every one is here.
    paths = {(t.method.name, t.path) for t in _enum_targets()}
    assert {
        ("CreateBatchJob", "data_source.type"),
        ("CreateBatchJob", "scopes"),
        ("CreateBatchJob", "columns[0].type"),
        ("CreateBatchJob", "columns[0].validation_policy"),
        ("CreateBatchJob", "columns[0].value_type"),
        ("ListBatchJobs", "statuses"),
        ("UpdateBatchJob", "scopes"),
        ("UploadFileAsset", "metadata.format"),
        ("CreateReport", "format"),
        ("CreateAudienceList", "format"),
    } <= paths


@pytest.mark.parametrize("target", _enum_targets(), ids=lambda t: f"{t.method.name}:{t.path}")
async def test_an_undefined_enum_number_is_invalid_argument_naming_the_field(
    open_harness: Harness, target: Target
) -> None:
    request, holder = target.request()
    if target.field.is_repeated:
        getattr(holder, target.field.name).append(99)
        path = f"{target.path}[0]"
    else:
        setattr(holder, target.field.name, 99)
        path = target.path
    metadata = metadata_for(target.method, open_harness.admin.token)
    error = rich_error(await failure(call(open_harness.channel, target.method, request, metadata)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == "INVALID_ARGUMENT"
    assert error.bad_request is not None
    (violation,) = error.bad_request.field_violations
    assert violation.field == path
    assert "99 is not a value of" in violation.description


# --- malformed protobuf ----------------------------------------------------------

GARBAGE = [
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # an over-long varint tag
    b"\x0a\xff\xff\xff\x0f",  # a length past the end
    b"\x0a\x02\xc3\x28",  # a string field that is not UTF-8
    b"\x0b",  # a group that never ends
]


@pytest.mark.parametrize("method", list(methods()), ids=lambda m: m.name)
async def test_malformed_protobuf_is_invalid_argument_after_authentication(tmp_path: Path, method: object) -> None:
    async with served(tmp_path) as s:
        for data in GARBAGE:
            anonymous = await failure(call(s.channel, method, data, (REVISION,), chunk=b""))  # type: ignore[arg-type]
            assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
            error = await failure(call(s.channel, method, data, metadata_for(method, s.token), chunk=b""))  # type: ignore[arg-type]
            rich = rich_error(error)
            assert (rich.code, rich.info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"), rich
            # Python's decoder or the core's (for the requests it decodes
            # itself), each in its own words; never the decoder's internals.
            assert "not a valid" in rich.message or "not the expected message" in rich.message
        text = s.logs.with_suffix(".err").read_text()
        assert "Traceback" not in text
        assert "unhandled exception" not in text


async def test_a_flood_of_malformed_requests_keeps_the_server_responsive_and_small(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        stub = s.channel.unary_unary("/batchgrpc.batches.v6.BatchJobService/CreateBatchJob")
        junk = b"\x0a\xff\xff\xff\x0f" + random.randbytes(requests.MAX_DECODED_BYTES - 5)
        before = s.rss()

        async def flood() -> None:
            for _ in range(50):
                with pytest.raises(aio.AioRpcError) as caught:
                    await stub(junk, metadata=s.metadata)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        _, slowest = await responsive(s, flood())
        assert slowest < 0.1
        # 50 requests of 512 KiB went through; they are not kept.
        assert s.rss() - before < 64 << 20
        assert len(s.log_lines()) < 200


# --- credentials -------------------------------------------------------------------


async def test_two_authorization_values_are_unauthenticated_even_when_both_are_good(open_harness: Harness) -> None:
    other = await open_harness.key(["events:set"], account="other")
    stub = tracking_pb2_grpc.TrackingServiceStub(open_harness.channel)
    request = tracking_pb2.GetSystemTimeRequest(project_token="default")
    for metadata in (
        (*bearer(open_harness.admin), *bearer(other)),
        (*bearer(open_harness.admin), *bearer(open_harness.admin)),
        (*bearer(open_harness.admin), ("authorization", "Bearer bgk_nope.nope")),
    ):
        error = rich_error(await failure(stub.GetSystemTime(request, metadata=metadata)))
        assert error.code == grpc.StatusCode.UNAUTHENTICATED
        assert error.info.reason == "AMBIGUOUS_CREDENTIALS"
    await stub.GetSystemTime(request, metadata=bearer(open_harness.admin))


# --- no error echoes more than 256 characters of what the client sent ------------


def error_texts(error: aio.AioRpcError) -> list[str]:
    """Every text of an error that could carry what the client sent."""
    rich = rich_error(error)
    texts = [rich.message, *rich.info.metadata.values(), *rich.info.metadata.keys()]
    if rich.bad_request is not None:
        for v in rich.bad_request.field_violations:
            texts += [v.field, v.description]
    return texts


async def test_long_values_are_never_echoed_and_errors_fit_the_metadata_limit(open_harness: Harness) -> None:
    value = raw.random_text(100_000)
    jobs = batch_job_pb2_grpc.BatchJobServiceStub(open_harness.channel)
    files = file_asset_pb2_grpc.FileAssetServiceStub(open_harness.channel)
    metadata = bearer(open_harness.admin)
    errors = [
        await failure(jobs.GetBatchJob(batch_job_pb2.GetBatchJobRequest(batch_id=value), metadata=metadata)),
        await failure(jobs.CreateBatchJob(batch_job_pb2.CreateBatchJobRequest(request_id=value), metadata=metadata)),
        await failure(
            jobs.CreateBatchJob(
                batch_job_pb2.CreateBatchJobRequest(
                    name=value, tags=[value] * 100, event_columns=[value] * 500, event_data={value: value}
                ),
                metadata=metadata,
            )
        ),
        await failure(files.GetFileAsset(file_asset_pb2.GetFileAssetRequest(file_asset_id=value), metadata=metadata)),
        await failure(
            jobs.ListBatchJobs(batch_job_pb2.ListBatchJobsRequest(page_token=value[:100]), metadata=metadata)
        ),
    ]
    for error in errors:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert raw.longest_echo(error_texts(error), value) <= 256


async def test_a_thousand_violations_fit_the_trailers_and_say_how_many(open_harness: Harness) -> None:
    """A bulk request with a bad address in each of its 1,000 events: the
    answer is INVALID_ARGUMENT (never the transport's RESOURCE_EXHAUSTED for
    oversized trailers), listing what fits and counting the rest."""
    stub = bulk_grpc.EventBulkCreateJobServiceStub(open_harness.channel)
    request = bulk_pb2.CreateEventBulkCreateJobRequest()
    request.data.type = "event-bulk-create-job"
    items = request.data.attributes.events_bulk_create.data
    for i in range(1000):
        item = items.add(type="event-bulk-create")
        item.attributes.profile.data.type = "profile"
        item.attributes.profile.data.attributes.email = f"not-an-address-{i}-" + "x" * 200
        event = item.attributes.events.data.add(type="event")
        event.attributes.metric.data.type = "metric"
        event.attributes.metric.data.attributes.name = "Viewed"
    error = await failure(stub.CreateEventBulkCreateJob(request, metadata=(*bearer(open_harness.admin), REVISION)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    rich = rich_error(error)
    assert rich.bad_request is not None
    listed = len(rich.bad_request.field_violations)
    assert 0 < listed < 1000
    assert int(rich.info.metadata["field_violations"]) >= 1000
    assert int(rich.info.metadata["field_violations_listed"]) == listed
    details = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    assert len(details) <= 4096


async def test_a_job_request_at_every_limit_does_not_stall_the_server(tmp_path: Path) -> None:
    """Every list of a CreateBatchJob at its item limit, the strings long, the
    whole just under the decoder's byte cap: it is decoded, checked, compiled
    and created while other calls are answered at once."""
    async with served(tmp_path) as s:
        client = Client(s.channel, s.token)
        asset = await client.upload(b"id,email\n1,a@example.com\n")
        request = batch_job_pb2.CreateBatchJobRequest(
            data_source=batch_job_pb2.DataSource(type="FILE_ASSET", file_asset_id=asset.id),
            name="n" * requests.MAX_NAME,
            tags=[f"{i:0255d}" for i in range(requests.MAX_TAGS)],
            default_event_name="e" * requests.MAX_NAME,
            event_columns=[f"{i:0255d}" for i in range(requests.MAX_EVENT_COLUMNS)],
            event_data={f"{i:0255d}": "v" for i in range(requests.MAX_EVENT_COLUMNS)},
        )
        for i in range(requests.MAX_RULES):
            request.columns.add(
                type="PATTERN_NAME_MATCH",
                name_pattern="x" * requests.MAX_PATTERN,
                pattern="y" * (requests.MAX_PATTERN // 4),
                prefix="p" * requests.MAX_NAME,
                allowed_values=[f"{i}-{j}" for j in range(requests.MAX_ALLOWED_VALUES)],
            )
        assert 0.9 < request.ByteSize() / requests.MAX_DECODED_BYTES < 1
        before = s.rss()
        response, slowest = await responsive(s, client.jobs.CreateBatchJob(request, metadata=s.metadata))
        assert slowest < 0.1
        assert response.batch_job.id
        assert s.rss() - before < 128 << 20
