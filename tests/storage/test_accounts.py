"""The ``AccountStore`` contract, run against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import re

import pytest

from gridgate.storage.ports.errors import IdempotencyConflict, NotFoundInStore
from gridgate.storage.sql import SqlStore
from tests.storage.helpers import _balance, _funded, _ledger_sum

# -- accounts ---------------------------------------------------------------------------------


async def test_create_get_list_accounts(store: SqlStore) -> None:
    a = await store.create_account("alpha")
    b = await store.create_account("beta")
    assert re.fullmatch(r"acct_[0-9a-f]{24}", a.id)
    assert a.balance == 0
    assert a.name == "alpha"
    assert await store.get_account(a.id) == a
    assert await store.get_account("acct_missing") is None
    listed = await store.list_accounts()
    assert [x.id for x in listed] == [a.id, b.id]


async def test_credit_appends_and_moves_balance(store: SqlStore) -> None:
    a = await store.create_account("a")
    entry = await store.credit(a.id, 5_000, memo="top-up")
    assert (entry.kind, entry.amount, entry.memo, entry.account_id) == (
        "credit",
        5_000,
        "top-up",
        a.id,
    )
    await store.credit(a.id, 7)
    assert await _balance(store, a.id) == 5_007
    assert await store.entries(a.id) == [entry, (await store.entries(a.id))[1]]
    assert await _ledger_sum(store, a.id) == 5_007


async def test_credit_validation(store: SqlStore) -> None:
    a = await store.create_account("a")
    with pytest.raises(ValueError, match="positive"):
        await store.credit(a.id, 0)
    with pytest.raises(ValueError, match="positive"):
        await store.credit(a.id, -5)
    with pytest.raises(NotFoundInStore):
        await store.credit("acct_nope", 10)
    with pytest.raises(NotFoundInStore):
        await store.credit("acct_nope", -10, kind="adjustment")
    assert await store.entries(a.id) == []


async def test_credit_idempotency(store: SqlStore) -> None:
    a = await store.create_account("a")
    b = await store.create_account("b")
    first = await store.credit(a.id, 1_000, idempotency_key="pay-1")
    again = await store.credit(a.id, 1_000, idempotency_key="pay-1", memo="other memo")
    assert again == first
    assert await _balance(store, a.id) == 1_000
    with pytest.raises(IdempotencyConflict):
        await store.credit(a.id, 2_000, idempotency_key="pay-1")
    with pytest.raises(IdempotencyConflict):
        await store.credit(b.id, 1_000, idempotency_key="pay-1")
    with pytest.raises(IdempotencyConflict):
        await store.credit(a.id, 1_000, idempotency_key="pay-1", kind="adjustment")
    assert await _balance(store, a.id) == 1_000
    assert await _balance(store, b.id) == 0
    assert len(await store.entries(a.id)) == 1


async def test_concurrent_replays_of_one_idempotency_key_credit_once(store: SqlStore) -> None:
    import asyncio

    a = await store.create_account("a")
    results = await asyncio.gather(
        *(store.credit(a.id, 300, idempotency_key="same") for _ in range(8))
    )
    assert len({r.id for r in results}) == 1
    assert await _balance(store, a.id) == 300
    assert (await store.verify_ledger()).ok


async def test_adjustment_any_sign_but_never_below_zero(store: SqlStore) -> None:
    a = await _funded(store, 100)
    down = await store.credit(a.id, -60, kind="adjustment", memo="goodwill reversal")
    assert (down.kind, down.amount) == ("adjustment", -60)
    with pytest.raises(ValueError, match="below zero"):
        await store.credit(a.id, -41, kind="adjustment")
    assert await _balance(store, a.id) == 40
    await store.credit(a.id, -40, kind="adjustment")
    assert await _balance(store, a.id) == 0
    assert await _ledger_sum(store, a.id) == 0
