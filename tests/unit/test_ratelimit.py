"""Token buckets against a fake clock, kept in the real SQLite store: exact,
no sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batchgrpc.config import Rate, RateLimitConfig
from batchgrpc.errors import Api
from batchgrpc.ratelimit import CLOCK_SKEW, Decision, RateLimiter
from batchgrpc.store.sqlite import DATABASE_NAME, SqliteStore
from batchgrpc.store.sqlite_limits import SUFFIX


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / DATABASE_NAME)
    try:
        yield store
    finally:
        await store.close()


def limiter(store: SqliteStore, clock: Clock, **rates: str) -> RateLimiter:
    return RateLimiter(
        RateLimitConfig(rates={Api(name): Rate.parse_many(spec) for name, spec in rates.items()}),
        store.limits,
        clock=clock,
    )


async def allowed(rl: RateLimiter, account: str, api: Api) -> bool:
    decision = await rl.acquire(account, api)
    assert decision is not None
    return decision.allowed


async def test_burst_then_refused_with_retry_after(store: SqliteStore) -> None:
    clock = Clock()
    rl = limiter(store, clock, bulk_events="10/s,150/min")
    decisions = [await rl.acquire("acme", Api.BULK_EVENTS) for _ in range(11)]
    assert all(d is not None and d.allowed for d in decisions[:10])
    refused = decisions[10]
    assert refused is not None
    assert not refused.allowed
    assert refused.retry_after is not None
    assert 0 < refused.retry_after <= 0.1 + 1e-9
    assert refused.remaining == 0
    assert refused.limit == 10
    assert ("retry-after", "1") in refused.metadata()


@pytest.mark.parametrize(("wait", "seconds"), [(0.0005, 1), (1.0, 1), (1.0006, 2), (59.2, 60)])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, seconds: int) -> None:
    # The Klaviyo SDK sleeps int(Retry-After): a figure rounded down would
    # send it back before the bucket has a token.
    refused = Decision(allowed=False, limit=10, remaining=0, reset=1, retry_after=wait)
    assert refused.retry_after_seconds == seconds
    assert ("retry-after", str(seconds)) in refused.metadata()


async def test_steady_window_limits_after_bursts(store: SqliteStore) -> None:
    clock = Clock()
    rl = limiter(store, clock, bulk_events="10/s,150/min")
    count = 0
    for _ in range(60):  # a minute of 10 requests a second
        for _ in range(10):
            count += await allowed(rl, "acme", Api.BULK_EVENTS)
        clock.now += 1.0
    # 150 at start plus 2.5/s refill over 59 s.
    assert 150 + 59 * 2.5 - 1 <= count <= 150 + 60 * 2.5


async def test_headers_report_limit_remaining_and_reset(store: SqliteStore) -> None:
    clock = Clock()
    rl = limiter(store, clock, batches="100/min")
    d = await rl.acquire("acme", Api.BATCHES)
    assert d is not None
    assert d.allowed
    assert d.metadata() == [("ratelimit-limit", "100"), ("ratelimit-remaining", "99"), ("ratelimit-reset", "1")]


async def test_accounts_and_apis_do_not_share_buckets(store: SqliteStore) -> None:
    clock = Clock()
    rl = limiter(store, clock, tracking="1/s", batches="1/min")
    assert await allowed(rl, "a", Api.TRACKING)
    assert not await allowed(rl, "a", Api.TRACKING)
    assert await allowed(rl, "b", Api.TRACKING)
    assert await allowed(rl, "a", Api.BATCHES)


async def test_refused_requests_take_no_tokens(store: SqliteStore) -> None:
    clock = Clock()
    rl = limiter(store, clock, tracking="2/s")
    await rl.acquire("a", Api.TRACKING)
    await rl.acquire("a", Api.TRACKING)
    for _ in range(5):
        assert not await allowed(rl, "a", Api.TRACKING)
    clock.now += 0.5
    assert await allowed(rl, "a", Api.TRACKING)


async def test_disabled_limiter_limits_nothing_and_touches_no_store(store: SqliteStore, tmp_path: Path) -> None:
    off = RateLimiter(RateLimitConfig(enabled=False), store.limits)
    assert await off.acquire("a", Api.TRACKING) is None
    # An API without rates is not limited either.
    unlimited = limiter(store, Clock(), tracking="1/s")
    assert await unlimited.acquire("a", Api.BATCHES) is None
    assert not (tmp_path / (DATABASE_NAME + SUFFIX)).exists()
    assert await allowed(unlimited, "a", Api.TRACKING)
    assert (tmp_path / (DATABASE_NAME + SUFFIX)).exists()


async def test_two_stores_on_one_database_share_an_accounts_budget(store: SqliteStore, tmp_path: Path) -> None:
    # A second store instance opened on the same database, as a second
    # worker or replica process would: its own connections and threads.
    other = await SqliteStore.open(tmp_path / DATABASE_NAME)
    try:
        clock = Clock()
        one = limiter(store, clock, tracking="10/s")
        two = limiter(other, clock, tracking="10/s")
        # Alternating: exactly the capacity across both.
        results = [await allowed(one if i % 2 else two, "acme", Api.TRACKING) for i in range(12)]
        assert results == [True] * 10 + [False] * 2
        assert await allowed(one, "other", Api.TRACKING)
        # At once, from both: still exactly the capacity.
        clock.now += 1.0
        concurrent = await asyncio.gather(*(allowed(rl, "acme", Api.TRACKING) for rl in (one, two) * 15))
        assert sum(concurrent) == 10
    finally:
        await other.close()


async def test_concurrent_requests_of_many_accounts_each_get_their_own_budget(store: SqliteStore) -> None:
    rl = limiter(store, Clock(), tracking="2/s", batches="1/min")
    requests = [(f"acct-{n}", api) for _ in range(3) for n in range(20) for api in (Api.TRACKING, Api.BATCHES)]
    results = await asyncio.gather(*(allowed(rl, account, api) for account, api in requests))
    granted: dict[tuple[str, Api], int] = {}
    for key, ok in zip(requests, results, strict=True):
        granted[key] = granted.get(key, 0) + ok
    assert granted == {(f"acct-{n}", api): cap for n in range(20) for api, cap in ((Api.TRACKING, 2), (Api.BATCHES, 1))}


async def test_a_step_back_of_the_clock_gives_no_tokens_and_starves_nobody(store: SqliteStore) -> None:
    clock = Clock()
    rl = limiter(store, clock, tracking="2/s")
    assert await allowed(rl, "a", Api.TRACKING)
    assert await allowed(rl, "a", Api.TRACKING)
    for step in (CLOCK_SKEW / 2, 3600.0):
        clock.now -= step
        refused = await rl.acquire("a", Api.TRACKING)
        assert refused is not None
        assert not refused.allowed
        assert refused.remaining == 0
        assert refused.reset == 1
        assert refused.retry_after == pytest.approx(0.5)
    # An hour back: the refill goes on from the new time, not an hour later.
    clock.now += 0.5
    assert await allowed(rl, "a", Api.TRACKING)
    assert not await allowed(rl, "a", Api.TRACKING)


async def test_a_step_forward_refills_no_more_than_full(store: SqliteStore) -> None:
    clock = Clock()
    rl = limiter(store, clock, bulk_events="10/s,150/min")
    for _ in range(10):
        assert await allowed(rl, "a", Api.BULK_EVENTS)
    clock.now += 86400.0
    assert [await allowed(rl, "a", Api.BULK_EVENTS) for _ in range(11)] == [True] * 10 + [False]


async def test_new_rates_for_an_api_start_full(store: SqliteStore) -> None:
    clock = Clock()
    old = limiter(store, clock, bulk_events="1/s")
    assert await allowed(old, "a", Api.BULK_EVENTS)
    assert not await allowed(old, "a", Api.BULK_EVENTS)
    # Restarted with two buckets instead of one: the old record does not fit.
    new = limiter(store, clock, bulk_events="3/s,150/min")
    assert [await allowed(new, "a", Api.BULK_EVENTS) for _ in range(4)] == [True] * 3 + [False]
    # Restarted with a lower capacity: what is left is capped to it.
    clock.now += 10.0
    low = limiter(store, clock, bulk_events="1/s,150/min")
    assert [await allowed(low, "a", Api.BULK_EVENTS) for _ in range(2)] == [True, False]
