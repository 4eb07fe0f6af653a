"""The store contract suite: every test here runs against every backend.

Modelled on River's `riverdrivertest`: the protocols of `batchgrpc.store`
are the contract, and a backend is correct when it passes this suite. The
tests go through the protocols only (no SQL, no backend's own functions), so
adding a backend is one entry in `BACKENDS`: an async context manager that
makes a fresh, empty database for one test, yields a function that opens a
store on it (as many as a test asks for: several workers on one database),
and closes them and drops the database after.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from batchgrpc.store import Store
from batchgrpc.store.factory import open_store as open_by_url
from batchgrpc.store.postgres import PostgresStore
from tests.servers import postgres_database

#: Opens one more store on the test's database.
OpenStore = Callable[[], Awaitable[Store]]


@contextlib.asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[OpenStore]:
    """One SQLite file; every store opened on it has its own connection
    and thread, as two worker processes would."""
    opened: list[Store] = []

    async def open_store() -> Store:
        store = await open_by_url(f"sqlite://{tmp_path / 'sqlite' / 'batchgrpc.db'}")
        opened.append(store)
        return store

    try:
        yield open_store
    finally:
        for store in reversed(opened):
            await store.close()


@contextlib.asynccontextmanager
async def postgresql_database(tmp_path: Path) -> AsyncIterator[OpenStore]:
    """A fresh database on the test server, dropped after; every store
    opened on it has its own pool, as two replicas would."""
    opened: list[PostgresStore] = []
    async with postgres_database("contract") as url:

        async def open_store() -> Store:
            store = await PostgresStore.open(url)
            opened.append(store)
            return store

        try:
            yield open_store
        finally:
            for store in reversed(opened):
                await store.close()


BACKENDS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[OpenStore]]] = {
    "postgresql": postgresql_database,
    "sqlite": sqlite_database,
}


#: The backends that replicas share: they hold uploaded file bytes
#: (`UploadStore`); SQLite's stay in the data directory, one machine's.
SHARED_BACKENDS = ("postgresql",)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_store(backend: str, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Opens stores on one fresh database of the backend under test."""
    async with BACKENDS[backend](tmp_path) as opener:
        yield opener


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    """A store on a fresh, empty database."""
    return await open_store()


@pytest.fixture(params=SHARED_BACKENDS)
async def open_shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Opens stores on one fresh database of a backend that replicas share."""
    async with BACKENDS[str(request.param)](tmp_path) as opener:
        yield opener
