"""Versioned schema migrations for the SQLite store.

`PRAGMA user_version` holds the number of migrations applied. Migrations are
append-only: never edit one that has shipped, add the next.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
)
