"""`request_id` idempotency for Create RPCs (AIP-155).

A retry with the same id, from the same account, to the same RPC, within the
TTL (24 h by default) gets the first call's response and creates nothing. A
retry that arrives while the first call is still running gets ABORTED with a
short RetryInfo; a first call that failed leaves nothing behind, so its retry
runs afresh.

The claim keeps a fingerprint of the request: the same id with a different
request is ALREADY_EXISTS (REQUEST_ID_REUSED), never the first call's answer.
It also keeps its owner, the server process that runs the call: a claim
whose process is gone (killed mid-call) is taken over at once, not after
`STALE_AFTER_SECONDS`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from batchgrpc.errors import FieldViolation, InvalidArgument, RequestIdReused, RequestInProgress
from batchgrpc.owner import owner_is_gone, process_owner
from batchgrpc.requests import MAX_REQUEST_ID
from batchgrpc.store import ClaimState, IdempotencyStore

M = TypeVar("M", bound=Message)

#: A PENDING claim this old is taken over even when its owner cannot be
#: checked (a process on another host).
STALE_AFTER_SECONDS = 60.0


def fingerprint(request: Message | bytes) -> bytes:
    """What makes two requests the same request."""
    data = request if isinstance(request, bytes) else request.SerializeToString(deterministic=True)
    return hashlib.sha256(data).digest()


class Idempotency:
    def __init__(
        self,
        store: IdempotencyStore,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._owner = owner or process_owner()

    async def release_abandoned(self) -> int:
        """Frees the claims of calls whose server process died mid-call (a
        restart after a SIGKILL); returns how many."""
        released = 0
        for owner in await self._store.pending_owners():
            if owner != self._owner and owner_is_gone(owner):
                released += await self._store.release_owner(owner)
        return released

    async def once(
        self,
        *,
        account: str,
        method: str,
        request_id: str,
        request: Message | bytes,
        response_type: type[M],
        create: Callable[[], Awaitable[M]],
        replayed: Callable[[M], Awaitable[None]] | None = None,
    ) -> M:
        """Runs `create` once per (account, method, request_id); replays its
        response to a retry of the same `request`. `replayed` may refuse a
        replay (raise) that this caller must not see."""
        if not request_id:
            return await create()
        if len(request_id) > MAX_REQUEST_ID:
            # Checked here for the requests the core decodes (the others
            # were held to `requests.LIMITS` already).
            raise InvalidArgument(
                f"request_id is longer than {MAX_REQUEST_ID} characters.",
                violations=[FieldViolation("request_id", f"at most {MAX_REQUEST_ID} characters")],
            )
        digest = fingerprint(request)
        for _ in range(2):
            claim = await self._store.claim(
                account,
                method,
                request_id,
                fingerprint=digest,
                owner=self._owner,
                now=self._clock(),
                ttl=self._ttl,
                stale_after=STALE_AFTER_SECONDS,
            )
            if claim.state is ClaimState.NEW:
                break
            if claim.fingerprint is not None and claim.fingerprint != digest:
                raise RequestIdReused(
                    "This request_id was used with a different request; send a new request_id for a new request.",
                    violations=[FieldViolation("request_id", "already used with a different request")],
                )
            if claim.state is ClaimState.DONE:
                assert claim.response is not None
                response = response_type.FromString(claim.response)
                if replayed is not None:
                    await replayed(response)
                return response
            if not (claim.owner and claim.owner != self._owner and owner_is_gone(claim.owner)):
                raise RequestInProgress(
                    "A request with this request_id is still being processed; retry shortly.",
                    retry_after=1.0,
                )
            # Its server died mid-call: the call never finished; run it now.
            await self._store.release_owner(claim.owner)
        else:
            raise RequestInProgress("A request with this request_id is still being processed; retry shortly.")
        try:
            response = await create()
        except BaseException:
            await self._store.release(account, method, request_id)
            raise
        await self._store.complete(account, method, request_id, response.SerializeToString(), now=self._clock())
        return response
