"""``IdempotencyStore`` on SQLite and PostgreSQL: one claim per account and key (also when many
claim at once, through several stores), the answer kept by its owner only, release, takeover of
an expired or abandoned claim, and the sweep."""

from __future__ import annotations

import asyncio

from gridgate.storage.ports.idempotency import IdempotencyRecord
from gridgate.storage.sql import SqlStore
from tests.storage.conftest import raw_sql

NOW = 1_000_000_000


def _claim(
    owner: str, *, account: str = "acct_a", key: str = "k1", digest: str = "h1"
) -> IdempotencyRecord:
    return IdempotencyRecord(
        account_id=account,
        key=key,
        request_hash=digest,
        endpoint="/v1/chat/completions",
        status="running",
        stream=False,
        owner=owner,
        created_us=NOW,
        expires_us=NOW + 1000,
        stale_us=NOW + 100,
    )


async def test_the_first_claim_wins_and_the_second_sees_it(store: SqlStore) -> None:
    assert await store.claim_idempotency_key(_claim("o1"), NOW) is None
    held = await store.claim_idempotency_key(_claim("o2", digest="h2"), NOW + 1)
    assert held is not None
    assert (held.owner, held.request_hash, held.status) == ("o1", "h1", "running")


async def test_another_account_has_its_own_key(store: SqlStore) -> None:
    assert await store.claim_idempotency_key(_claim("o1"), NOW) is None
    assert await store.claim_idempotency_key(_claim("o2", account="acct_b"), NOW) is None


async def test_only_the_owner_finishes_and_the_answer_is_read_back(store: SqlStore) -> None:
    await store.claim_idempotency_key(_claim("o1"), NOW)
    answer = {"response_status": 200, "response_headers": '{"a": "b"}', "response_body": "{}"}
    assert not await store.finish_idempotency_key("acct_a", "k1", "o2", **answer)  # type: ignore[arg-type]
    assert await store.finish_idempotency_key("acct_a", "k1", "o1", **answer)  # type: ignore[arg-type]
    done = await store.get_idempotency_key("acct_a", "k1", NOW + 1)
    assert done is not None
    assert (done.status, done.response_status, done.response_body) == ("done", 200, "{}")
    assert done.response_headers == '{"a": "b"}'
    # a done answer is not released, nor taken over once "stale"
    await store.release_idempotency_key("acct_a", "k1", "o1")
    assert await store.claim_idempotency_key(_claim("o3"), NOW + 500) is not None
    # nor found, nor held, once expired
    assert await store.get_idempotency_key("acct_a", "k1", NOW + 1000) is None
    assert await store.claim_idempotency_key(_claim("o4"), NOW + 1000) is None


async def test_a_released_claim_can_be_claimed_again(store: SqlStore) -> None:
    await store.claim_idempotency_key(_claim("o1"), NOW)
    await store.release_idempotency_key("acct_a", "k1", "someone-else")
    assert await store.claim_idempotency_key(_claim("o2"), NOW) is not None
    await store.release_idempotency_key("acct_a", "k1", "o1")
    assert await store.get_idempotency_key("acct_a", "k1", NOW) is None
    assert await store.claim_idempotency_key(_claim("o2"), NOW) is None


async def test_an_abandoned_running_claim_is_taken_over(store: SqlStore) -> None:
    await store.claim_idempotency_key(_claim("o1"), NOW)
    assert await store.claim_idempotency_key(_claim("o2"), NOW + 99) is not None
    assert await store.claim_idempotency_key(_claim("o2"), NOW + 100) is None
    found = await store.get_idempotency_key("acct_a", "k1", NOW + 100)
    assert found is not None and found.owner == "o2"


async def test_concurrent_claims_through_several_stores_land_once(
    store: SqlStore, db_url: str
) -> None:
    others = [SqlStore(db_url) for _ in range(3)]
    for other in others:
        await other.open()
    try:
        stores = [store, *others]
        claims = [stores[i % 4].claim_idempotency_key(_claim(f"o{i}"), NOW) for i in range(24)]
        results = await asyncio.gather(*claims)
    finally:
        for other in others:
            await other.close()
    winners = [i for i, held in enumerate(results) if held is None]
    assert len(winners) == 1
    assert {held.owner for held in results if held is not None} == {f"o{winners[0]}"}


async def test_the_sweep_deletes_expired_rows_in_batches(store: SqlStore, db_url: str) -> None:
    for i in range(5):
        await store.claim_idempotency_key(_claim(f"o{i}", key=f"k{i}"), NOW)
    await store.claim_idempotency_key(_late(), NOW)
    assert await store.delete_expired_idempotency_keys(NOW + 999, batch=2) == 0
    assert await store.delete_expired_idempotency_keys(NOW + 1000, batch=2) == 2
    assert await store.delete_expired_idempotency_keys(NOW + 1000, batch=10) == 3
    [(left,)] = await raw_sql(db_url, "SELECT key FROM idempotency_keys")
    assert left == "late"


def _late() -> IdempotencyRecord:
    base = _claim("late", key="late")
    return IdempotencyRecord(
        **{f: getattr(base, f) for f in base.__struct_fields__ if f != "expires_us"},
        expires_us=NOW + 5000,
    )
