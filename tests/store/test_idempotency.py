"""IdempotencyStore: request ids claimed, completed, released and forgotten;
and the request_id layer (`batchgrpc.idempotency`) on top of it."""

from __future__ import annotations

import asyncio
import time

import pytest

from batchgrpc.errors import InvalidArgument, RequestIdReused, RequestInProgress
from batchgrpc.idempotency import Idempotency, fingerprint
from batchgrpc.owner import process_owner, start_ticks
from batchgrpc.store import Claim, ClaimState, Store
from batchgrpc.track.v2 import tracking_pb2
from tests.store.build import T0
from tests.store.conftest import OpenStore

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
    await claim(store, "a3", owner="w1")
    await claim(store, "b1", owner="w2")
    await claim(store, "c1", owner="w3")
    await store.idempotency.complete("acme", "/m", "c1", b"resp", now=T0)
    # A done claim has no owner to wait for.
    assert sorted(await store.idempotency.pending_owners()) == ["w1", "w2"]
    # w1's finished call keeps its answer when w1 is found dead.
    await store.idempotency.complete("acme", "/m", "a3", b"resp", now=T0)
    assert await store.idempotency.release_owner("w1") == 2
    assert await store.idempotency.release_owner("w1") == 0
    assert await store.idempotency.pending_owners() == ["w2"]
    assert (await claim(store, "a1", now=T0 + 1, owner="w4")).state is ClaimState.NEW
    assert (await claim(store, "a3", now=T0 + 1, owner="w4")).state is ClaimState.DONE
    assert (await claim(store, "b1", now=T0 + 1, owner="w4")).state is ClaimState.PENDING
    assert (await claim(store, "c1", now=T0 + 1, owner="w4")).state is ClaimState.DONE


# --- the request_id layer (`batchgrpc.idempotency`) over each backend ---------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_same_request_id_returns_the_first_result_and_creates_once(store: Store) -> None:
    clock = Clock()
    idem = Idempotency(store.idempotency, ttl_seconds=24 * 3600, clock=clock)
    created = []

    async def create() -> tracking_pb2.GetSystemTimeResponse:
        created.append(1)
        return tracking_pb2.GetSystemTimeResponse(success=True, time=len(created))

    kwargs = {
        "method": "/m",
        "request_id": "r1",
        "request": b"same",
        "response_type": tracking_pb2.GetSystemTimeResponse,
    }
    first = await idem.once(account="acme", create=create, **kwargs)  # type: ignore[arg-type]
    clock.now += 23 * 3600
    second = await idem.once(account="acme", create=create, **kwargs)  # type: ignore[arg-type]
    assert first == second
    assert len(created) == 1
    # Another account's identical id is its own.
    await idem.once(account="other", create=create, **kwargs)  # type: ignore[arg-type]
    assert len(created) == 2
    # Past 24 h the id is forgotten.
    clock.now += 2 * 3600
    third = await idem.once(account="acme", create=create, **kwargs)  # type: ignore[arg-type]
    assert third.time == 3


async def test_a_failed_first_call_leaves_nothing_and_a_concurrent_retry_waits(store: Store) -> None:
    idem = Idempotency(store.idempotency, ttl_seconds=3600)
    release = asyncio.Event()

    async def slow() -> tracking_pb2.GetSystemTimeResponse:
        await release.wait()
        return tracking_pb2.GetSystemTimeResponse(success=True)

    async def failing() -> tracking_pb2.GetSystemTimeResponse:
        raise InvalidArgument("bad")

    kwargs = {"account": "a", "method": "/m", "request": b"r", "response_type": tracking_pb2.GetSystemTimeResponse}
    with pytest.raises(InvalidArgument):
        await idem.once(request_id="f", create=failing, **kwargs)  # type: ignore[arg-type]
    claimed = await store.idempotency.claim(
        "a", "/m", "f", fingerprint=b"", owner="o", now=1e12, ttl=1e13, stale_after=60
    )
    assert claimed.state is ClaimState.NEW

    first = asyncio.create_task(idem.once(request_id="s", create=slow, **kwargs))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    with pytest.raises(RequestInProgress) as caught:
        await idem.once(request_id="s", create=slow, **kwargs)  # type: ignore[arg-type]
    assert caught.value.retry_after == 1.0
    release.set()
    assert (await first).success

    with pytest.raises(InvalidArgument, match="128"):
        await idem.once(request_id="x" * 129, create=slow, **kwargs)  # type: ignore[arg-type]


