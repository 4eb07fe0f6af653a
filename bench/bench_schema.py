"""`make bench-schema`: the store's own insert limit, per kind of event row.

The events table is read at run time: the store's migrations are applied to
a temporary file and the table is inspected (`PRAGMA table_info`,
`index_list`, `index_info`, `table_list` and `sqlite_master`), so these
figures follow the schema as it changes. Rows get a value per column from
the column's name when it is one this program knows, else from its declared
type (`row_values`); rows are built before the clock starts and inserted
with `executemany`, in transactions of 1,000 rows (bulk: one request) or
10,000 rows (batch: one job chunk), on connections opened by the store's own
`connect()` (WAL, synchronous=FULL, its page cache), each run into a fresh
file:

  - bare:    a rowid table with the same columns, no constraint, no index
             (the limit);
  - schema:  the project's events table and every index on it;
  - minus X: the project's schema without index X, one line per index, and
             X's cost: the microseconds per row it adds.

"bulk" rows are bulk create events (a profile per 10 events, a job per
request, a random event id); "batch" rows are a batch job's (no profile, one
job, row numbers in order, and whatever the schema stores for a batch row's
id). Each line also gives the rate over the last 10 % of the rows against the
first 10 %: below 1, inserts slow down as the table grows.

`raw_rates` gives the bare and the schema rate of any rows, for the server
benchmarks to print beside their own figures in the same run.

A program that prints figures, not a test: nothing here fails on time.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import string
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from batchgrpc.store.sqlite import connect, migrate

TABLE = "events"
#: Rows per transaction: a bulk request's events, a batch job's chunk.
TRANSACTION_ROWS = {"bulk": 1_000, "batch": 10_000}
EVENT_NAMES = ("Viewed Product", "Added to Cart", "Placed Order")
EVENTS_PER_PROFILE = 10
#: Fixed event time (2026-11-01T10:00:00Z), as the bulk bench sends.
EVENT_TIME = 1_793_527_200.0
#: The columns `events` knows a value for, by name; any other column gets one
#: made from its declared type (`row_values`), or its default.
FIELDS = (
    "event_id",
    "id_high",
    "id_low",
    "account",
    "source",
    "job_id",
    "row_number",
    "event_name",
    "event_time",
    "profile_id",
    "identity",
    "data",
    "value",
    "value_currency",
    "unique_id",
    "dedup_key",
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    notnull: bool
    #: The DEFAULT clause's text, None without one.
    default: str | None = None


@dataclass(frozen=True)
class Index:
    name: str
    #: The statement that creates it after the table.
    sql: str
    #: True for a UNIQUE or PRIMARY KEY constraint of a rowid table itself
    #: (SQLite's autoindex), which only a table without it leaves out.
    constraint: bool
    #: True when that constraint is the primary key.
    primary_key: bool = False


@dataclass(frozen=True)
class Schema:
    table_sql: str
    #: Every column, the rowid alias (if any) included.
    columns: tuple[Column, ...]
    #: The columns an INSERT gives: all but the rowid alias, which SQLite
    #: assigns, and any column with a default that `FIELDS` does not name.
    insert_columns: tuple[str, ...]
    indexes: tuple[Index, ...]
    strict: bool
    without_rowid: bool
    #: The primary key, when it is a real one (not the rowid alias).
    primary_key: tuple[str, ...]
    #: The INTEGER PRIMARY KEY column that names the rowid, if any.
    rowid_alias: str | None

    def statements(self, without: str | None = None) -> list[str]:
        """The table and its indexes, less index `without`."""
        dropped = next((i for i in self.indexes if i.name == without), None)
        if without is not None and dropped is None:
            raise KeyError(without)
        if dropped is not None and dropped.constraint:
            # A constraint goes with the table's own text: the table is written
            # out from its columns instead, and the other constraints become
            # unique indexes (which cost what they cost).
            table = self._table_from_columns(primary_key=not dropped.primary_key)
            # The primary key stays in the table's text unless it is the one dropped.
            kept = [i.sql for i in self.indexes if i is not dropped and not i.primary_key]
            return [table, *kept]
        kept = [i.sql for i in self.indexes if i.name != without and not i.constraint]
        return [self.table_sql, *kept]

    def _table_from_columns(self, primary_key: bool) -> str:
        defs = []
        for c in self.columns:
            text = f'"{c.name}" {c.type}'
            if c.name == self.rowid_alias:
                text += " PRIMARY KEY"
            elif c.notnull:
                text += " NOT NULL"
            if c.default is not None:
                text += f" DEFAULT {c.default}"
            defs.append(text)
        if self.primary_key and (primary_key or self.without_rowid):
            defs.append("PRIMARY KEY (" + ", ".join(f'"{n}"' for n in self.primary_key) + ")")
        options = [o for o, on in (("STRICT", self.strict), ("WITHOUT ROWID", self.without_rowid)) if on]
        return f"CREATE TABLE {TABLE} (" + ", ".join(defs) + ") " + ", ".join(options)

    def bare(self) -> list[str]:
        """A rowid table with the inserted columns, their types only."""
        defs = ", ".join(f'"{c.name}" {c.type}' for c in self.columns if c.name in self.insert_columns)
        return [f"CREATE TABLE {TABLE} ({defs}){' STRICT' if self.strict else ''}"]


def load_schema() -> Schema:
    """The events table as the store's migrations leave it today."""
    with tempfile.TemporaryDirectory(prefix="bench-schema-") as tmp:
        conn = connect(Path(tmp) / "schema.sqlite3")
        try:
            migrate(conn)
            return _inspect(conn)
        finally:
            conn.close()


