"""The row pipeline of the Rust core through its Python API, over all four formats."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from batchgrpc import _core
from batchgrpc.errors import DataFileError, InvalidJobSpec

ROWS = [
    {"person_id": "1", "email": "ann@example.com", "event_name": "signup", "note": 'said "hi", left'},
    {"person_id": "2", "email": "bob@example.com", "event_name": "", "note": "line1\nline2"},
    {"person_id": "3", "email": "čeněk@example.cz", "event_name": "purchase", "note": ""},
]


def write(path: Path, fmt: str, rows: list[dict[str, str]]) -> Path:
    if fmt in ("CSV", "PSV"):
        sep = "," if fmt == "CSV" else "|"

        def cell(v: str) -> str:
            return '"' + v.replace('"', '""') + '"' if any(c in v for c in (sep, '"', "\n", "\r")) else v

        lines = [sep.join(rows[0])] + [sep.join(cell(v) for v in r.values()) for r in rows]
        path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    elif fmt == "JSON":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


#: The options that make a job's compiled spec; the rest are `open_rows`'s.
SPEC_OPTIONS = ("event_name", "default_event_name", "event_columns", "event_data", "columns")


def open_job_rows(path: Path, fmt: str, **options: Any) -> _core.RowReader:
    """`open_rows` over `path`, with the job options compiled into its spec."""
    spec = _core.JobSpec(**{k: options.pop(k) for k in SPEC_OPTIONS if k in options})
    options.setdefault("job_id", "job-1")
    return _core.open_rows(path, fmt, spec=spec, **options)


def read_all(path: Path, fmt: str, **options: Any) -> tuple[list[Any], list[Any], list[Any]]:
    events, issues, chunks = [], [], []
    for chunk in open_job_rows(path, fmt, **options):
        events += chunk.events
        issues += chunk.issues
        chunks.append(chunk)
    return events, issues, chunks


FORMATS = ["CSV", "PSV", "JSON", "JSONL"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_events(tmp_path: Path, fmt: str) -> None:
    events, issues, chunks = read_all(write(tmp_path / "f", fmt, ROWS), fmt, default_event_name="visit")
    assert issues == []
    assert [(e[2], e[3], e[4]) for e in events] == [(1, "signup", "1"), (2, "visit", "2"), (3, "purchase", "3")]
    assert json.loads(events[0][5]) == {"person_id": "1", "email": "ann@example.com", "note": 'said "hi", left'}
    assert json.loads(events[1][5])["note"] == "line1\nline2"
    assert events[2][4] == "3"
    assert json.loads(events[2][5])["email"] == "čeněk@example.cz"
    assert all(e[1] == "job-1" and len(e[0]) == 32 for e in events)
    reference, _, _ = read_all(write(tmp_path / "ref.csv", "CSV", ROWS), "CSV", default_event_name="visit")
    assert events == reference
    assert chunks[-1].done
    assert sum(c.rows for c in chunks) == 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_rules_prefix_and_event_data(tmp_path: Path, fmt: str) -> None:
    events, issues, _ = read_all(
        write(tmp_path / "f", fmt, ROWS),
        fmt,
        event_name="imported",
        event_columns=["email", "person_id"],
        event_data={"source": "crm", "person_id": "overridden"},
        columns=[
            {"type": "FULL_NAME_MATCH", "name": "email", "validation_policy": "REQUIRED_VALUE", "value_type": "EMAIL"},
            {"type": "PATTERN_NAME_MATCH", "name_pattern": "^person", "prefix": "crm_", "value_type": "INTEGER"},
        ],
    )
    assert issues == []
    assert [e[3] for e in events] == ["imported"] * 3
    assert events[0][4] == "ann@example.com"
    assert json.loads(events[0][5]) == {
        "email": "ann@example.com",
        "crm_person_id": "1",
        "person_id": "overridden",
        "source": "crm",
    }


def test_row_issues_carry_row_offset_column_reason_and_message(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"email,amount\nann@example.com,10\nnot-an-email,x\n,5\n")
    events, issues, chunks = read_all(
        path,
        "CSV",
        event_name="e",
        columns=[
            {"type": "FULL_NAME_MATCH", "name": "email", "validation_policy": "REQUIRED_VALUE", "value_type": "EMAIL"},
            {"type": "FULL_NAME_MATCH", "name": "amount", "value_type": "NUMBER"},
        ],
    )
    assert [e[2] for e in events] == [1]
    assert [(i[0], i[1], i[2], i[3]) for i in issues] == [
        (2, 32, "email", "INVALID_EMAIL"),
        (2, 32, "amount", "INVALID_NUMBER"),
        (3, 47, "email", "REQUIRED_VALUE_MISSING"),
    ]
    assert all(i[4] for i in issues)
    assert (chunks[0].good, chunks[0].failed) == (1, 2)


def test_hostile_csv_counts_exactly(tmp_path: Path) -> None:
    path = tmp_path / "hostile.csv"
    path.write_bytes(
        b"\xef\xbb\xbfemail,event_name\r\n"
        b"a@x.com,one\r\n"
        b'"b@x.com","multi\r\nline"\r\n'
        b"ragged\r\n"
        b"c@x.com,two,extra\r\n"
        b"\xff\xfe@x.com,bad\r\n"
        b"\r\n"
        b"d@x.com,three"
    )
    events, issues, chunks = read_all(path, "CSV")
    assert [e[2] for e in events] == [1, 2, 6]
    assert [e[3] for e in events] == ["one", "multi\r\nline", "three"]
    assert [(i[0], i[3]) for i in issues] == [(3, "RAGGED_ROW"), (4, "RAGGED_ROW"), (5, "INVALID_UTF8")]
    assert _core.open_rows(path, "CSV", job_id="j").columns == ["email", "event_name"]  # BOM stripped
    assert sum(c.rows for c in chunks) == 6


@pytest.mark.parametrize(
    ("content", "fmt", "reason", "where"),
    [
        (b"a,b,a\n1,2,3\n", "CSV", "DUPLICATE_HEADER", "line 1"),
        (b"", "CSV", "MISSING_HEADER", "byte 0"),
        (b"a||b\n", "PSV", "EMPTY_HEADER_NAME", "line 1"),
        (b'a,b\n1,2\n3,"never closed\n4,5\n', "CSV", "UNTERMINATED_QUOTE", "line 3"),
        (b'{"a": 1}', "JSON", "INVALID_JSON_DOCUMENT", "byte 0"),
        (b'[{"a": 1}\n{"a": 2}]', "JSON", "INVALID_JSON_DOCUMENT", "line 2"),
    ],
)
def test_file_errors_say_what_and_where(tmp_path: Path, content: bytes, fmt: str, reason: str, where: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    with pytest.raises(DataFileError) as caught:
        read_all(path, fmt)
    assert caught.value.file_reason == reason
    assert where in caught.value.message
    assert caught.value.metadata["file_error"] == reason


def test_a_required_column_absent_from_the_header_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("id\n1\n")
    with pytest.raises(DataFileError, match='"email"') as caught:
        open_job_rows(
            path,
            "CSV",
            columns=[{"type": "FULL_NAME_MATCH", "name": "email", "validation_policy": "REQUIRED_COLUMN"}],
        )
    assert caught.value.file_reason == "REQUIRED_COLUMN_MISSING"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"columns": [{"type": "PATTERN_NAME_MATCH", "name_pattern": "("}]}, "columns[0].name_pattern"),
        ({"columns": [{"type": "FULL_NAME_MATCH", "name": "a"}, {"type": "NEAR_MATCH"}]}, "columns[1].type"),
        (
            {"columns": [{"type": "FULL_NAME_MATCH", "name": "a", "validation_policy": "MUST"}]},
            "columns[0].validation_policy",
        ),
        ({"event_name": "x" * 256}, "event_name"),
        ({"event_columns": ["a", "a"]}, "event_columns[1]"),
    ],
)
def test_bad_options_are_invalid_job_specs_naming_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidJobSpec) as caught:
        _core.JobSpec(**options)
    assert caught.value.field == field
    assert caught.value.violations[0].field == field


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidJobSpec):
        _core.open_rows(tmp_path / "x", "XLSX", job_id="j")
    with pytest.raises(FileNotFoundError):
        _core.open_rows(tmp_path / "missing.csv", "CSV", job_id="j")


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunks_and_resume_from_a_checkpoint(tmp_path: Path, fmt: str) -> None:
    rows = [{"id": str(i), "event_name": "e"} for i in range(1, 8)]
    path = write(tmp_path / "f", fmt, rows)
    events, _, chunks = read_all(path, fmt, chunk_rows=3)
    assert [c.rows for c in chunks] == [3, 3, 1]
    assert [c.last_row for c in chunks] == [3, 6, 7]
    resumed, _, _ = read_all(
        path, fmt, chunk_rows=3, resume_offset=chunks[0].next_offset, resume_row=chunks[0].last_row
    )
    assert resumed == events[3:]


def test_chunks_let_go_of_and_chunks_kept_read_the_same(tmp_path: Path) -> None:
    # A chunk Python drops lends its buffers to the next one; one still held
    # must keep its own.
    rows = [{"id": str(i), "email": f"u{i}@example.com", "event_name": "e" * (i % 7)} for i in range(1, 500)]
    path = write(tmp_path / "f.csv", "CSV", rows)
    options: dict[str, Any] = {"job_id": "j", "default_event_name": "d", "chunk_rows": 17}
    kept = list(open_job_rows(path, "CSV", **options))
    dropped = [(chunk.encoded, chunk.events) for chunk in open_job_rows(path, "CSV", **options)]
    assert [(chunk.encoded, chunk.events) for chunk in kept] == dropped
    assert sum(chunk.event_count for chunk in kept) == 499


def test_the_gil_is_released_while_rows_are_read(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write("email,amount,event_name\n")
        for i in range(300_000):
            f.write(f"user{i}@example.com,{i}.5,e\n")
    reader = _core.open_rows(path, "CSV", job_id="j", chunk_rows=300_000)
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    thread = threading.Thread(target=tick)
    thread.start()
    try:
        before = ticks
        chunk = next(reader)
        during = ticks - before
    finally:
        stop.set()
        thread.join()
    assert chunk.rows == 300_000
    # With the GIL held for the whole call the other thread could not run.
    assert during > 10_000


def test_the_encoded_chunk_goes_into_sqlite_in_one_statement(tmp_path: Path) -> None:
    import sqlite3

    path = write(tmp_path / "f.csv", "CSV", ROWS)
    chunk = next(open_job_rows(path, "CSV", job_id="job-9", default_event_name="visit"))
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE events (event_id TEXT PRIMARY KEY, job_id TEXT, row_number INT,"
        " name TEXT, identity TEXT, data TEXT)"
    )
    # One statement per chunk: SQLite's json_each unpacks the array in C, so
    # no Python object is made per event.
    db.execute(
        "INSERT INTO events SELECT value->>0, ?, value->>1, value->>2, value->>3, value->>4 FROM json_each(?)",
        ("job-9", chunk.encoded),
    )
    stored = db.execute(
        "SELECT event_id, job_id, row_number, name, identity, data FROM events ORDER BY row_number"
    ).fetchall()
    expected = [(e[0], e[1], e[2], e[3], e[4], e[5].decode()) for e in chunk.events]
    assert [s[:5] for s in stored] == [e[:5] for e in expected]
    assert [json.loads(s[5]) for s in stored] == [json.loads(e[5]) for e in expected]
    assert chunk.event_count == 3
