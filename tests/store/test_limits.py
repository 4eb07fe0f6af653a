"""RateLimitStore: one atomic read-modify-write per (account, API), so that
every worker and replica of a store spends one budget."""

from __future__ import annotations

import asyncio

from batchgrpc.store import LimitRecord, Store
from tests.store.conftest import OpenStore


def bump(seen: list[LimitRecord | None]) -> object:
    def change(record: LimitRecord | None) -> tuple[LimitRecord, int]:
        seen.append(record)
        count = 0 if record is None else int(record.tokens[0])
        return LimitRecord((float(count + 1),), 1.0), count + 1

    return change


async def test_the_first_update_finds_nothing_and_the_next_finds_what_it_stored(store: Store) -> None:
    seen: list[LimitRecord | None] = []
    assert await store.limits.update("acme", "batches", bump(seen)) == 1  # type: ignore[arg-type]
    assert await store.limits.update("acme", "batches", bump(seen)) == 2  # type: ignore[arg-type]
    assert seen == [None, LimitRecord((1.0,), 1.0)]


async def test_records_are_per_account_and_api(store: Store) -> None:
    seen: list[LimitRecord | None] = []
    for account, api in (("acme", "batches"), ("acme", "tracking"), ("other", "batches")):
        assert await store.limits.update(account, api, bump(seen)) == 1  # type: ignore[arg-type]
    assert await store.limits.update("acme", "batches", bump(seen)) == 2  # type: ignore[arg-type]


async def test_updates_from_two_stores_at_once_lose_none(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    seen: list[LimitRecord | None] = []
    counts = await asyncio.gather(
        *(s.limits.update("acme", "batches", bump(seen)) for _ in range(40) for s in (first, second))  # type: ignore[arg-type]
    )
    # Every update saw the one before it: 80 distinct counts, 1 to 80.
    assert sorted(counts) == list(range(1, 81))
