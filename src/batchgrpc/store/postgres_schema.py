"""The PostgreSQL store's schema, as numbered migrations.

`MIGRATIONS[n]` takes a database from version n to n + 1; `schema_version`
holds the version. Every replica migrates at start under one advisory lock
(`postgres.migrate`), so replicas starting together apply each step once.

Migrations are append-only now that `--store` offers the backend: never
edit one that has shipped, add the next. Times are Unix seconds (double
precision), as on SQLite; JSON is kept as the text the core wrote and
reads back (text, not jsonb: jsonb would reorder keys and respell
numbers).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """
        CREATE TABLE accounts (
            account      text PRIMARY KEY,
            created_time double precision NOT NULL
        )
        """,
        """
        CREATE TABLE api_keys (
            key_id       text PRIMARY KEY,
            account      text NOT NULL REFERENCES accounts(account),
            secret_hash  bytea NOT NULL,
            scopes       text NOT NULL,  -- JSON array, sorted
            public       boolean NOT NULL,
            created_time double precision NOT NULL,
            revoked_time double precision
        )
        """,
        "CREATE INDEX api_keys_account ON api_keys(account, created_time, key_id)",
        """
        CREATE TABLE idempotency (
            account      text NOT NULL,
            method       text NOT NULL,
            request_id   text NOT NULL,
            state        text NOT NULL CHECK (state IN ('pending', 'done')),
            response     bytea,
            created_time double precision NOT NULL,
            fingerprint  bytea,
            owner        text,
            PRIMARY KEY (account, method, request_id)
        )
        """,
        "CREATE INDEX idempotency_created ON idempotency(created_time)",
        "CREATE INDEX idempotency_pending ON idempotency(owner) WHERE state = 'pending'",
        """
        CREATE TABLE leases (
            name    text PRIMARY KEY,
            owner   text NOT NULL,
            expires double precision NOT NULL
        )
        """,
        "CREATE INDEX leases_owner ON leases(owner)",
        # The rate limiter's buckets: one row per (account, API), locked for
        # its read-modify-write, so every replica spends one budget.
        """
        CREATE TABLE rate_limits (
            account text NOT NULL,
            api     text NOT NULL,
            tokens  double precision[] NOT NULL,
            updated double precision NOT NULL,
            PRIMARY KEY (account, api)
        )
        """,
        """
        CREATE TABLE data_sources (
            seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id             text NOT NULL UNIQUE,
            kind           text NOT NULL CHECK (kind IN ('file_asset', 'report', 'audience_list')),
            account        text NOT NULL,
            name           text NOT NULL,
            format         text NOT NULL,
            status         text NOT NULL,
            tags           text NOT NULL,   -- JSON array
            event_columns  text NOT NULL,   -- JSON array (audience lists)
            event_data     text NOT NULL,   -- JSON object (audience lists)
            size           bigint NOT NULL,
            sha256         text NOT NULL,
            created_time   double precision NOT NULL,
            updated_time   double precision NOT NULL,
            completed_time double precision
        )
        """,
        "CREATE INDEX data_sources_account ON data_sources(account, kind, seq)",
        """
        CREATE TABLE batch_jobs (
            seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id                 text NOT NULL UNIQUE,
            account            text NOT NULL,
            name               text NOT NULL,
            event_name         text NOT NULL,
            default_event_name text NOT NULL,
            status             text NOT NULL,
            tags               text NOT NULL,  -- JSON array
            event_data         text NOT NULL,
            event_columns      text NOT NULL,
            columns            text NOT NULL,
            scopes             text NOT NULL,
            source_type        text NOT NULL,
            source_id          text NOT NULL,
            source_ref_id      text NOT NULL,
            source_format      text NOT NULL,
            source_released    boolean NOT NULL DEFAULT false,
            success_rows       bigint NOT NULL DEFAULT 0,
            failed_rows        bigint NOT NULL DEFAULT 0,
            rows_read          bigint NOT NULL DEFAULT 0,
            error_code         text NOT NULL DEFAULT '',
            error_message      text NOT NULL DEFAULT '',
            debug_message      text NOT NULL DEFAULT '',
            next_offset        bigint NOT NULL DEFAULT 0,
            last_row           bigint NOT NULL DEFAULT 0,
            created_time       double precision NOT NULL,
            started_time       double precision,
            completed_time     double precision,
            updated_time       double precision NOT NULL,
            lease_owner        text,
            lease_expires      double precision
        )
        """,
        "CREATE INDEX batch_jobs_account ON batch_jobs(account, seq)",
        "CREATE INDEX batch_jobs_status ON batch_jobs(status, seq)",
        "CREATE INDEX batch_jobs_lease ON batch_jobs(lease_owner) WHERE lease_owner IS NOT NULL",
        """
        CREATE TABLE row_errors (
            seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      text NOT NULL,
            row_number  bigint NOT NULL,
            byte_offset bigint NOT NULL,
            column_name text NOT NULL,
            reason      text NOT NULL,
            message     text NOT NULL
        )
        """,
        "CREATE INDEX row_errors_job ON row_errors(job_id, seq)",
        # The event log. `seq` is the outbox position: events are inserted
        # under one transaction-level lock (`postgres_jobs.lock_events`),
        # so positions are given in commit order and a reader that has seen
        # position p will never see a smaller one appear later.
        """
        CREATE TABLE events (
            seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id_high        bigint,  -- the event id's halves; NULL for a batch row
            id_low         bigint,
            account        text NOT NULL,
            source         text NOT NULL,
            job_id         text NOT NULL,
            row_number     bigint NOT NULL,
            event_name     text NOT NULL,
            event_time     double precision NOT NULL,
            profile_id     text NOT NULL,
            identity       text NOT NULL,
            data           text NOT NULL,
            value          double precision,
            value_currency text NOT NULL,
            unique_id      text NOT NULL,
            dedup_key      text NOT NULL DEFAULT ''
        )
        """,
        "CREATE UNIQUE INDEX events_id ON events(id_high, id_low) WHERE source = 'NOTIFICATION'",
        "CREATE INDEX events_dedup ON events(account, profile_id, event_name, dedup_key) WHERE source = 'BULK_CREATE'",
        "CREATE INDEX events_account ON events(account, seq)",
        "CREATE INDEX events_job ON events(account, job_id, seq) WHERE job_id <> ''",
        "CREATE INDEX events_profile ON events(account, profile_id, seq) WHERE profile_id <> ''",
        "CREATE INDEX events_name ON events(account, event_name, seq)",
        """
        CREATE TABLE profiles (
            seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id             text NOT NULL UNIQUE,
            account        text NOT NULL,
            attributes     text NOT NULL,  -- JSON object, upstream names
            attribute_time text NOT NULL,  -- JSON object: attribute -> time of its value
            customer_ids   text NOT NULL,  -- JSON object
            merged_into    text,           -- set when merged into another profile
            created_time   double precision NOT NULL,
            updated_time   double precision NOT NULL
        )
        """,
        "CREATE INDEX profiles_account ON profiles(account, seq) WHERE merged_into IS NULL",
        """
        CREATE TABLE profile_identifiers (
            account    text NOT NULL,
            kind       text NOT NULL,  -- email, phone_number, ..., or customer:<name>
            value      text NOT NULL,
            profile_id text NOT NULL,
            PRIMARY KEY (account, kind, value)
        )
        """,
        "CREATE INDEX profile_identifiers_profile ON profile_identifiers(profile_id)",
        """
        CREATE TABLE bulk_jobs (
            seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id                 text NOT NULL UNIQUE,
            account            text NOT NULL,
            status             text NOT NULL,
            event_count        bigint NOT NULL,
            accepted_count     bigint NOT NULL DEFAULT 0,
            deduplicated_count bigint NOT NULL DEFAULT 0,
            rejected_count     bigint NOT NULL DEFAULT 0,
            errors             text NOT NULL,  -- JSON array of [pointer, reason, message]
            request            bytea NOT NULL,
            created_time       double precision NOT NULL,
            completed_time     double precision,
            lease_owner        text,
            lease_expires      double precision
        )
        """,
        "CREATE INDEX bulk_jobs_status ON bulk_jobs(status, seq)",
        "CREATE INDEX bulk_jobs_lease ON bulk_jobs(lease_owner) WHERE lease_owner IS NOT NULL",
        """
        CREATE TABLE sink_positions (
            sink         text PRIMARY KEY,
            position     bigint NOT NULL,
            updated_time double precision NOT NULL
        )
        """,
        # Uploaded file bytes (`UploadStore`): chunks written as they
        # arrive, the upload visible once complete. No foreign key to
        # data_sources: a file asset's record is made after its bytes.
        """
        CREATE TABLE uploads (
            id        text PRIMARY KEY,
            source_id text NOT NULL,
            complete  boolean NOT NULL DEFAULT false,
            size      bigint NOT NULL DEFAULT 0,
            sha256    text NOT NULL DEFAULT '',
            chunks    integer NOT NULL DEFAULT 0,
            touched   double precision NOT NULL
        )
        """,
        "CREATE INDEX uploads_source ON uploads(source_id, sha256) WHERE complete",
        "CREATE INDEX uploads_incomplete ON uploads(touched) WHERE NOT complete",
        """
        CREATE TABLE upload_chunks (
            upload_id text NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
            seq       integer NOT NULL,
            data      bytea NOT NULL,
            PRIMARY KEY (upload_id, seq)
        )
        """,
        # Chunks are already compressed or not worth compressing twice; the
        # default EXTENDED would try pglz on every one.
        "ALTER TABLE upload_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
    ),
    # 2: a bulk event's `backfill` and metric service (Klaviyo's current
    # request shape), kept with it for ListEvents and the sink. Constant
    # defaults: no table rewrite.
    (
        "ALTER TABLE events ADD COLUMN backfill boolean NOT NULL DEFAULT false",
        "ALTER TABLE events ADD COLUMN metric_service text NOT NULL DEFAULT ''",
    ),
    # 3: the W3C traceparent of the request behind an event, for its sink
    # message, and of the request that created a job, for the job's events
    # ('' when not traced). Constant defaults: no table rewrite.
    (
        "ALTER TABLE events ADD COLUMN traceparent text NOT NULL DEFAULT ''",
        "ALTER TABLE batch_jobs ADD COLUMN traceparent text NOT NULL DEFAULT ''",
        "ALTER TABLE bulk_jobs ADD COLUMN traceparent text NOT NULL DEFAULT ''",
    ),
]
