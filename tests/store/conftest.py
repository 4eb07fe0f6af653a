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


BACKENDS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[OpenStore]]] = {
    "sqlite": sqlite_database,
}


@pytest.fixture(params=sorted(BACKENDS))
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Opens stores on one fresh database of the backend under test."""
    async with BACKENDS[request.param](tmp_path) as opener:
        yield opener


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    """A store on a fresh, empty database."""
    return await open_store()
