"""``IdempotencyStore`` on SQLite and PostgreSQL: one claim per account and key (also when many
claim at once, through several stores), the answer kept by its owner only, release, takeover of
an expired or abandoned claim, and the sweep."""

from __future__ import annotations

import asyncio

import pytest

from gridgate.core.clock import SystemClock
from gridgate.core.idempotency.flights import Answer
from gridgate.core.idempotency.keys import (
    Claim,
    IdempotencyAnswerNotKept,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotencyKeys,
    check_key,
    request_hash,
)
from gridgate.errors import BadRequest
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


# -- the service over the store: what another process sees, and answers not kept ---------------


def _service(store: SqlStore, *, keep: bool = True, wait: float = 5.0) -> IdempotencyKeys:
    return IdempotencyKeys(
        store, SystemClock(), keep_answers=keep, wait_seconds=wait, poll_seconds=0.01
    )


ENDPOINT = "/v1/chat/completions"
BODY = b'{"model": "m"}'


async def test_a_duplicate_in_another_process_waits_for_the_answer(
    store: SqlStore, db_url: str
) -> None:
    async with SqlStore(db_url) as elsewhere:
        first, second = _service(store), _service(elsewhere)
        digest = request_hash(ENDPOINT, BODY)
        claim = await first.claim("acct_a", "k", ENDPOINT, digest, stream=False)
        assert isinstance(claim, Claim)
        held = await second.claim("acct_a", "k", ENDPOINT, digest, stream=False)
        assert isinstance(held, IdempotencyRecord) and held.status == "running"
        waiting = asyncio.ensure_future(second.settled(held, ENDPOINT, digest))
        answer = Answer(200, {"content-type": "application/json"}, b'{"ok": true}', stream=False)
        await first.finish(claim, answer)
        assert await waiting == answer
        # another body (or endpoint) under the key is refused
        with pytest.raises(IdempotencyKeyReused, match="different request body"):
            await second.settled(held, ENDPOINT, request_hash(ENDPOINT, b"{}"))
        with pytest.raises(IdempotencyKeyReused, match="different request endpoint"):
            await second.settled(held, "/v1/responses", request_hash("/v1/responses", BODY))


async def test_a_duplicate_still_running_elsewhere_at_the_deadline_is_409(
    store: SqlStore, db_url: str
) -> None:
    async with SqlStore(db_url) as elsewhere:
        digest = request_hash(ENDPOINT, BODY)
        assert isinstance(
            await _service(store).claim("acct_a", "k", ENDPOINT, digest, stream=True), Claim
        )
        second = _service(elsewhere, wait=0.05)
        held = await second.claim("acct_a", "k", ENDPOINT, digest, stream=True)
        assert isinstance(held, IdempotencyRecord)
        with pytest.raises(IdempotencyKeyInUse) as refused:
            await second.settled(held, ENDPOINT, digest)
        assert refused.value.status == 409 and refused.value.code == "idempotency_key_in_use"


async def test_a_released_key_is_claimed_by_the_waiting_duplicate(
    store: SqlStore, db_url: str
) -> None:
    async with SqlStore(db_url) as elsewhere:
        first, second = _service(store), _service(elsewhere)
        digest = request_hash(ENDPOINT, BODY)
        claim = await first.claim("acct_a", "k", ENDPOINT, digest, stream=False)
        assert isinstance(claim, Claim)
        held = await second.claim("acct_a", "k", ENDPOINT, digest, stream=False)
        assert isinstance(held, IdempotencyRecord)
        waiting = asyncio.ensure_future(second.settled(held, ENDPOINT, digest))
        await first.release(claim)
        assert await waiting is None
        assert isinstance(await second.claim("acct_a", "k", ENDPOINT, digest, stream=False), Claim)


async def test_with_no_retention_the_key_is_remembered_but_no_answer_is_kept(
    store: SqlStore, db_url: str
) -> None:
    keys = _service(store, keep=False)
    digest = request_hash(ENDPOINT, BODY)
    claim = await keys.claim("acct_a", "k", ENDPOINT, digest, stream=False)
    assert isinstance(claim, Claim)
    await keys.finish(claim, Answer(200, {}, b'{"secret": "content"}', stream=False))
    [(body, status)] = await raw_sql(db_url, "SELECT response_body, status FROM idempotency_keys")
    assert (body, status) == (None, "done")
    held = await keys.claim("acct_a", "k", ENDPOINT, digest, stream=False)
    assert isinstance(held, IdempotencyRecord)
    with pytest.raises(IdempotencyAnswerNotKept) as refused:
        await keys.settled(held, ENDPOINT, digest)
    assert refused.value.status == 409


async def test_the_service_sweeps_expired_keys(store: SqlStore, db_url: str) -> None:
    for i in range(3):
        await store.claim_idempotency_key(_claim(f"o{i}", key=f"k{i}"), NOW)
    keys = IdempotencyKeys(store, SystemClock(), keep_answers=True, sweep_batch=2)
    assert await keys.sweep() == 3
    assert await raw_sql(db_url, "SELECT key FROM idempotency_keys") == []


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
def test_a_key_is_1_to_255_printable_ascii_characters(key: str) -> None:
    with pytest.raises(BadRequest) as refused:
        check_key(key)
    assert refused.value.code == "invalid_idempotency_key"
    assert check_key("x" * 255) == "x" * 255
    assert check_key("a key: ~!") == "a key: ~!"
