"""The ``LedgerStore`` contract's hot path, run against SQLite and PostgreSQL (see conftest.py):
placing, settling and releasing holds."""

from __future__ import annotations

import pytest

from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.sql import SqlStore
from tests.storage.helpers import LATER, NOW, _balance, _funded, _held, _key, _ledger_sum

# -- holds ------------------------------------------------------------------------------------


async def test_place_hold_success(store: SqlStore) -> None:
    a = await _funded(store, 1_000)
    k = await _key(store, a.id)
    result = await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=k.id, amount=300, expires_us=LATER, now_us=NOW
    )
    assert result.refused is None
    assert result.balance == 700
    assert result.hold is not None
    assert (result.hold.id, result.hold.amount, result.hold.status) == ("h1", 300, "held")
    assert await store.get_hold("h1") == result.hold
    assert await store.get_hold("nope") is None
    entries = await store.entries(a.id)
    assert [(e.kind, e.amount, e.hold_id) for e in entries][-1] == ("hold", -300, "h1")
    assert await _balance(store, a.id) == 700 == await _ledger_sum(store, a.id)
    # no key at all (internal callers)
    keyless = await store.place_hold(
        hold_id="h2", account_id=a.id, key_id=None, amount=700, expires_us=LATER, now_us=NOW
    )
    assert keyless.hold is not None
    assert keyless.balance == 0


async def test_place_hold_exact_balance_then_insufficient(store: SqlStore) -> None:
    a = await _funded(store, 500)
    ok = await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=None, amount=500, expires_us=LATER, now_us=NOW
    )
    assert ok.hold is not None
    assert ok.balance == 0
    refused = await store.place_hold(
        hold_id="h2", account_id=a.id, key_id=None, amount=1, expires_us=LATER, now_us=NOW
    )
    assert (refused.hold, refused.refused, refused.balance) == (None, "insufficient_balance", 0)
    assert await store.get_hold("h2") is None
    assert len(await store.entries(a.id)) == 2


@pytest.mark.parametrize("case", ["revoked", "expired", "other_account", "unknown_key"])
async def test_place_hold_refuses_inactive_key(store: SqlStore, case: str) -> None:
    a = await _funded(store, 1_000)
    other = await _funded(store, 1_000)
    if case == "revoked":
        key_id = (await _key(store, a.id)).id
        await store.revoke_key(key_id)
    elif case == "expired":
        key_id = (await _key(store, a.id, expires_us=NOW)).id  # expiry is exclusive
    elif case == "other_account":
        key_id = (await _key(store, other.id)).id
    else:
        key_id = "key_unknown"
    result = await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=key_id, amount=10, expires_us=LATER, now_us=NOW
    )
    assert (result.hold, result.refused, result.balance) == (None, "key_inactive", 1_000)
    assert await _balance(store, a.id) == 1_000
    assert await store.get_hold("h1") is None


async def test_place_hold_key_valid_until_expiry(store: SqlStore) -> None:
    a = await _funded(store, 1_000)
    k = await _key(store, a.id, expires_us=NOW + 1)
    result = await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=k.id, amount=10, expires_us=LATER, now_us=NOW
    )
    assert result.hold is not None


async def test_place_hold_unknown_account(store: SqlStore) -> None:
    result = await store.place_hold(
        hold_id="h1", account_id="acct_nope", key_id=None, amount=1, expires_us=LATER, now_us=NOW
    )
    assert (result.hold, result.refused, result.balance) == (None, "account_missing", 0)


async def test_place_hold_rejects_negative_amount(store: SqlStore) -> None:
    a = await _funded(store, 10)
    with pytest.raises(ValueError, match="negative"):
        await store.place_hold(
            hold_id="h1", account_id=a.id, key_id=None, amount=-1, expires_us=LATER, now_us=NOW
        )


# -- settle / release -------------------------------------------------------------------------


async def test_settle_below_hold_refunds_the_rest(store: SqlStore) -> None:
    account_id = await _held(store, 400)
    result = await store.settle_hold("h1", 150, now_us=NOW + 1)
    assert (result.charged, result.released, result.already_settled) == (150, 250, False)
    assert await _balance(store, account_id) == 850 == await _ledger_sum(store, account_id)
    hold = await store.get_hold("h1")
    assert hold is not None
    assert (hold.status, hold.charged) == ("settled", 150)
    last = (await store.entries(account_id))[-1]
    assert (last.kind, last.amount, last.hold_id) == ("settle", 250, "h1")


async def test_settle_above_hold_is_clamped(store: SqlStore) -> None:
    account_id = await _held(store, 400)
    result = await store.settle_hold("h1", 10_000, now_us=NOW + 1)
    assert (result.charged, result.released, result.already_settled) == (400, 0, False)
    assert await _balance(store, account_id) == 600 == await _ledger_sum(store, account_id)


async def test_double_settle_is_idempotent(store: SqlStore) -> None:
    account_id = await _held(store, 400)
    first = await store.settle_hold("h1", 100, now_us=NOW + 1)
    second = await store.settle_hold("h1", 300, now_us=NOW + 2)
    assert (second.charged, second.released, second.already_settled) == (100, 300, True)
    assert first.already_settled is False
    assert await _balance(store, account_id) == 900 == await _ledger_sum(store, account_id)
    assert len(await store.entries(account_id)) == 3
    with pytest.raises(NotFoundInStore):
        await store.settle_hold("nope", 1, now_us=NOW)
    with pytest.raises(ValueError, match="negative"):
        await store.settle_hold("h1", -1, now_us=NOW)


async def test_concurrent_settles_settle_once(store: SqlStore) -> None:
    import asyncio

    account_id = await _held(store, 400)
    results = await asyncio.gather(*(store.settle_hold("h1", 100, now_us=NOW) for _ in range(6)))
    assert sum(not r.already_settled for r in results) == 1
    assert {(r.charged, r.released) for r in results} == {(100, 300)}
    assert await _balance(store, account_id) == 900 == await _ledger_sum(store, account_id)


async def test_release_then_settle_is_a_no_op(store: SqlStore) -> None:
    account_id = await _held(store, 400)
    released = await store.release_hold("h1", now_us=NOW + 1)
    assert (released.charged, released.released, released.already_settled) == (0, 400, False)
    assert await _balance(store, account_id) == 1_000
    hold = await store.get_hold("h1")
    assert hold is not None
    assert hold.status == "released"
    late = await store.settle_hold("h1", 200, now_us=NOW + 2)
    assert (late.charged, late.released, late.already_settled) == (0, 400, True)
    again = await store.release_hold("h1", now_us=NOW + 3)
    assert again.already_settled is True
    assert await _balance(store, account_id) == 1_000 == await _ledger_sum(store, account_id)
    kinds = [(e.kind, e.amount) for e in await store.entries(account_id)]
    assert kinds == [("credit", 1_000), ("hold", -400), ("release", 400)]
    with pytest.raises(NotFoundInStore):
        await store.release_hold("nope", now_us=NOW)


async def test_settle_released_hold_after_settle_keeps_charge(store: SqlStore) -> None:
    await _held(store, 400)
    await store.settle_hold("h1", 400, now_us=NOW + 1)
    result = await store.release_hold("h1", now_us=NOW + 2)
    assert (result.charged, result.released, result.already_settled) == (400, 0, True)
