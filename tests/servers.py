"""The real servers the tests use. `make test` runs pytest under
`tools/servers.py run`, which starts a throwaway PostgreSQL and Kafka on free
loopback ports and names them in BATCHGRPC_TEST_POSTGRES and
BATCHGRPC_TEST_KAFKA. A test that needs one, run without it, fails and says
how to run it: it never skips, so a missing server cannot pass for a green run.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

POSTGRES_ENV = "BATCHGRPC_TEST_POSTGRES"
KAFKA_ENV = "BATCHGRPC_TEST_KAFKA"


def postgres_url() -> str:
    """The run's PostgreSQL as a URL (superuser `postgres`, database `postgres`, no password)."""
    return _required(POSTGRES_ENV, "PostgreSQL")


@contextlib.asynccontextmanager
async def postgres_database(prefix: str = "test") -> AsyncIterator[str]:
    """A fresh, empty database on the run's PostgreSQL, as a store URL;
    dropped after (with any connection still open to it)."""
    admin = postgres_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type] # a name we made
    try:
        # The URL's path is the database.
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")  # type: ignore[arg-type]


def kafka_bootstrap() -> str:
    """The run's Kafka broker as `bootstrap.servers` (host:port)."""
    return _required(KAFKA_ENV, "Kafka")


def _required(name: str, server: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set, so there is no {server} to test against: run the tests through `make test` "
            "(tools/servers.py starts PostgreSQL and Kafka), or one file with "
            "`python3 tools/servers.py run -- .venv/bin/python -m pytest FILE`",
            pytrace=False,
        )
    return value