def _inspect(conn: sqlite3.Connection) -> Schema:
    (table_sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    info = conn.execute(f"PRAGMA table_info({TABLE})").fetchall()
    columns = tuple(
        Column(name, type_ or "ANY", bool(notnull), default) for _, name, type_, notnull, default, _ in info
    )
    pk = [name for _, name, _, _, _, pk in sorted(info, key=lambda r: r[5]) if pk]
    flags = {r[1]: r for r in conn.execute("PRAGMA table_list").fetchall()}[TABLE]
    strict, without_rowid = bool(flags[5]), bool(flags[4])
    pk_type = next(c.type for c in columns if c.name == pk[0]).upper() if pk else ""
    rowid_alias = len(pk) == 1 and pk_type == "INTEGER" and not without_rowid
    # A column this program does not know and that has a default is left to
    # it, as the store's own INSERTs leave the columns they do not set.
    insert_columns = tuple(
        c.name for c in columns if not (rowid_alias and c.name == pk[0]) and (c.name in FIELDS or c.default is None)
    )
    indexes = []
    for _, name, _unique, origin, _partial in conn.execute(f"PRAGMA index_list({TABLE})").fetchall():
        if origin == "pk" and without_rowid:
            # The primary key of a table without rowid is how the table is
            # stored, not an index one could do without.
            continue
        if origin in ("u", "pk"):
            cols = [r[2] for r in conn.execute(f"PRAGMA index_info({name})").fetchall()]
            quoted = ", ".join(f'"{c}"' for c in cols)
            label = f"{'PRIMARY KEY' if origin == 'pk' else 'UNIQUE'}({', '.join(cols)})"
            sql = f'CREATE UNIQUE INDEX "{label}" ON {TABLE} ({quoted})'
            indexes.append(Index(label, sql, constraint=True, primary_key=origin == "pk"))
        else:
            (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone()
            indexes.append(Index(name, sql, False))
    return Schema(
        table_sql=table_sql,
        columns=columns,
        insert_columns=insert_columns,
        indexes=tuple(sorted(indexes, key=lambda i: i.name)),
        strict=strict,
        without_rowid=without_rowid,
        primary_key=() if rowid_alias else tuple(pk),
        rowid_alias=pk[0] if rowid_alias else None,
    )


# --- the rows --------------------------------------------------------------------


def _signed64(rng: random.Random) -> int:
    return rng.getrandbits(64) - (1 << 63)


def _hex_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def events(kind: str, count: int, seed: int = 13, job_id: str = "job_bench") -> list[dict[str, object]]:
    """`count` events of `kind` as the store's code would hand them over, by
    field name (any field the schema lacks is simply not stored)."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    if kind == "batch":
        for n in range(1, count + 1):
            out.append(
                {
                    "event_id": _hex_id(rng),
                    # The row's natural key is (job_id, row_number): no id of its own.
                    "id_high": None,
                    "id_low": None,
                    "account": "default",
                    "source": "BATCH_JOB",
                    "job_id": job_id,
                    "row_number": n,
                    "event_name": EVENT_NAMES[n % 3],
                    "event_time": EVENT_TIME,
                    "profile_id": "",
                    "identity": f"person.{n}@example.com",
                    "data": _data(rng, n),
                    "value": None,
                    "value_currency": "",
                    "unique_id": "",
                    "dedup_key": "",
                }
            )
        return out
    if kind != "bulk":
        raise ValueError(kind)
    letters = string.ascii_uppercase
    per_request = TRANSACTION_ROWS["bulk"]
    profile = ""
    for n in range(count):
        request, within = divmod(n, per_request)
        p, e = divmod(within, EVENTS_PER_PROFILE)
        if e == 0:
            # New profiles' ids are ULIDs, time first (as the store makes
            # them): those made together sort together.
            profile = f"01{request:012d}{p:03d}" + "".join(rng.choices(letters, k=9))
        out.append(
            {
                "event_id": _hex_id(rng),
                "id_high": _signed64(rng),
                "id_low": _signed64(rng),
                "account": "default",
                "source": "BULK_CREATE",
                "job_id": f"bulk_{request:020d}",
                "row_number": e,
                "event_name": EVENT_NAMES[e % 3],
                "event_time": EVENT_TIME,
                "profile_id": profile,
                "identity": f"user-{request}-{p}@bench.example",
                "data": _data(rng, e),
                "value": None,
                "value_currency": "",
                "unique_id": f"{request}-{p}-{e}",
                "dedup_key": f"u:{request}-{p}-{e}",
            }
        )
    return out


def _data(rng: random.Random, e: int) -> str:
    # About 70 bytes, as the bench's bulk events' properties are.
    return f'{{"sku":"SKU-{e}","price":{9.5 + e},"source":"bench","visit":{rng.randrange(10**6)},"ok":true}}'


def _by_type(column: Column, rng: random.Random) -> object:
    kind = column.type.upper()
    if "INT" in kind:
        return _signed64(rng)
    if "REAL" in kind or "FLOA" in kind or "DOUB" in kind:
        return rng.random() * 1e9
    if "BLOB" in kind:
        return rng.randbytes(16)
    return "".join(rng.choices(string.ascii_lowercase, k=12))


def row_values(schema: Schema, rows: Sequence[Mapping[str, object]], seed: int = 7) -> list[tuple[object, ...]]:
    """Each row as the tuple `schema.insert_columns` takes: its value for a
    column it names, else one made from the column's declared type."""
    rng = random.Random(seed)
    columns = [c for c in schema.columns if c.name in schema.insert_columns]
    return [tuple(row[c.name] if c.name in row else _by_type(c, rng) for c in columns) for row in rows]


# --- the measurement -------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    rows_per_s: float
    first_tenth: float
    last_tenth: float
    #: (max - min) / median of the runs' rows/s: how far apart they were.
    spread: float = 0.0


def insert(statements: list[str], columns: Sequence[str], values: list[tuple[object, ...]], per_tx: int) -> Rate:
    """`values` into a fresh file made by `statements`, `per_tx` rows per
    transaction."""
    placeholders = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({placeholders})"
    batches = [values[i : i + per_tx] for i in range(0, len(values), per_tx)]
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-schema-") as tmp:
        conn = connect(Path(tmp) / "insert.sqlite3")
        try:
            for statement in statements:
                conn.execute(statement)
            for batch in batches:
                started = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
                times.append(time.perf_counter() - started)
        finally:
            conn.close()
    tenth = max(1, len(batches) // 10)
    first = sum(len(b) for b in batches[:tenth]) / sum(times[:tenth])
    last = sum(len(b) for b in batches[-tenth:]) / sum(times[-tenth:])
    return Rate(len(values) / sum(times), first, last)


def median_rate(
    statements: list[str], columns: Sequence[str], values: list[tuple[object, ...]], per_tx: int, runs: int
) -> Rate:
    rates = [insert(statements, columns, values, per_tx) for _ in range(runs)]
    median = statistics.median(r.rows_per_s for r in rates)
    return Rate(
        median,
        statistics.median(r.first_tenth for r in rates),
        statistics.median(r.last_tenth for r in rates),
        (max(r.rows_per_s for r in rates) - min(r.rows_per_s for r in rates)) / median,
    )


def raw_rates(
    kind: str, count: int, given: Sequence[Mapping[str, object]] | None = None, runs: int = 3
) -> tuple[float, float]:
    """(bare, schema) rows/s of `count` `events` of `kind`, each updated
    with the fields of a bench's own row in `given` (by field name), when
    given; medians of `runs`."""
    schema = load_schema()
    rows = events(kind, count)
    if given is not None:
        if len(given) != count:
            raise ValueError(f"{len(given)} rows given for {count}")
        for row, own in zip(rows, given, strict=True):
            row.update(own)
    values = row_values(schema, rows)
    per_tx = TRANSACTION_ROWS[kind]
    bare = median_rate(schema.bare(), schema.insert_columns, values, per_tx, runs)
    full = median_rate(schema.statements(), schema.insert_columns, values, per_tx, runs)
    return bare.rows_per_s, full.rows_per_s


def table(kind: str, count: int, runs: int) -> None:
    schema = load_schema()
    started = time.perf_counter()
    values = row_values(schema, events(kind, count))
    built = time.perf_counter() - started
    per_tx = TRANSACTION_ROWS[kind]
    print()
    print(
        f"{kind}: {count:,} rows in transactions of {per_tx:,} (rows built in {built:.1f} s, before the clock);"
        f" median of {runs} runs"
    )
    print(
        f"| {'table':<44} | {'rows/s':>9} | {'spread':>6} | {'/ bare':>6} | {'µs/row':>6} | {'cost µs/row':>11} |"
        " last/first 10 % |"
    )
    print(f"|{'-' * 46}|{'-' * 10}:|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|{'-' * 12}:|{'-' * 16}:|")

    def line(label: str, rate: Rate, bare: float, cost: str) -> None:
        trend = rate.last_tenth / rate.first_tenth
        us = 1e6 / rate.rows_per_s
        ratio = rate.rows_per_s / bare
        spread = f"{100 * rate.spread:.0f} %"
        print(
            f"| {label:<44} | {rate.rows_per_s:>9,.0f} | {spread:>6} | {ratio:>6.2f} | {us:>6.2f} | {cost:>11} |"
            f" {trend:>15.2f} |"
        )

    bare = median_rate(schema.bare(), schema.insert_columns, values, per_tx, runs)
    line("bare rowid table, no index (the limit)", bare, bare.rows_per_s, "")
    full = median_rate(schema.statements(), schema.insert_columns, values, per_tx, runs)
    all_cost = f"{1e6 / full.rows_per_s - 1e6 / bare.rows_per_s:.2f}"
    line(f"project's schema ({len(schema.indexes)} indexes)", full, bare.rows_per_s, all_cost)
    for index in schema.indexes:
        without = median_rate(schema.statements(without=index.name), schema.insert_columns, values, per_tx, runs)
        cost = 1e6 / full.rows_per_s - 1e6 / without.rows_per_s
        line(f"schema minus {index.name}", without, bare.rows_per_s, f"{cost:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000, help="events per kind")
    parser.add_argument(
        "--big-rows", type=int, default=1_000_000, help="batch events of a second batch table (0: none)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("bulk", "batch"))
    args = parser.parse_args()
    schema = load_schema()
    print(f"{os.cpu_count()} cores; SQLite {sqlite3.sqlite_version}; the events table as migrated:")
    print(f"  columns inserted: {', '.join(schema.insert_columns)}")
    for index in schema.indexes:
        print(f"  index {index.name}: {' '.join(index.sql.split())}")
    print("  cost = µs per row the index adds (the project's schema against the schema without it);")
    print("  on the schema's own line, all indexes together against the bare table; spread = (max - min) / median")
    print("  of the runs' rows/s: a cost smaller than the spreads of its two lines is noise (fsync on a shared disk)")
    for kind in ("bulk", "batch"):
        if args.only in (None, kind):
            table(kind, args.rows, args.runs)
            if kind == "batch" and args.big_rows:
                table(kind, args.big_rows, args.runs)


if __name__ == "__main__":
    main()