async def test_a_reused_request_id_with_another_request_is_refused(store: Store) -> None:
    idem = Idempotency(store.idempotency, ttl_seconds=3600)
    created = []

    async def create() -> tracking_pb2.GetSystemTimeResponse:
        created.append(1)
        return tracking_pb2.GetSystemTimeResponse(success=True)

    kwargs = {"account": "a", "method": "/m", "request_id": "r", "response_type": tracking_pb2.GetSystemTimeResponse}
    await idem.once(request=tracking_pb2.GetSystemTimeRequest(project_token="p"), create=create, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(RequestIdReused):
        await idem.once(request=tracking_pb2.GetSystemTimeRequest(project_token="q"), create=create, **kwargs)  # type: ignore[arg-type]
    await idem.once(request=tracking_pb2.GetSystemTimeRequest(project_token="p"), create=create, **kwargs)  # type: ignore[arg-type]
    assert len(created) == 1


async def test_a_claim_of_a_dead_process_is_taken_over_at_once(store: Store) -> None:
    # A process that ran and is gone: its pid and start time name nobody now.
    child = await asyncio.create_subprocess_exec("true")
    await child.wait()
    dead = f"{process_owner().split('/')[0]}/{child.pid}/1"
    alive = f"{process_owner().split('/')[0]}/1/{start_ticks(1)}"
    elsewhere = "another-host/123/456"
    kwargs = {"account": "a", "method": "/m", "request": b"r", "response_type": tracking_pb2.GetSystemTimeResponse}

    async def create() -> tracking_pb2.GetSystemTimeResponse:
        return tracking_pb2.GetSystemTimeResponse(success=True)

    for request_id, owner in (("dead", dead), ("alive", alive), ("elsewhere", elsewhere)):
        claimed = await store.idempotency.claim(
            "a", "/m", request_id, fingerprint=fingerprint(b"r"), owner=owner, now=time.time(), ttl=3600,
            stale_after=60,
        )  # fmt: skip
        assert claimed.state is ClaimState.NEW
    idem = Idempotency(store.idempotency, ttl_seconds=3600)
    # The dead process's call runs at once; the others still hold theirs.
    assert (await idem.once(request_id="dead", create=create, **kwargs)).success  # type: ignore[arg-type]
    for request_id in ("alive", "elsewhere"):
        with pytest.raises(RequestInProgress):
            await idem.once(request_id=request_id, create=create, **kwargs)  # type: ignore[arg-type]
    # And a restart frees every claim of a dead process before serving.
    await store.idempotency.claim(
        "a", "/m", "dead2", fingerprint=b"", owner=dead, now=time.time(), ttl=3600, stale_after=60
    )
    assert await idem.release_abandoned() == 1
    assert set(await store.idempotency.pending_owners()) == {alive, elsewhere}


async def test_two_stores_claiming_one_request_id_at_once_give_it_to_one(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    for i in range(10):
        claims = await asyncio.gather(
            claim(first, f"r{i}", owner="w1", fingerprint=b"one"),
            claim(second, f"r{i}", owner="w2", fingerprint=b"two"),
        )
        new = [c for c in claims if c.state is ClaimState.NEW]
        pending = [c for c in claims if c.state is ClaimState.PENDING]
        assert (len(new), len(pending)) == (1, 1)
        # The loser is told who won, with the winner's fingerprint.
        winner = "w1" if claims[0].state is ClaimState.NEW else "w2"
        assert (pending[0].owner, pending[0].fingerprint) == (winner, b"one" if winner == "w1" else b"two")
