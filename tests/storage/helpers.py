"""What the store contract tests (``test_accounts.py``, ``test_keys.py``, ``test_ledger.py``, …)
share besides the fixtures in ``conftest.py``: times, and builders of accounts, keys, holds and
usage records."""

from __future__ import annotations

import secrets

from gridgate.storage.ports.store import Store
from gridgate.storage.records import AccountRecord, KeyRecord, UsageRecord

NOW = 1_700_000_000_000_000
LATER = NOW + 60_000_000


def _hash() -> str:
    return secrets.token_hex(32)


async def _funded(store: Store, amount: int) -> AccountRecord:
    account = await store.create_account("acme")
    if amount:
        await store.credit(account.id, amount)
    return account


async def _key(store: Store, account_id: str, *, expires_us: int | None = None) -> KeyRecord:
    return await store.create_key(
        account_id=account_id,
        name="k",
        prefix="gg-abc",
        secret_hash=_hash(),
        expires_us=expires_us,
    )


async def _balance(store: Store, account_id: str) -> int:
    account = await store.get_account(account_id)
    assert account is not None
    return account.balance


async def _ledger_sum(store: Store, account_id: str) -> int:
    return sum(e.amount for e in await store.entries(account_id))


async def _held(store: Store, amount: int, hold_id: str = "h1", fund: int = 1_000) -> str:
    a = await _funded(store, fund)
    result = await store.place_hold(
        hold_id=hold_id,
        account_id=a.id,
        key_id=None,
        amount=amount,
        expires_us=LATER,
        now_us=NOW,
    )
    assert result.hold is not None
    return a.id


def _usage(
    request_id: str, created_us: int, account_id: str = "acct_x", **kw: object
) -> UsageRecord:
    fields: dict[str, object] = {
        "key_id": "key_x",
        "instrument": "text-prime",
        "supplier": None,
        "offer_id": None,
        "upstream_model": None,
        "stream": False,
        **kw,
    }
    return UsageRecord(
        request_id=request_id,
        created_us=created_us,
        account_id=account_id,
        **fields,  # type: ignore[arg-type]
    )
