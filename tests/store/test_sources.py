"""DataSourceStore: file assets, reports and audience lists."""

from __future__ import annotations

import pytest

from batchgrpc.store import SourceInUse, Store
from tests.store.build import T0, job, notification, pages, source


async def test_a_source_reads_back_only_in_its_account_and_kind(store: Store) -> None:
    created = source("fa_1", tags=("a", "b"), event_columns=("email",), event_data={"k": "v"}, status="PENDING", size=0)
    await store.sources.create(created)
    assert await store.sources.get("acme", "file_asset", "fa_1") == created
    assert await store.sources.get("other", "file_asset", "fa_1") is None
    assert await store.sources.get("acme", "report", "fa_1") is None
    assert await store.sources.get("acme", "file_asset", "fa_missing") is None


async def test_list_pages_newest_first_within_account_and_kind(store: Store) -> None:
    for i in range(5):
        await store.sources.create(source(f"fa_{i}", created_time=T0 + i, updated_time=T0 + i))
    await store.sources.create(source("other_account", account="other"))
    await store.sources.create(source("a_report", kind="report"))
    found = await pages(
        lambda cursor: store.sources.list("acme", "file_asset", name="", tags=(), cursor=cursor, limit=2)
    )
    assert [[s.id for s in page] for page in found] == [["fa_4", "fa_3"], ["fa_2", "fa_1"], ["fa_0"]]
    seen = [s.id for page in found for s in page]
    # A page that ends exactly at the last item says there is no next.
    whole = await store.sources.list("acme", "file_asset", name="", tags=(), cursor=None, limit=5)
    assert [s.id for s in whole.items] == seen
    assert whole.next_cursor is None
    reports = await store.sources.list("acme", "report", name="", tags=(), cursor=None, limit=10)
    assert [s.id for s in reports.items] == ["a_report"]


async def test_list_filters_by_name_and_by_every_tag(store: Store) -> None:
    await store.sources.create(source("fa_1", name="march", tags=("crm", "eu")))
    await store.sources.create(source("fa_2", name="march", tags=("crm",)))
    await store.sources.create(source("fa_3", name="april", tags=("eu", "crm")))

    async def ids(name: str = "", tags: tuple[str, ...] = ()) -> list[str]:
        page = await store.sources.list("acme", "file_asset", name=name, tags=tags, cursor=None, limit=10)
        return [s.id for s in page.items]

    assert await ids(name="march") == ["fa_2", "fa_1"]
    assert await ids(tags=("eu",)) == ["fa_3", "fa_1"]
    assert await ids(tags=("eu", "crm")) == ["fa_3", "fa_1"]
    assert await ids(name="march", tags=("eu",)) == ["fa_1"]
    assert await ids(name="may") == []
    assert await ids(tags=("cr",)) == []


async def test_complete_records_the_upload_only_from_the_expected_status(store: Store) -> None:
    await store.sources.create(source("fa_1", status="PENDING"))
    done = await store.sources.complete(
        "acme", "file_asset", "fa_1", expect="PENDING", status="AVAILABLE", size=42, sha256="ab" * 32, now=T0 + 5
    )
    assert done is not None
    assert (done.status, done.size, done.sha256) == ("AVAILABLE", 42, "ab" * 32)
    assert (done.updated_time, done.completed_time) == (T0 + 5, T0 + 5)
    assert await store.sources.get("acme", "file_asset", "fa_1") == done
    # A second upload expects PENDING and finds AVAILABLE: nothing changes.
    again = await store.sources.complete(
        "acme", "file_asset", "fa_1", expect="PENDING", status="AVAILABLE", size=1, sha256="cd" * 32, now=T0 + 6
    )
    assert again is None
    assert await store.sources.get("acme", "file_asset", "fa_1") == done


async def test_complete_is_scoped_by_account_and_kind(store: Store) -> None:
    await store.sources.create(source("fa_1", status="PENDING"))
    for account, kind in (("other", "file_asset"), ("acme", "report")):
        assert (
            await store.sources.complete(
                account, kind, "fa_1", expect="PENDING", status="AVAILABLE", size=1, sha256="", now=T0 + 1
            )
            is None
        )
    stored = await store.sources.get("acme", "file_asset", "fa_1")
    assert stored is not None
    assert stored.status == "PENDING"


async def test_delete_is_refused_while_a_job_in_an_in_use_status_reads_the_source(store: Store) -> None:
    await store.sources.create(source("fa_1", status="AVAILABLE"))
    readers = [job("job_a", source_id="fa_1", status="QUEUED"), job("job_b", source_id="fa_1", status="IN_PROGRESS")]
    finished = job("job_c", source_id="fa_1", status="DONE")
    for j in (*readers, finished):
        await store.jobs.create(j, notification(j))
    in_use = ("PENDING", "QUEUED", "IN_PROGRESS", "DISPATCHING")
    with pytest.raises(SourceInUse) as refused:
        await store.sources.delete("acme", "file_asset", "fa_1", in_use=in_use)
    assert sorted(refused.value.job_ids) == ["job_a", "job_b"]
    assert await store.sources.get("acme", "file_asset", "fa_1") is not None
    # Once those jobs are finished (a DONE job does not count), it goes.
    for j in readers:
        await store.jobs.transition(j.id, allowed_from=(j.status,), to="CANCELED", now=T0 + 1)
    deleted = await store.sources.delete("acme", "file_asset", "fa_1", in_use=in_use)
    assert deleted is not None
    assert deleted.id == "fa_1"
    assert await store.sources.get("acme", "file_asset", "fa_1") is None
    assert await store.sources.delete("acme", "file_asset", "fa_1", in_use=in_use) is None


async def test_delete_of_another_accounts_or_kinds_source_deletes_nothing(store: Store) -> None:
    await store.sources.create(source("fa_1"))
    assert await store.sources.delete("other", "file_asset", "fa_1", in_use=("QUEUED",)) is None
    assert await store.sources.delete("acme", "report", "fa_1", in_use=("QUEUED",)) is None
    assert await store.sources.get("acme", "file_asset", "fa_1") is not None
