"""Per-account, per-API token buckets, with the RateLimit-* figures to report.

A request takes one token from every bucket of its API (Klaviyo bulk events
has two: a 1 s burst and a 1 min steady window) or from none when any is
empty.

The decisions are made here; the buckets live in the store
(`batchgrpc.store.RateLimitStore`), so every worker process and every
replica on one store spends one budget per account and API. Each request
is one atomic read-modify-write of its (account, API) record, and the
function that runs inside it (`_take`) reads the clock there, while the
record is held: updates of one record are ordered, and so are their times.

Time is the wall clock, the one clock that processes (and hosts) share.
Clock steps are guarded against: a reading behind the record's time refills
nothing (tokens never grow on a step back, and never go negative); a step
back of more than `CLOCK_SKEW` moves the record's time back with it, so the
account is not starved until the clock catches up again. A step forward
refills at most to full, which an idle account would have anyway.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchgrpc.config import Rate, RateLimitConfig
from batchgrpc.errors import Api
from batchgrpc.store import LimitRecord, RateLimitStore

#: Seconds a reading may be behind a record's time and still be taken as
#: the clocks of two hosts disagreeing (replicas on PostgreSQL) rather than
#: the clock stepping back. NTP keeps hosts within milliseconds.
CLOCK_SKEW = 1.0


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
            md.append(("retry-after", str(self.retry_after_seconds)))
        return md

    @property
    def retry_after_seconds(self) -> int:
        """`retry_after` as the whole seconds clients parse (`int(Retry-After)`),
        rounded up and at least 1; the same figure the refusal's message says."""
        return max(1, math.ceil(self.retry_after or 0.0))


class RateLimiter:
    """Token buckets keyed by (account, API), kept in `store`."""

    def __init__(self, config: RateLimitConfig, store: RateLimitStore, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._store = store
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._config.enabled

    async def acquire(self, account: str, api: Api) -> Decision | None:
        """Takes a token for one request; None when `api` is not limited
        (and then the store is not asked)."""
        rates = self._config.rates.get(api)
        if not self._config.enabled or not rates:
            return None
        return await self._store.update(account, api.value, functools.partial(_take, rates, self._clock))


def _take(
    rates: Sequence[Rate], clock: Callable[[], float], record: LimitRecord | None
) -> tuple[LimitRecord, Decision]:
    """The buckets after one request, and the decision: runs inside the
    store's read-modify-write."""
    now = clock()
    tokens, updated = _refilled(rates, record, now)
    allowed = all(t >= 1.0 for t in tokens)
    if allowed:
        tokens = [t - 1.0 for t in tokens]
    # Report the bucket with the fewest whole tokens left; on a tie, the
    # longer window, which is what upstream's headers describe.
    tightest = min(range(len(rates)), key=lambda i: (math.floor(tokens[i]), -rates[i].per_seconds))
    rate, left = rates[tightest], tokens[tightest]
    decision = Decision(
        allowed=allowed,
        limit=rate.capacity,
        remaining=max(0, math.floor(left)),
        reset=math.ceil((rate.capacity - left) / _per_second(rate)),
        retry_after=None if allowed else max(_wait_for_one(r, t) for r, t in zip(rates, tokens, strict=True)),
    )
    return LimitRecord(tuple(tokens), updated), decision


def _refilled(rates: Sequence[Rate], record: LimitRecord | None, now: float) -> tuple[list[float], float]:
    """Each bucket's tokens at `now`, and the time to store with them."""
    if record is None or len(record.tokens) != len(rates):
        # A new account, or the API's rates were configured anew: full.
        return [float(rate.capacity) for rate in rates], now
    elapsed = now - record.updated
    if elapsed < -CLOCK_SKEW:
        # The clock stepped back: start again from here, with what was left.
        elapsed, updated = 0.0, now
    else:
        elapsed, updated = max(0.0, elapsed), max(record.updated, now)
    # Clamped both ways: a lowered capacity, or a record nobody should trust.
    return [
        min(float(rate.capacity), max(0.0, left + elapsed * _per_second(rate)))
        for rate, left in zip(rates, record.tokens, strict=True)
    ], updated


def _per_second(rate: Rate) -> float:
    return rate.capacity / rate.per_seconds


def _wait_for_one(rate: Rate, tokens: float) -> float:
    return max(0.0, (1.0 - tokens) / _per_second(rate))
