"""IdempotencyStore: request ids claimed, completed, released and forgotten."""

from __future__ import annotations

from batchgrpc.store import Claim, ClaimState, Store
from tests.store.build import T0

TTL = 24 * 3600.0
STALE = 60.0


async def claim(
    store: Store,
    request_id: str = "r1",
    *,
    now: float = T0,
    owner: str = "w1",
    fingerprint: bytes = b"fp1",
    account: str = "acme",
    method: str = "/m",
) -> Claim:
    return await store.idempotency.claim(
        account,
        method,
        request_id,
        fingerprint=fingerprint,
        owner=owner,
        now=now,
        ttl=TTL,
        stale_after=STALE,
    )


async def test_a_first_claim_is_new_and_a_second_finds_it_pending_with_its_fingerprint_and_owner(store: Store) -> None:
    first = await claim(store, fingerprint=b"first", owner="w1")
    assert first.state is ClaimState.NEW
    second = await claim(store, now=T0 + 1, fingerprint=b"second", owner="w2")
    assert second.state is ClaimState.PENDING
    assert second.fingerprint == b"first"
    assert second.owner == "w1"


async def test_a_completed_claim_is_done_with_its_response_and_first_fingerprint(store: Store) -> None:
    await claim(store, fingerprint=b"first")
    await store.idempotency.complete("acme", "/m", "r1", b"the response", now=T0 + 1)
    done = await claim(store, now=T0 + 2, fingerprint=b"other")
    assert done.state is ClaimState.DONE
    assert done.response == b"the response"
    assert done.fingerprint == b"first"
    # Long past stale_after a DONE claim is still DONE: only PENDING ones are taken over.
    later = await claim(store, now=T0 + 10 * STALE)
    assert later.state is ClaimState.DONE


async def test_a_request_id_is_its_accounts_and_its_methods(store: Store) -> None:
    assert (await claim(store)).state is ClaimState.NEW
    assert (await claim(store, account="other")).state is ClaimState.NEW
    assert (await claim(store, method="/n")).state is ClaimState.NEW
    assert (await claim(store, "r2")).state is ClaimState.NEW
    assert (await claim(store)).state is ClaimState.PENDING


async def test_records_past_the_ttl_are_forgotten(store: Store) -> None:
    await claim(store, fingerprint=b"first")
    await store.idempotency.complete("acme", "/m", "r1", b"resp", now=T0)
    within = await claim(store, now=T0 + TTL - 1)
    assert within.state is ClaimState.DONE
    past = await claim(store, now=T0 + TTL + 1, fingerprint=b"again")
    assert past.state is ClaimState.NEW
    # The new claim is a first call of its own, with its own fingerprint.
    assert (await claim(store, now=T0 + TTL + 2)).fingerprint == b"again"


async def test_a_pending_claim_older_than_stale_after_is_taken_over(store: Store) -> None:
    await claim(store, owner="w1", fingerprint=b"first")
    assert (await claim(store, now=T0 + STALE - 1, owner="w2")).state is ClaimState.PENDING
    taken = await claim(store, now=T0 + STALE + 1, owner="w2", fingerprint=b"second")
    assert taken.state is ClaimState.NEW
    # Now w2 runs it, with w2's fingerprint, from the time it took over.
    seen = await claim(store, now=T0 + STALE + 2, owner="w3")
    assert (seen.state, seen.owner, seen.fingerprint) == (ClaimState.PENDING, "w2", b"second")
    assert await store.idempotency.pending_owners() == ["w2"]


async def test_release_drops_a_failed_call_so_a_retry_runs_again(store: Store) -> None:
    await claim(store)
    await claim(store, "r2")
    await store.idempotency.release("acme", "/m", "r1")
    assert (await claim(store, now=T0 + 1, owner="w2")).state is ClaimState.NEW
    # Only that claim.
    assert (await claim(store, "r2", now=T0 + 1)).state is ClaimState.PENDING


async def test_pending_owners_and_release_owner(store: Store) -> None:
    await claim(store, "a1", owner="w1")
    await claim(store, "a2", owner="w1")
    await claim(store, "b1", owner="w2")
    await claim(store, "c1", owner="w3")
    await store.idempotency.complete("acme", "/m", "c1", b"resp", now=T0)
    # A done claim has no owner to wait for.
    assert sorted(await store.idempotency.pending_owners()) == ["w1", "w2"]
    assert await store.idempotency.release_owner("w1") == 2
    assert await store.idempotency.release_owner("w1") == 0
    assert await store.idempotency.pending_owners() == ["w2"]
    assert (await claim(store, "a1", now=T0 + 1, owner="w4")).state is ClaimState.NEW
    assert (await claim(store, "b1", now=T0 + 1, owner="w4")).state is ClaimState.PENDING
    assert (await claim(store, "c1", now=T0 + 1, owner="w4")).state is ClaimState.DONE
