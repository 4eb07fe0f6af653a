"""One event-id scheme for every source, computed by the Rust core."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from xxhash import xxh3_128_hexdigest

from batchgrpc import _core, eventids


def test_row_ids_are_the_ids_the_core_encodes_into_its_chunks(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("email,event_name\n" + "".join(f"u{i}@example.com,e\n" for i in range(1, 13)))
    spec = _core.JobSpec(event_name="signup")
    # Small chunks and a resume, so ids come from more than one chunk and reader.
    chunks = list(_core.open_rows(path, "CSV", job_id="job-42", spec=spec, chunk_rows=5))
    resumed = list(
        _core.open_rows(
            path,
            "CSV",
            job_id="job-42",
            spec=spec,
            chunk_rows=5,
            resume_offset=chunks[0].next_offset,
            resume_row=chunks[0].last_row,
        )
    )
    for chunk in chunks + resumed:
        for event_id, _, row, *_ in chunk.events:
            assert event_id == eventids.row_event_id("job-42", row)
        for event_id, row, *_ in json.loads(chunk.encoded):
            assert event_id == eventids.row_event_id("job-42", row)
    assert sorted(e[2] for c in chunks for e in c.events) == list(range(1, 13))
    assert [e[2] for c in resumed for e in c.events] == list(range(6, 13))


def test_an_id_is_xxh3_128_of_the_length_prefixed_source_and_parts() -> None:
    # The layout eventids documents, computed here without the core.
    def expected(*parts: str) -> str:
        key = b"".join(struct.pack("<Q", len(p.encode())) + p.encode() for p in parts)
        return xxh3_128_hexdigest(key)

    assert eventids.row_event_id("job-1", 7) == expected("row", "job-1", "7")
    assert eventids.profile_event_id("acme", "01AB", "Placed Order", "u:é1") == expected(
        "profile", "acme", "01AB", "Placed Order", "u:é1"
    )
    assert eventids.notification_id("job-1", "batch_job_finished") == expected(
        "notification", "job-1", "batch_job_finished"
    )
    assert re.fullmatch("[0-9a-f]{32}", eventids.row_event_id("j", 0))


def test_different_keys_get_different_ids() -> None:
    ids = [
        eventids.profile_event_id("ab", "c", "", ""),
        eventids.profile_event_id("a", "bc", "", ""),
        eventids.profile_event_id("a", "b", "c", ""),
        eventids.notification_id("ab", "c"),
        eventids.row_event_id("ab", 1),
        eventids.row_event_id("ab", 11),
        eventids.row_event_id("ab1", 1),
    ]
    assert len(set(ids)) == len(ids)


def test_the_batch_call_gives_the_single_calls_ids() -> None:
    rows = [(f"job_{i % 2}", i) for i in range(5)]
    assert eventids.row_event_ids(rows) == [eventids.row_event_id(*r) for r in rows]
    assert eventids.row_event_ids([]) == []


def test_every_tracked_event_gets_a_key_of_its_own() -> None:
    keys = {eventids.tracked_dedup_key() for _ in range(1000)}
    assert len(keys) == 1000
