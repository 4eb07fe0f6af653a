"""`request_id` idempotency for Create RPCs (AIP-155).

A retry with the same id, from the same account, to the same RPC, within the
TTL (24 h by default) gets the first call's response and creates nothing. A
retry that arrives while the first call is still running gets ABORTED with a
short RetryInfo; a first call that failed leaves nothing behind, so its retry
runs afresh.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from batchgrpc.errors import FieldViolation, InvalidArgument, RequestInProgress
from batchgrpc.store import ClaimState, IdempotencyStore

M = TypeVar("M", bound=Message)

MAX_REQUEST_ID_LENGTH = 128
#: A PENDING claim this old belongs to a process that died mid-call.
STALE_AFTER_SECONDS = 60.0


class Idempotency:
    def __init__(self, store: IdempotencyStore, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock

    async def once(
        self,
        *,
        account: str,
        method: str,
        request_id: str,
        response_type: type[M],
        create: Callable[[], Awaitable[M]],
    ) -> M:
        """Runs `create` once per (account, method, request_id); replays its response."""
        if not request_id:
            return await create()
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidArgument(
                f"request_id is longer than {MAX_REQUEST_ID_LENGTH} characters.",
                violations=[FieldViolation("request_id", f"at most {MAX_REQUEST_ID_LENGTH} characters")],
            )
        claim = await self._store.claim(
            account, method, request_id, now=self._clock(), ttl=self._ttl, stale_after=STALE_AFTER_SECONDS
        )
        if claim.state is ClaimState.DONE:
            assert claim.response is not None
            return response_type.FromString(claim.response)
        if claim.state is ClaimState.PENDING:
            raise RequestInProgress(
                f"A request with request_id {request_id!r} is still being processed; retry shortly.",
                retry_after=1.0,
            )
        try:
            response = await create()
        except BaseException:
            await self._store.release(account, method, request_id)
            raise
        await self._store.complete(account, method, request_id, response.SerializeToString(), now=self._clock())
        return response
