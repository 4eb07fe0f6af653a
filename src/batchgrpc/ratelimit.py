"""Per-account, per-API token buckets, with the RateLimit-* figures to report.

A request takes one token from every bucket of its API (Klaviyo bulk events
has two: a 1 s burst and a 1 min steady window) or from none when any is
empty. The state lives in this process: replicas behind one load balancer
each enforce the limit on their share, until a shared limiter backs this
interface.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchgrpc.config import Rate, RateLimitConfig
from batchgrpc.errors import Api


@dataclass(frozen=True)
class Decision:
    """The outcome of one request against an account's buckets."""

    allowed: bool
    #: The bucket nearest to empty: its capacity, whole tokens left, and whole
    #: seconds until it is full again.
    limit: int
    remaining: int
    reset: int
    #: Seconds until a request would be allowed; None when allowed.
    retry_after: float | None = None

    def metadata(self) -> list[tuple[str, str]]:
        """`ratelimit-*` (and `retry-after` when refused) as gRPC metadata."""
        md = [
            ("ratelimit-limit", str(self.limit)),
            ("ratelimit-remaining", str(self.remaining)),
            ("ratelimit-reset", str(self.reset)),
        ]
        if self.retry_after is not None:
            md.append(("retry-after", str(max(1, math.ceil(self.retry_after)))))
        return md


class _Bucket:
    __slots__ = ("capacity", "per_second", "tokens", "updated")

    def __init__(self, rate: Rate, now: float) -> None:
        self.capacity = rate.capacity
        self.per_second = rate.capacity / rate.per_seconds
        self.tokens = float(rate.capacity)
        self.updated = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now

    def wait_for_one(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.per_second)

    def until_full(self) -> int:
        return math.ceil((self.capacity - self.tokens) / self.per_second)


class RateLimiter:
    """Token buckets keyed by (account, API). Not thread-safe: one event loop."""

    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._buckets: dict[tuple[str, Api], Sequence[_Bucket]] = {}

    @property
    def enabled(self) -> bool:
        return self._config.enabled

    def acquire(self, account: str, api: Api) -> Decision | None:
        """Takes a token for one request; None when `api` is not limited."""
        rates = self._config.rates.get(api)
        if not self._config.enabled or not rates:
            return None
        now = self._clock()
        buckets = self._buckets.get((account, api))
        if buckets is None:
            buckets = self._buckets[(account, api)] = [_Bucket(rate, now) for rate in rates]
        for bucket in buckets:
            bucket.refill(now)
        allowed = all(bucket.tokens >= 1.0 for bucket in buckets)
        if allowed:
            for bucket in buckets:
                bucket.tokens -= 1.0
        # Report the bucket with the fewest whole tokens left; on a tie, the
        # longer window, which is what upstream's headers describe.
        tightest = min(buckets, key=lambda b: (math.floor(b.tokens), -b.capacity / b.per_second))
        return Decision(
            allowed=allowed,
            limit=tightest.capacity,
            remaining=max(0, math.floor(tightest.tokens)),
            reset=tightest.until_full(),
            retry_after=None if allowed else max(b.wait_for_one() for b in buckets),
        )
