"""Store.ping: what health asks the store every second."""

from __future__ import annotations

from batchgrpc.store import Store


async def test_a_store_that_answers_pings(store: Store) -> None:
    for _ in range(3):
        await store.ping()
