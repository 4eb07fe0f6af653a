"""Versioned schema migrations for the SQLite store.

`PRAGMA user_version` holds the number of migrations applied. Migrations are
append-only: never edit one that has shipped, add the next. A step is a
statement, or a function of the connection for what SQL alone cannot say.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

#: The 128-bit event id stored as two signed 64-bit integers (SQLite's
#: integers): 16 bytes in the row and its index, against 33 for the hex.
_HALF = 1 << 64


def id_halves(event_id: str) -> tuple[int, int]:
    """(high, low) of a 32-hex-digit event id, each as a signed 64-bit integer."""
    high, low = int(event_id[:16], 16), int(event_id[16:], 16)
    return (high - _HALF if high >= _HALF >> 1 else high), (low - _HALF if low >= _HALF >> 1 else low)


def id_text(high: int, low: int) -> str:
    """The 32-hex-digit event id of its two stored halves."""
    return f"{high % _HALF:016x}{low % _HALF:016x}"


def _id_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("id_high", 1, lambda text: id_halves(text)[0], deterministic=True)
    conn.create_function("id_low", 1, lambda text: id_halves(text)[1], deterministic=True)


Step = str | Callable[[sqlite3.Connection], None]

MIGRATIONS: tuple[tuple[Step, ...], ...] = (
    # 1: accounts, API keys, idempotency records.
    (
        """
        CREATE TABLE accounts (
            account      TEXT PRIMARY KEY,
            created_time REAL NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE api_keys (
            key_id       TEXT PRIMARY KEY,
            account      TEXT NOT NULL REFERENCES accounts(account),
            secret_hash  BLOB NOT NULL,
            scopes       TEXT NOT NULL,  -- JSON array, sorted
            public       INTEGER NOT NULL,
            created_time REAL NOT NULL,
            revoked_time REAL
        ) STRICT
        """,
        "CREATE INDEX api_keys_account ON api_keys(account)",
        """
        CREATE TABLE idempotency (
            account      TEXT NOT NULL,
            method       TEXT NOT NULL,
            request_id   TEXT NOT NULL,
            state        TEXT NOT NULL CHECK (state IN ('pending', 'done')),
            response     BLOB,
            created_time REAL NOT NULL,
            PRIMARY KEY (account, method, request_id)
        ) STRICT, WITHOUT ROWID
        """,
        "CREATE INDEX idempotency_created ON idempotency(created_time)",
    ),
    # 2: data sources, batch jobs and their row errors, the event log.
    (
        """
        CREATE TABLE data_sources (
            seq            INTEGER PRIMARY KEY,
            id             TEXT NOT NULL UNIQUE,
            kind           TEXT NOT NULL CHECK (kind IN ('file_asset', 'report', 'audience_list')),
            account        TEXT NOT NULL,
            name           TEXT NOT NULL,
            format         TEXT NOT NULL,
            status         TEXT NOT NULL,
            tags           TEXT NOT NULL,  -- JSON array
            event_columns  TEXT NOT NULL,  -- JSON array (audience lists)
            event_data     TEXT NOT NULL,  -- JSON object (audience lists)
            size           INTEGER NOT NULL,
            sha256         TEXT NOT NULL,
            created_time   REAL NOT NULL,
            updated_time   REAL NOT NULL,
            completed_time REAL
        ) STRICT
        """,
        "CREATE INDEX data_sources_account ON data_sources(account, kind, seq)",
        """
        CREATE TABLE batch_jobs (
            seq                INTEGER PRIMARY KEY,
            id                 TEXT NOT NULL UNIQUE,
            account            TEXT NOT NULL,
            name               TEXT NOT NULL,
            event_name         TEXT NOT NULL,
            default_event_name TEXT NOT NULL,
            status             TEXT NOT NULL,
            tags               TEXT NOT NULL,  -- JSON array
            event_data         TEXT NOT NULL,  -- JSON object
            event_columns      TEXT NOT NULL,  -- JSON array
            columns            TEXT NOT NULL,  -- JSON array of rule objects
            scopes             TEXT NOT NULL,  -- JSON array
            source_type        TEXT NOT NULL,
            source_id          TEXT NOT NULL,
            source_ref_id      TEXT NOT NULL,  -- the job's own data-source id
            source_format      TEXT NOT NULL,
            source_released    INTEGER NOT NULL DEFAULT 0,
            success_rows       INTEGER NOT NULL DEFAULT 0,
            failed_rows        INTEGER NOT NULL DEFAULT 0,
            rows_read          INTEGER NOT NULL DEFAULT 0,
            error_code         TEXT NOT NULL DEFAULT '',
            error_message      TEXT NOT NULL DEFAULT '',
            debug_message      TEXT NOT NULL DEFAULT '',
            -- The checkpoint: byte offset past, and number of, the last row
            -- whose outcome is stored. Written with that outcome.
            next_offset        INTEGER NOT NULL DEFAULT 0,
            last_row           INTEGER NOT NULL DEFAULT 0,
            created_time       REAL NOT NULL,
            started_time       REAL,
            completed_time     REAL,
            updated_time       REAL NOT NULL
        ) STRICT
        """,
        "CREATE INDEX batch_jobs_account ON batch_jobs(account, seq)",
        "CREATE INDEX batch_jobs_status ON batch_jobs(status)",
        """
        CREATE TABLE row_errors (
            job_id      TEXT NOT NULL,
            row_number  INTEGER NOT NULL,
            byte_offset INTEGER NOT NULL,
            column_name TEXT NOT NULL,
            reason      TEXT NOT NULL,
            message     TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX row_errors_job ON row_errors(job_id, row_number)",
        """
        CREATE TABLE events (
            seq            INTEGER PRIMARY KEY,
            event_id       TEXT NOT NULL UNIQUE,
            account        TEXT NOT NULL,
            source         TEXT NOT NULL,
            job_id         TEXT NOT NULL,
            row_number     INTEGER NOT NULL,
            event_name     TEXT NOT NULL,
            event_time     REAL NOT NULL,
            profile_id     TEXT NOT NULL,
            identity       TEXT NOT NULL,
            data           TEXT NOT NULL,  -- JSON object
            value          REAL,
            value_currency TEXT NOT NULL,
            unique_id      TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX events_job ON events(account, job_id, seq)",
        "CREATE INDEX events_account ON events(account, seq)",
    ),
    # 3: profiles and their identifiers, bulk create jobs, event lookups.
    (
        """
        CREATE TABLE profiles (
            seq            INTEGER PRIMARY KEY,
            id             TEXT NOT NULL UNIQUE,
            account        TEXT NOT NULL,
            attributes     TEXT NOT NULL,  -- JSON object, upstream names
            attribute_time TEXT NOT NULL,  -- JSON object: attribute -> time of its value
            customer_ids   TEXT NOT NULL,  -- JSON object
            merged_into    TEXT,           -- set when merged into another profile
            created_time   REAL NOT NULL,
            updated_time   REAL NOT NULL
        ) STRICT
        """,
        "CREATE INDEX profiles_account ON profiles(account, seq)",
        """
        CREATE TABLE profile_identifiers (
            account    TEXT NOT NULL,
            kind       TEXT NOT NULL,  -- email, phone_number, ..., or customer:<name>
            value      TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            PRIMARY KEY (account, kind, value)
        ) STRICT, WITHOUT ROWID
        """,
        "CREATE INDEX profile_identifiers_profile ON profile_identifiers(profile_id)",
        """
        CREATE TABLE bulk_jobs (
            seq                INTEGER PRIMARY KEY,
            id                 TEXT NOT NULL UNIQUE,
            account            TEXT NOT NULL,
            status             TEXT NOT NULL,
            event_count        INTEGER NOT NULL,
            accepted_count     INTEGER NOT NULL DEFAULT 0,
            deduplicated_count INTEGER NOT NULL DEFAULT 0,
            rejected_count     INTEGER NOT NULL DEFAULT 0,
            errors             TEXT NOT NULL,  -- JSON array of [pointer, reason, message]
            request            BLOB NOT NULL,
            created_time       REAL NOT NULL,
            completed_time     REAL
        ) STRICT
        """,
        "CREATE INDEX bulk_jobs_status ON bulk_jobs(status)",
        "CREATE INDEX events_profile ON events(account, profile_id, seq)",
        "CREATE INDEX events_name ON events(account, event_name, seq)",
    ),
    # v4: events without a profile (batch-job rows) or without a job (tracked
    # events) stay out of the indexes that look them up by those: fewer index
    # writes per event. Lookups add `<> ''` so the planner can use them.
    (
        "DROP INDEX events_profile",
        "CREATE INDEX events_profile ON events(account, profile_id, seq) WHERE profile_id <> ''",
        "DROP INDEX events_job",
        "CREATE INDEX events_job ON events(account, job_id, seq) WHERE job_id <> ''",
    ),
    # v5: an idempotency claim keeps the fingerprint of its request (the
    # same id with another request is refused) and its owner (a claim of a
    # process that died is taken over at once).
    (
        "ALTER TABLE idempotency ADD COLUMN fingerprint BLOB",
        "ALTER TABLE idempotency ADD COLUMN owner TEXT",
    ),
    # v6: leases (a worker holds each batch or bulk job it runs, and named
    # singletons such as the relay), and each sink's delivered position in
    # the event log, which is the outbox.
    (
        "ALTER TABLE batch_jobs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE batch_jobs ADD COLUMN lease_expires REAL",
        "CREATE INDEX batch_jobs_lease ON batch_jobs(lease_owner) WHERE lease_owner IS NOT NULL",
        "ALTER TABLE bulk_jobs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE bulk_jobs ADD COLUMN lease_expires REAL",
        "CREATE INDEX bulk_jobs_lease ON bulk_jobs(lease_owner) WHERE lease_owner IS NOT NULL",
        """
        CREATE TABLE leases (
            name    TEXT PRIMARY KEY,
            owner   TEXT NOT NULL,
            expires REAL NOT NULL
        ) STRICT, WITHOUT ROWID
        """,
        """
        CREATE TABLE sink_positions (
            sink         TEXT PRIMARY KEY,
            position     INTEGER NOT NULL,  -- events.seq up to which the sink has every event
            updated_time REAL NOT NULL
        ) STRICT, WITHOUT ROWID
        """,
    ),
    # v7: the profiles merged into a profile, found from it: a repeat of an
    # event stored before a merge (under the merged profile's id) is a repeat.
    ("CREATE INDEX profiles_merged ON profiles(merged_into) WHERE merged_into IS NOT NULL",),
    # v8: a leaner event log, measured index by index (`make bench-schema`).
    # - The id is 16 bytes (two integers), not 32 hex characters.
    # - A batch row stores no id: (job_id, row_number) is its natural key and
    #   the id is computed from them when read; its chunk and checkpoint are
    #   stored in one transaction, so it is never offered twice.
    # - Bulk-created events, which upstream deduplicates, are found by their
    #   natural key (profile, metric, dedup key) in an index that
    #   keeps a profile's events together, so a request's inserts touch a
    #   page per profile, not a page per event as a hash of it would; a
    #   tracked event is never a repeat: its id is stored, not indexed.
    # - A notification must exist once: its id is unique-indexed.
    # - The profiles a profile absorbed are no longer looked up (its events
    #   moved to it, and are found under it): `profiles_merged` goes.
    (
        """
        CREATE TABLE events_v8 (
            seq            INTEGER PRIMARY KEY,  -- the outbox position
            id_high        INTEGER,              -- the event id's halves; NULL for a batch row
            id_low         INTEGER,
            account        TEXT NOT NULL,
            source         TEXT NOT NULL,
            job_id         TEXT NOT NULL,
            row_number     INTEGER NOT NULL,
            event_name     TEXT NOT NULL,
            event_time     REAL NOT NULL,
            profile_id     TEXT NOT NULL,
            identity       TEXT NOT NULL,
            data           TEXT NOT NULL,  -- JSON object
            value          REAL,
            value_currency TEXT NOT NULL,
            unique_id      TEXT NOT NULL,
            dedup_key      TEXT NOT NULL DEFAULT ''  -- a bulk event's: u:<unique_id> or t:<second>
        ) STRICT
        """,
        _id_functions,
        "INSERT INTO events_v8 SELECT seq,"
        " CASE WHEN source = 'BATCH_JOB' THEN NULL ELSE id_high(event_id) END,"
        " CASE WHEN source = 'BATCH_JOB' THEN NULL ELSE id_low(event_id) END,"
        " account, source, job_id, row_number, event_name, event_time, profile_id, identity, data, value,"
        " value_currency, unique_id,"
        " CASE WHEN source <> 'BULK_CREATE' THEN '' WHEN unique_id <> '' THEN 'u:' || unique_id"
        " ELSE 't:' || CAST(CAST(event_time AS INTEGER) AS TEXT) END FROM events",
        "DROP TABLE events",
        "ALTER TABLE events_v8 RENAME TO events",
        "CREATE UNIQUE INDEX events_id ON events(id_high, id_low) WHERE source = 'NOTIFICATION'",
        "CREATE INDEX events_dedup ON events(account, profile_id, event_name, dedup_key) WHERE source = 'BULK_CREATE'",
        "DROP INDEX profiles_merged",
        "CREATE INDEX events_account ON events(account, seq)",
        "CREATE INDEX events_job ON events(account, job_id, seq) WHERE job_id <> ''",
        "CREATE INDEX events_profile ON events(account, profile_id, seq) WHERE profile_id <> ''",
        "CREATE INDEX events_name ON events(account, event_name, seq)",
    ),
    # 9: a bulk event's `backfill` and metric service (Klaviyo's current
    # request shape), kept with it for ListEvents and the sink.
    (
        "ALTER TABLE events ADD COLUMN backfill INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE events ADD COLUMN metric_service TEXT NOT NULL DEFAULT ''",
    ),
    # 10: the W3C traceparent of the request behind an event, for its sink
    # message, and of the request that created a job, for the job's events
    # ('' when not traced).
    (
        "ALTER TABLE events ADD COLUMN traceparent TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE batch_jobs ADD COLUMN traceparent TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE bulk_jobs ADD COLUMN traceparent TEXT NOT NULL DEFAULT ''",
    ),
)
