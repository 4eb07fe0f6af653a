"""KeyStore: API keys as stored."""

from __future__ import annotations

from batchgrpc.store import Store
from tests.store.build import T0, key


async def test_a_created_key_reads_back_whole(store: Store) -> None:
    created = key("bgk_a", scopes=frozenset({"events:read", "events:write"}), public=True)
    await store.keys.create(created)
    assert await store.keys.get("bgk_a") == created
    assert await store.keys.get("bgk_missing") is None


async def test_create_if_none_stores_only_the_very_first_key(store: Store) -> None:
    assert await store.keys.create_if_none(key("bgk_first"))
    assert not await store.keys.create_if_none(key("bgk_second", account="other"))
    assert await store.keys.get("bgk_second") is None
    assert [k.key_id for k in await store.keys.list()] == ["bgk_first"]


async def test_create_if_none_stores_nothing_when_a_key_exists(store: Store) -> None:
    await store.keys.create(key("bgk_made"))
    assert not await store.keys.create_if_none(key("bgk_first"))
    assert await store.keys.get("bgk_first") is None


async def test_list_is_oldest_first_of_one_account_or_of_all(store: Store) -> None:
    # Created out of order: the list orders by creation time, not insertion.
    await store.keys.create(key("bgk_c", created=T0 + 3))
    await store.keys.create(key("bgk_a", created=T0 + 1))
    await store.keys.create(key("bgk_x", account="other", created=T0 + 2))
    assert [k.key_id for k in await store.keys.list()] == ["bgk_a", "bgk_x", "bgk_c"]
    assert [k.key_id for k in await store.keys.list("acme")] == ["bgk_a", "bgk_c"]
    assert [k.key_id for k in await store.keys.list("other")] == ["bgk_x"]
    assert await store.keys.list("nobody") == []


async def test_revoke_marks_a_key_once(store: Store) -> None:
    await store.keys.create(key("bgk_a"))
    await store.keys.create(key("bgk_b"))
    revoked = await store.keys.revoke("bgk_a", T0 + 20)
    assert revoked is not None
    assert revoked.revoked
    assert revoked.revoked_time == T0 + 20
    # A second revoke keeps the first time.
    again = await store.keys.revoke("bgk_a", T0 + 30)
    assert again is not None
    assert again.revoked_time == T0 + 20
    assert await store.keys.get("bgk_a") == revoked
    # Nothing else changed.
    other = await store.keys.get("bgk_b")
    assert other is not None
    assert not other.revoked
    assert await store.keys.revoke("bgk_missing", T0 + 30) is None
