"""Token buckets against a fake clock: exact, no sleeping."""

from __future__ import annotations

from batchgrpc.config import Rate, RateLimitConfig
from batchgrpc.errors import Api
from batchgrpc.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **rates: str) -> RateLimiter:
    return RateLimiter(
        RateLimitConfig(rates={Api(name): Rate.parse_many(spec) for name, spec in rates.items()}), clock=clock
    )


def test_burst_then_refused_with_retry_after() -> None:
    clock = Clock()
    rl = limiter(clock, bulk_events="10/s,150/min")
    decisions = [rl.acquire("acme", Api.BULK_EVENTS) for _ in range(11)]
    assert all(d is not None and d.allowed for d in decisions[:10])
    refused = decisions[10]
    assert refused is not None
    assert not refused.allowed
    assert refused.retry_after is not None
    assert 0 < refused.retry_after <= 0.1 + 1e-9
    assert refused.remaining == 0
    assert refused.limit == 10
    assert ("retry-after", "1") in refused.metadata()


def test_steady_window_limits_after_bursts() -> None:
    clock = Clock()
    rl = limiter(clock, bulk_events="10/s,150/min")
    allowed = 0
    for _ in range(60):  # a minute of 10 requests a second
        for _ in range(10):
            d = rl.acquire("acme", Api.BULK_EVENTS)
            assert d is not None
            allowed += d.allowed
        clock.now += 1.0
    # 150 at start plus 2.5/s refill over 59 s.
    assert 150 + 59 * 2.5 - 1 <= allowed <= 150 + 60 * 2.5


def test_headers_report_limit_remaining_and_reset() -> None:
    clock = Clock()
    rl = limiter(clock, batches="100/min")
    d = rl.acquire("acme", Api.BATCHES)
    assert d is not None
    assert d.allowed
    assert d.metadata() == [("ratelimit-limit", "100"), ("ratelimit-remaining", "99"), ("ratelimit-reset", "1")]


def test_accounts_and_apis_do_not_share_buckets() -> None:
    clock = Clock()
    rl = limiter(clock, tracking="1/s", batches="1/min")
    assert rl.acquire("a", Api.TRACKING).allowed  # type: ignore[union-attr]
    assert not rl.acquire("a", Api.TRACKING).allowed  # type: ignore[union-attr]
    assert rl.acquire("b", Api.TRACKING).allowed  # type: ignore[union-attr]
    assert rl.acquire("a", Api.BATCHES).allowed  # type: ignore[union-attr]


def test_refused_requests_take_no_tokens() -> None:
    clock = Clock()
    rl = limiter(clock, tracking="2/s")
    rl.acquire("a", Api.TRACKING)
    rl.acquire("a", Api.TRACKING)
    for _ in range(5):
        assert not rl.acquire("a", Api.TRACKING).allowed  # type: ignore[union-attr]
    clock.now += 0.5
    assert rl.acquire("a", Api.TRACKING).allowed  # type: ignore[union-attr]


def test_disabled_limiter_limits_nothing() -> None:
    rl = RateLimiter(RateLimitConfig(enabled=False))
    assert rl.acquire("a", Api.TRACKING) is None
