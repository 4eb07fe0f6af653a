"""Batch jobs end to end on a real server: data sources, the lifecycle,
row errors, events, watch, notifications, tenancy and roles."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format
from grpc import aio

from batchgrpc import server
from batchgrpc.batches.v6 import batch_job_pb2
from batchgrpc.events.v1 import event_pb2

from ..conftest import Harness, make_config, rich_error
from .batches_client import Client, status

CSV = (
    b"person_id,email,first_name,event_name\n"
    b"1,ann@example.com,Ann,signup\n"
    b"2,not-an-email,Bob,\n"
    b'3,cenek@example.cz,"Cen, ek",purchase\n'
    b"4,,Dana,\n"
)
RULES = [
    batch_job_pb2.Column(type="FULL_NAME_MATCH", name="email", validation_policy="REQUIRED_VALUE", value_type="EMAIL")
]


@pytest.fixture
def client(harness: Harness) -> Client:
    return Client(harness.channel, harness.admin.token)


def data(event: event_pb2.Event) -> dict[str, object]:
    return json_format.MessageToDict(event.data)


async def test_a_csv_job_runs_to_done_with_events_and_row_errors(client: Client) -> None:
    created_asset = await client.upload(CSV, "people.csv", tags=["q4"])
    assert created_asset.size == len(CSV)
    assert created_asset.sha256 == hashlib.sha256(CSV).hexdigest()
    assert created_asset.format == created_asset.Format.CSV
    job = await client.create(
        created_asset.id,
        name="import",
        default_event_name="visit",
        columns=RULES,
        event_data={"source": "crm"},
        tags=["t1", "t2"],
    )
    assert status(job) == "PENDING"
    assert job.data_source.file_asset_id == created_asset.id
    assert job.data_source.id  # the job's own reference id, as upstream
    done = await client.wait(job.id)
    assert status(done) == "DONE"
    assert (done.rows_read, done.success_rows, done.failed_rows) == (4, 2, 2)
    assert done.started_time.seconds
    assert done.completed_time.seconds

    events = await client.events_of(job.id)
    assert [(e.row_number, e.event_name, e.identity) for e in events] == [(1, "signup", "1"), (3, "purchase", "3")]
    assert data(events[1]) == {"person_id": "3", "email": "cenek@example.cz", "first_name": "Cen, ek", "source": "crm"}
    assert all(e.source == e.Source.BATCH_JOB and e.job_id == job.id for e in events)
    assert len({e.event_id for e in events}) == 2

    errors = await client.row_errors(job.id)
    assert [(e.row_number, e.column, e.reason) for e in errors] == [
        (2, "email", "INVALID_EMAIL"),
        (4, "email", "REQUIRED_VALUE_MISSING"),
    ]
    assert errors[0].byte_offset == CSV.index(b"2,not")


async def test_notifications_when_created_and_when_finished(client: Client) -> None:
    done = await client.run(CSV, default_event_name="visit", tags=["launch"])
    created = [e for e in await client.events_of(metric="batch_job_created") if data(e)["batch_job_id"] == done.id]
    finished = [e for e in await client.events_of(metric="batch_job_finished") if data(e)["batch_job_id"] == done.id]
    assert len(created) == len(finished) == 1
    assert data(created[0])["tags"] == ["launch"]
    assert data(created[0])["status"] == "PENDING"
    assert data(finished[0])["status"] == "DONE"
    assert data(finished[0])["success_rows"] == 4
    assert created[0].source == created[0].Source.NOTIFICATION


ROWS = [
    {"person_id": "1", "email": "ann@example.com", "note": 'said "hi", left', "event_name": "signup"},
    {"person_id": "2", "email": "bob@example.com", "note": "line1\nline2", "event_name": ""},
    {"person_id": "3", "email": "eve@example.com", "note": "", "event_name": "buy"},
]


def encode(fmt: str) -> bytes:
    if fmt in ("CSV", "PSV"):
        sep = "," if fmt == "CSV" else "|"

        def cell(v: str) -> str:
            return '"' + v.replace('"', '""') + '"' if any(c in v for c in (sep, '"', "\n")) else v

        lines = [sep.join(ROWS[0])] + [sep.join(cell(v) for v in r.values()) for r in ROWS]
        return ("\r\n".join(lines) + "\r\n").encode()
    if fmt == "JSON":
        return json.dumps(ROWS).encode()
    return "\n".join(json.dumps(r) for r in ROWS).encode()


async def test_the_four_formats_give_the_same_events(client: Client) -> None:
    seen = {}
    for fmt, name in (("CSV", "a.csv"), ("PSV", "a.psv"), ("JSON", "a.json"), ("JSONL", "a.jsonl")):
        done = await client.run(encode(fmt), name, default_event_name="visit")
        assert (status(done), done.success_rows, done.failed_rows) == ("DONE", 3, 0), fmt
        seen[fmt] = [(e.row_number, e.event_name, e.identity, data(e)) for e in await client.events_of(done.id)]
    assert seen["CSV"] == seen["PSV"] == seen["JSON"] == seen["JSONL"]
    assert seen["CSV"][1][1] == "visit"
    assert seen["CSV"][1][3]["note"] == "line1\nline2"


async def test_event_name_precedence_event_columns_prefixes_and_event_data(client: Client) -> None:
    forced = await client.run(CSV, event_name="forced")
    assert {e.event_name for e in await client.events_of(forced.id)} == {"forced"}
    # No job event name and no default: rows without event_name fail.
    strict = await client.run(CSV)
    assert (strict.success_rows, strict.failed_rows) == (2, 2)
    assert {e.reason for e in await client.row_errors(strict.id)} == {"MISSING_EVENT_NAME"}
    shaped = await client.run(
        CSV,
        default_event_name="visit",
        event_columns=["email", "first_name"],
        columns=[batch_job_pb2.Column(type="PATTERN_NAME_MATCH", name_pattern="^first_", prefix="p_")],
        event_data={"first_name": "not over a prefixed name", "campaign": "x"},
    )
    events = await client.events_of(shaped.id)
    assert events[0].identity == "ann@example.com"
    assert data(events[0]) == {
        "email": "ann@example.com",
        "p_first_name": "Ann",
        "first_name": "not over a prefixed name",
        "campaign": "x",
    }


async def test_hostile_files_count_exactly(client: Client) -> None:
    content = (
        b"\xef\xbb\xbfid,email,event_name\r\n"
        b"1,a@example.com,e\r\n"
        b"2,b@example.com\r\n"  # ragged
        b'3,"multi\nline",e\r\n'
        b"4,\xff\xfe@example.com,e\n"  # invalid UTF-8
        b"5,c@example.com,e\r"  # lone CR
        b"6,d@example.com,e"  # no final newline
    )
    done = await client.run(content)
    assert (status(done), done.rows_read, done.success_rows, done.failed_rows) == ("DONE", 6, 4, 2)
    errors = await client.row_errors(done.id)
    assert [e.row_number for e in errors] == [2, 4]
    events = await client.events_of(done.id)
    assert [e.row_number for e in events] == [1, 3, 5, 6]
    assert "id" in data(events[0])  # the BOM is not part of the first name


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"id,id,event_name\n1,2,e\n", "DUPLICATE_HEADER"),
        (b'id,email\n1,"open\n', "UNTERMINATED_QUOTE"),
    ],
)
async def test_a_bad_file_fails_the_job_with_its_reason(client: Client, content: bytes, code: str) -> None:
    done = await client.run(content, default_event_name="e")
    assert status(done) == "FAILED"
    assert done.error_code == code
    assert done.error_message


async def test_a_required_column_absent_fails_the_job(client: Client) -> None:
    rule = batch_job_pb2.Column(type="FULL_NAME_MATCH", name="phone", validation_policy="REQUIRED_COLUMN")
    done = await client.run(CSV, default_event_name="e", columns=[rule])
    assert (status(done), done.error_code) == ("FAILED", "REQUIRED_COLUMN_MISSING")
    assert "phone" in done.error_message
    assert await client.events_of(done.id) == []


async def test_bad_create_requests_are_refused_with_field_paths(client: Client) -> None:
    asset = await client.upload(CSV)
    cases = [
        ({}, grpc.StatusCode.INVALID_ARGUMENT, "data_source", "batch_job_data_source_empty"),
        (
            {"data_source": batch_job_pb2.DataSource(type="REPORT")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "data_source.report_id",
            "batch_job_data_source_report_id_missing",
        ),
        (
            {"data_source": batch_job_pb2.DataSource(type="FILE_ASSET", file_asset_id="file_nope")},
            grpc.StatusCode.NOT_FOUND,
            "data_source.file_asset_id",
            "batch_job_data_source_file_asset_not_found",
        ),
        ({"file_asset_id": asset.id, "name": "x" * 256}, grpc.StatusCode.INVALID_ARGUMENT, "name", "invalid_parameter"),
        (
            {"file_asset_id": asset.id, "columns": [batch_job_pb2.Column(type="PATTERN_NAME_MATCH", name_pattern="(")]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "columns[0].name_pattern",
            "invalid_parameter",
        ),
    ]
    for fields, code, field, upstream in cases:
        with pytest.raises(aio.AioRpcError) as caught:
            await client.create(**fields)
        error = rich_error(caught.value)
        assert error.code == code, fields
        assert error.bad_request is not None
        assert error.bad_request.field_violations[0].field == field
        assert error.info.metadata["code"] == upstream
    jobs = await client.jobs.ListBatchJobs(batch_job_pb2.ListBatchJobsRequest(), metadata=client.metadata)
    assert list(jobs.batch_jobs) == []  # nothing was created


async def test_reports_and_audience_lists_as_data_sources(client: Client) -> None:
    pending = (
        await client.reports.CreateReport(
            __import__("batchgrpc.batches.v6.report_pb2", fromlist=["x"]).CreateReportRequest(name="r", format="CSV"),
            metadata=client.metadata,
        )
    ).report
    with pytest.raises(aio.AioRpcError) as caught:
        await client.create(data_source=batch_job_pb2.DataSource(type="REPORT", report_id=pending.id))
    error = rich_error(caught.value)
    assert (error.code, error.info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DATA_SOURCE_NOT_READY")

    report = await client.report(CSV)
    assert report.Status.Name(report.status) == "DONE"
    assert report.size == len(CSV)
    job = await client.create(
        data_source=batch_job_pb2.DataSource(type="REPORT", report_id=report.id), default_event_name="v"
    )
    assert (await client.wait(job.id)).success_rows == 4

    members = await client.audience_list(CSV, event_columns=["email"], event_data={"list": "vip", "k": "list"})
    assert members.Status.Name(members.status) == "READY"
    job = await client.create(
        data_source=batch_job_pb2.DataSource(type="AUDIENCE_LIST", audience_list_id=members.id),
        default_event_name="v",
        event_data={"k": "job"},
    )
    assert job.event_columns == ["email"]
    done = await client.wait(job.id)
    events = await client.events_of(done.id)
    assert data(events[0]) == {"email": "ann@example.com", "list": "vip", "k": "job"}


async def test_the_status_machine_refuses_every_other_move(client: Client) -> None:
    done = await client.run(CSV, default_event_name="e")
    req = batch_job_pb2.CancelBatchJobRequest(batch_id=done.id)
    with pytest.raises(aio.AioRpcError) as caught:
        await client.jobs.CancelBatchJob(req, metadata=client.metadata)
    error = rich_error(caught.value)
    assert (error.code, error.info.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "BATCH_JOB_INVALID_STATE_TRANSITION",
    )
    assert error.info.metadata["code"] == "batch_job_invalid_state_transition"
    assert (error.info.metadata["current_status"], error.info.metadata["target_status"]) == ("DONE", "CANCELED")
    with pytest.raises(aio.AioRpcError) as caught:
        await client.jobs.UpdateBatchJob(
            batch_job_pb2.UpdateBatchJobRequest(batch_id=done.id, name="late"), metadata=client.metadata
        )
    assert rich_error(caught.value).info.reason == "BATCH_JOB_INVALID_STATE_TRANSITION"

    expired = (
        await client.jobs.ExpireBatchJob(
            batch_job_pb2.ExpireBatchJobRequest(batch_id=done.id), metadata=client.metadata
        )
    ).batch_job
    assert status(expired) == "EXPIRED"
    assert expired.success_rows == 4
    with pytest.raises(aio.AioRpcError) as caught:
        await client.jobs.ExpireBatchJob(
            batch_job_pb2.ExpireBatchJobRequest(batch_id=done.id), metadata=client.metadata
        )
    assert rich_error(caught.value).info.reason == "BATCH_JOB_INVALID_STATE_TRANSITION"
    deleted = (
        await client.jobs.DeleteBatchJob(
            batch_job_pb2.DeleteBatchJobRequest(batch_id=done.id), metadata=client.metadata
        )
    ).batch_job
    assert deleted.id == done.id
    assert status(deleted) == "EXPIRED"
    with pytest.raises(aio.AioRpcError) as caught:
        await client.get(done.id)
    error = rich_error(caught.value)
    assert (error.code, error.info.reason, error.info.metadata["code"]) == (
        grpc.StatusCode.NOT_FOUND,
        "BATCH_JOB_NOT_FOUND",
        "batch_job_not_found",
    )


def big_csv(rows: int) -> bytes:
    lines = ["id,email,amount,event_name"]
    lines += [f"{i},user{i}@example.com,{i}.5,e" for i in range(1, rows + 1)]
    return ("\n".join(lines) + "\n").encode()


async def test_cancel_during_a_large_job_stops_it_within_a_second(client: Client) -> None:
    asset = await client.upload(big_csv(400_000), chunk_size=1 << 20)
    job = await client.create(asset.id)
    job = await client.wait_for(job.id, lambda j: status(j) == "IN_PROGRESS" and j.rows_read > 0)
    # Not deletable while it runs; updatable.
    with pytest.raises(aio.AioRpcError) as caught:
        await client.jobs.DeleteBatchJob(batch_job_pb2.DeleteBatchJobRequest(batch_id=job.id), metadata=client.metadata)
    assert rich_error(caught.value).info.reason == "BATCH_JOB_DELETE_NOT_ALLOWED"
    updated = (
        await client.jobs.UpdateBatchJob(
            batch_job_pb2.UpdateBatchJobRequest(
                batch_id=job.id,
                name="renamed",
                tags=["x"],
                update_mask=field_mask_pb2.FieldMask(paths=["name", "tags"]),
            ),
            metadata=client.metadata,
        )
    ).batch_job
    assert (updated.name, list(updated.tags)) == ("renamed", ["x"])

    canceled = (
        await client.jobs.CancelBatchJob(batch_job_pb2.CancelBatchJobRequest(batch_id=job.id), metadata=client.metadata)
    ).batch_job
    assert status(canceled) == "CANCELED"
    await asyncio.sleep(1.0)
    after = await client.get(job.id)
    assert status(after) == "CANCELED"
    assert after.rows_read == canceled.rows_read < 400_000  # nothing stored after the cancel
    assert len(await client.events_of(job.id)) == after.success_rows


async def test_watch_sends_each_status_and_ends_at_the_terminal_one(client: Client) -> None:
    asset = await client.upload(big_csv(50_000), chunk_size=1 << 20)
    job = await client.create(asset.id)
    seen = []
    async for update in client.jobs.WatchBatchJob(
        batch_job_pb2.WatchBatchJobRequest(batch_id=job.id), metadata=client.metadata
    ):
        seen.append((status(update.batch_job), update.batch_job.rows_read))
    statuses = [s for s, _ in seen]
    assert statuses[-1] == "DONE"
    assert seen[-1][1] == 50_000
    order = ["PENDING", "QUEUED", "IN_PROGRESS", "DISPATCHING", "DONE"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    assert "IN_PROGRESS" in statuses or "DISPATCHING" in statuses
    assert [r for _, r in seen] == sorted(r for _, r in seen)


async def test_tenancy_and_role_scopes(harness: Harness, client: Client) -> None:
    job = await client.run(CSV, default_event_name="e")
    other_key = await harness.key(["batches:read", "batches:write", "events:read"], account="other")
    other = Client(harness.channel, other_key.token)
    for call in (other.get(job.id), other.row_errors(job.id)):
        with pytest.raises(aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await other.events_of(job.id) == []
    listed = await other.jobs.ListBatchJobs(batch_job_pb2.ListBatchJobsRequest(), metadata=other.metadata)
    assert list(listed.batch_jobs) == []
    with pytest.raises(aio.AioRpcError) as caught:
        await other.create(job.data_source.file_asset_id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    # A job restricted to superusers is invisible to a key without the role.
    secret = await client.run(CSV, default_event_name="e", scopes=["CLIENT_SUPERUSER"])
    plain = Client(harness.channel, (await harness.key(["batches:read", "batches:write"])).token)
    with pytest.raises(aio.AioRpcError) as caught:
        await plain.get(secret.id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    ids = [
        j.id
        for j in (
            await plain.jobs.ListBatchJobs(batch_job_pb2.ListBatchJobsRequest(), metadata=plain.metadata)
        ).batch_jobs
    ]
    assert job.id in ids
    assert secret.id not in ids
    # ...and may not give a job a role it does not hold.
    asset = await plain.upload(CSV)
    with pytest.raises(aio.AioRpcError) as caught:
        await plain.create(asset.id, scopes=["CLIENT_ADMIN"])
    error = rich_error(caught.value)
    assert (error.info.reason, error.info.metadata["code"]) == (
        "BATCH_JOB_UNAUTHORIZED_SCOPES",
        "batch_job_unauthorized_scopes",
    )
    assert error.bad_request is not None
    assert error.bad_request.field_violations[0].field == "scopes[0]"


async def test_create_is_idempotent_on_request_id(client: Client) -> None:
    asset = await client.upload(CSV)
    first = await client.create(asset.id, default_event_name="e", request_id="r-1")
    second = await client.create(asset.id, default_event_name="e", request_id="r-1")
    assert first.id == second.id
    listed = await client.jobs.ListBatchJobs(batch_job_pb2.ListBatchJobsRequest(), metadata=client.metadata)
    assert [j.id for j in listed.batch_jobs] == [first.id]


async def test_list_filters_and_pages_newest_first(client: Client) -> None:
    asset = await client.upload(CSV)
    ids = []
    for i in range(5):
        job = await client.create(asset.id, name=f"n{i % 2}", event_name=f"e{i}", tags=["all", f"t{i}"])
        ids.append(job.id)
        await client.wait(job.id)

    async def list_all(**fields: object) -> list[str]:
        found, token = [], ""
        while True:
            page = await client.jobs.ListBatchJobs(
                batch_job_pb2.ListBatchJobsRequest(page_size=2, page_token=token, **fields), metadata=client.metadata
            )
            found += [j.id for j in page.batch_jobs]
            if not (token := page.next_page_token):
                return found

    assert await list_all() == ids[::-1]
    assert await list_all(name="n0") == [ids[4], ids[2], ids[0]]
    assert await list_all(event_name="e3") == [ids[3]]
    assert await list_all(tags=["all", "t1"]) == [ids[1]]
    assert await list_all(statuses=["DONE"]) == ids[::-1]
    assert await list_all(statuses=["FAILED", "CANCELED"]) == []
    with pytest.raises(aio.AioRpcError) as caught:
        await client.jobs.ListBatchJobs(
            batch_job_pb2.ListBatchJobsRequest(page_token="garbage"), metadata=client.metadata
        )
    assert rich_error(caught.value).bad_request.field_violations[0].field == "page_token"  # type: ignore[union-attr]


async def test_a_queued_job_waits_for_a_slot_and_can_be_canceled_there(tmp_path: Path) -> None:
    running = await server.start(make_config(tmp_path / "data", max_running_jobs=1, job_chunk_rows=1000))
    try:
        assert running.first_admin_key is not None
        async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            client = Client(channel, running.first_admin_key.token)
            big = await client.upload(big_csv(200_000), chunk_size=1 << 20)
            first = await client.create(big.id)
            await client.wait_for(first.id, lambda j: status(j) == "IN_PROGRESS")
            second = await client.create(big.id)
            queued = await client.wait_for(second.id, lambda j: status(j) == "QUEUED")
            canceled = (
                await client.jobs.CancelBatchJob(
                    batch_job_pb2.CancelBatchJobRequest(batch_id=queued.id), metadata=client.metadata
                )
            ).batch_job
            assert status(canceled) == "CANCELED"
            assert status(await client.wait(first.id)) == "DONE"
            after = await client.get(second.id)
            assert (status(after), after.rows_read, after.started_time.seconds) == ("CANCELED", 0, 0)
            expired = (
                await client.jobs.ExpireBatchJob(
                    batch_job_pb2.ExpireBatchJobRequest(batch_id=second.id), metadata=client.metadata
                )
            ).batch_job
            assert status(expired) == "EXPIRED"
    finally:
        await server.stop(running, 0)


async def test_row_errors_and_events_come_in_pages(client: Client) -> None:
    lines = ["id,email,event_name"] + [f"{i},{'bad' if i % 3 == 0 else f'u{i}@example.com'},e" for i in range(1, 751)]
    done = await client.run(("\n".join(lines) + "\n").encode(), columns=RULES)
    assert (done.success_rows, done.failed_rows) == (500, 250)
    pages, token = [], ""
    while True:
        page = await client.jobs.ListBatchJobRowErrors(
            batch_job_pb2.ListBatchJobRowErrorsRequest(batch_id=done.id, page_size=100, page_token=token),
            metadata=client.metadata,
        )
        pages.append([e.row_number for e in page.row_errors])
        if not (token := page.next_page_token):
            break
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [n for p in pages for n in p] == list(range(3, 751, 3))
    events = await client.events_of(done.id)  # pages of 1,000 until the end
    assert [e.row_number for e in events] == [i for i in range(1, 751) if i % 3]
