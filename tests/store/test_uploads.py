"""UploadStore: uploaded file bytes in chunks, in the stores that replicas
share (SQLite's `uploads` is None: its files stay on disk)."""

from __future__ import annotations

import pytest

from batchgrpc.store import Store, Upload, UploadStore
from tests.store.build import T0
from tests.store.conftest import SHARED_BACKENDS, OpenStore


def uploads_of(store: Store) -> UploadStore:
    assert store.uploads is not None
    return store.uploads


async def put(uploads: UploadStore, upload_id: str, source_id: str, chunks: list[bytes], sha256: str) -> None:
    await uploads.begin(upload_id, source_id, now=T0)
    for seq, data in enumerate(chunks):
        await uploads.append(upload_id, seq, data, now=T0 + seq)
    await uploads.publish(upload_id, size=sum(map(len, chunks)), sha256=sha256)


async def test_only_shared_backends_hold_uploads(store: Store, backend: str) -> None:
    assert (store.uploads is not None) == (backend in SHARED_BACKENDS)


async def test_an_upload_is_invisible_until_published_then_read_back_by_another_replica(
    open_shared: OpenStore,
) -> None:
    writer, reader = uploads_of(await open_shared()), uploads_of(await open_shared())
    await writer.begin("up_1", "fa_1", now=T0)
    await writer.append("up_1", 0, b"a,b\n", now=T0)
    await writer.append("up_1", 1, b"\x00\xff" * 10, now=T0 + 1)
    assert await reader.find("fa_1", "sha-1") is None
    await writer.publish("up_1", size=24, sha256="sha-1")
    assert await reader.find("fa_1", "sha-1") == Upload("up_1", "fa_1", 24, "sha-1", 2)
    assert await reader.chunk("up_1", 0) == b"a,b\n"
    assert await reader.chunk("up_1", 1) == b"\x00\xff" * 10
    assert await reader.chunk("up_1", 2) is None
    assert await reader.find("fa_1", "another") is None
    assert await reader.find("fa_2", "sha-1") is None


async def test_a_published_or_unknown_upload_takes_no_more_chunks(open_shared: OpenStore) -> None:
    uploads = uploads_of(await open_shared())
    await put(uploads, "up_1", "fa_1", [b"x"], "s")
    with pytest.raises(LookupError):
        await uploads.append("up_1", 1, b"more", now=T0)
    with pytest.raises(LookupError):
        await uploads.publish("up_1", size=1, sha256="s")
    with pytest.raises(LookupError):
        await uploads.append("up_missing", 0, b"x", now=T0)
    found = await uploads.find("fa_1", "s")
    assert found is not None
    assert found.chunks == 1
    assert await uploads.chunk("up_1", 1) is None


async def test_the_source_content_picks_its_upload_and_settling_removes_the_others(open_shared: OpenStore) -> None:
    uploads = uploads_of(await open_shared())
    # Two uploads raced for one report; the report was completed with the second's content.
    await put(uploads, "up_a", "rp_1", [b"first"], "sha-a")
    await put(uploads, "up_b", "rp_1", [b"second"], "sha-b")
    await uploads.begin("up_c", "rp_1", now=T0)  # a third still being received
    await put(uploads, "up_other", "rp_2", [b"other"], "sha-a")
    found = await uploads.find("rp_1", "sha-b")
    assert found is not None
    assert found.id == "up_b"
    assert await uploads.remove("rp_1", keep="up_b") == 1
    assert await uploads.find("rp_1", "sha-a") is None
    assert await uploads.chunk("up_a", 0) is None
    assert await uploads.chunk("up_b", 0) == b"second"
    await uploads.append("up_c", 0, b"third", now=T0)  # settling leaves uploads in progress alone
    # Deleting the source removes every upload of it, those in progress too.
    assert await uploads.remove("rp_1") == 2
    assert await uploads.find("rp_1", "sha-b") is None
    with pytest.raises(LookupError):
        await uploads.append("up_c", 1, b"more", now=T0)
    assert await uploads.chunk("up_other", 0) == b"other"


async def test_discard_and_sweep_take_back_uploads_whose_writer_gave_up(open_shared: OpenStore) -> None:
    uploads = uploads_of(await open_shared())
    await uploads.begin("up_failed", "fa_1", now=T0)
    await uploads.append("up_failed", 0, b"half", now=T0)
    await uploads.discard("up_failed")
    with pytest.raises(LookupError):
        await uploads.append("up_failed", 1, b"rest", now=T0)
    await uploads.begin("up_dead", "fa_2", now=T0)
    await uploads.append("up_dead", 0, b"x", now=T0 + 10)
    await uploads.begin("up_live", "fa_3", now=T0)
    await uploads.append("up_live", 0, b"x", now=T0 + 100)
    await put(uploads, "up_done", "fa_4", [b"x"], "s")
    assert await uploads.sweep(untouched_since=T0 + 50) == 1
    with pytest.raises(LookupError):
        await uploads.append("up_dead", 1, b"x", now=T0 + 200)
    await uploads.append("up_live", 1, b"y", now=T0 + 200)
    assert await uploads.find("fa_4", "s") is not None
