"""Accounts and keys as operations: what the CLI (and later the management API) calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gridgate.core.clock import Clock
from gridgate.core.keys import mint_key
from gridgate.errors import NotFound, ValidationFailed
from gridgate.money import MoneyError, usd_to_nanos
from gridgate.storage.ports import AccountBalance, NotFoundInStore, Store
from gridgate.storage.records import AccountRecord, KeyRecord, LedgerEntry


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    secret: str  # shown once


def parse_expiry(text: str, *, now_us: int) -> int:
    """ISO 8601 → unix µs. A time without zone is UTC. Must be in the future."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed(
            f"expires_at: not an ISO 8601 time: {text!r}", param="expires_at"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    micros = int(moment.timestamp() * 1_000_000)
    if micros <= now_us:
        raise ValidationFailed("expires_at: must be in the future", param="expires_at")
    return micros


class Accounts:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, name: str) -> AccountRecord:
        if not name.strip():
            raise ValidationFailed("name: must not be empty", param="name")
        return await self._store.create_account(name.strip())

    async def get(self, account_id: str) -> AccountRecord:
        account = await self._store.get_account(account_id)
        if account is None:
            raise NotFound(f"no account {account_id!r}")
        return account

    async def balance(self, account_id: str) -> AccountBalance:
        balance = await self._store.account_balance(account_id)
        if balance is None:
            raise NotFound(f"no account {account_id!r}")
        return balance

    async def list_all(self) -> list[AccountRecord]:
        return await self._store.list_accounts()

    async def credit(
        self,
        account_id: str,
        usd: str,
        *,
        idempotency_key: str | None = None,
        memo: str | None = None,
    ) -> tuple[LedgerEntry, AccountRecord]:
        try:
            amount = usd_to_nanos(usd)
        except MoneyError as exc:
            raise ValidationFailed(f"amount: {exc}", param="amount") from exc
        if amount <= 0:
            raise ValidationFailed("amount: must be positive", param="amount")
        try:
            entry = await self._store.credit(
                account_id, amount, idempotency_key=idempotency_key, memo=memo
            )
        except NotFoundInStore as exc:
            raise NotFound(f"no account {account_id!r}") from exc
        return entry, await self.get(account_id)

    async def create_key(
        self, account_id: str, name: str, *, expires_at: str | None = None
    ) -> NewKey:
        expires_us = parse_expiry(expires_at, now_us=self._clock.now_us()) if expires_at else None
        minted = mint_key()
        try:
            record = await self._store.create_key(
                account_id=account_id,
                name=name,
                prefix=minted.prefix,
                secret_hash=minted.secret_hash,
                expires_us=expires_us,
            )
        except NotFoundInStore as exc:
            raise NotFound(f"no account {account_id!r}") from exc
        return NewKey(record, minted.secret)

    async def list_keys(self, account_id: str | None = None) -> list[KeyRecord]:
        return await self._store.list_keys(account_id)

    async def revoke_key(self, key_id: str) -> KeyRecord:
        try:
            return await self._store.revoke_key(key_id)
        except NotFoundInStore as exc:
            raise NotFound(f"no key {key_id!r}") from exc
