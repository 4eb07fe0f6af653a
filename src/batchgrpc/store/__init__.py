"""The storage interface: narrow, async, and free of SQL.

Servicers and the auth layer see only these protocols. The embedded SQLite
store (`batchgrpc.store.sqlite`) is the default; a PostgreSQL store for
multi-replica deployments implements the same protocols.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: never the secret, only its keyed hash."""

    key_id: str
    account: str
    #: HMAC-SHA-256(pepper, key_id ":" secret).
    secret_hash: bytes
    scopes: frozenset[str]
    public: bool
    created_time: float
    revoked_time: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_time is not None


class ClaimState(enum.Enum):
    """What `IdempotencyStore.claim` found for a request id."""

    #: Nobody had it: the caller now owns it and must `complete` or `release`.
    NEW = "new"
    #: A first call finished: `Claim.response` is its serialized response.
    DONE = "done"
    #: A first call is still running.
    PENDING = "pending"


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    response: bytes | None = None


class KeyStore(Protocol):
    async def create(self, key: ApiKey) -> None:
        """Stores a new key (and its account, if new)."""

    async def create_if_none(self, key: ApiKey) -> bool:
        """Stores `key` only when there are no keys at all; says whether it did."""

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def list(self, account: str | None = None) -> list[ApiKey]:
        """Keys, oldest first, of one account or of all."""

    async def revoke(self, key_id: str, now: float) -> ApiKey | None:
        """Marks a key revoked (once); None when there is no such key."""


class IdempotencyStore(Protocol):
    async def claim(
        self, account: str, method: str, request_id: str, *, now: float, ttl: float, stale_after: float
    ) -> Claim:
        """Takes a request id for a first call, or reports the first call's outcome.

        Records older than `ttl` are forgotten; a PENDING claim older than
        `stale_after` (its process died) is taken over.
        """

    async def complete(self, account: str, method: str, request_id: str, response: bytes, *, now: float) -> None: ...

    async def release(self, account: str, method: str, request_id: str) -> None:
        """Drops a claim whose call failed, so a retry can run again."""


class Store(Protocol):
    keys: KeyStore
    idempotency: IdempotencyStore

    async def close(self) -> None: ...
