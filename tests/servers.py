"""The real servers the tests use. `make test` runs pytest under
`tools/servers.py run`, which starts a throwaway PostgreSQL and Kafka on free
loopback ports and names them in BATCHGRPC_TEST_POSTGRES and
BATCHGRPC_TEST_KAFKA. A test that needs one, run without it, fails and says
how to run it: it never skips, so a missing server cannot pass for a green run.
"""

from __future__ import annotations

import os

import pytest

POSTGRES_ENV = "BATCHGRPC_TEST_POSTGRES"
KAFKA_ENV = "BATCHGRPC_TEST_KAFKA"


def postgres_url() -> str:
    """The run's PostgreSQL as a URL (superuser `postgres`, database `postgres`, no password)."""
    return _required(POSTGRES_ENV, "PostgreSQL")


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
