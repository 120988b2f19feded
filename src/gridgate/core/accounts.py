"""Accounts and keys as operations: what the CLI (and later the management API) calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from gridgate.core.clock import Clock
from gridgate.core.keys import mint_key
from gridgate.errors import InsufficientBalance, NotFound, ValidationFailed
from gridgate.money import MoneyError, usd_to_nanos
from gridgate.storage.ports import (
    AccountBalance,
    IdempotencyConflict,
    NotFoundInStore,
    Store,
    VerifyReport,
)
from gridgate.storage.records import AccountRecord, KeyRecord, LedgerEntry, UsageRecord

MAX_KEY_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    secret: str  # shown once


@dataclass(frozen=True, slots=True)
class Statement:
    """An account's ledger entries and usage records in ``[since_us, until_us)``.

    ``opening`` is the sum of the account's entries before ``since_us``; ``closing`` is
    ``opening`` plus the entries in the window, so ``closing - opening == sum(entries)`` always.
    Usage records are oldest first, like the entries.
    """

    account: AccountRecord
    since_us: int
    until_us: int
    opening: int
    entries: list[LedgerEntry]
    usage: list[UsageRecord]

    @property
    def closing(self) -> int:
        return self.opening + sum(e.amount for e in self.entries)


def parse_time(text: str, *, param: str) -> int:
    """ISO 8601 date or time → unix µs. A time without zone is UTC; a date is midnight UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed(f"{param}: not an ISO 8601 time: {text!r}", param=param) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_expiry(text: str, *, now_us: int) -> int:
    """ISO 8601 → unix µs. A time without zone is UTC. Must be in the future."""
    micros = parse_time(text, param="expires_at")
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
        entry = await self._append(account_id, amount, "credit", idempotency_key, memo)
        return entry, await self.get(account_id)

    async def adjust(
        self,
        account_id: str,
        usd: str,
        *,
        idempotency_key: str,
        memo: str | None = None,
    ) -> tuple[LedgerEntry, AccountRecord]:
        """An adjustment of either sign; it may not take the balance below zero. The
        idempotency key is required: a retried adjustment with the same key applies once."""
        try:
            amount = usd_to_nanos(usd)
        except MoneyError as exc:
            raise ValidationFailed(f"amount: {exc}", param="amount") from exc
        if amount == 0:
            raise ValidationFailed("amount: must not be zero", param="amount")
        if not idempotency_key.strip():
            raise ValidationFailed(
                "idempotency_key: required for adjustments", param="idempotency_key"
            )
        entry = await self._append(account_id, amount, "adjustment", idempotency_key, memo)
        return entry, await self.get(account_id)

    async def _append(
        self,
        account_id: str,
        amount: int,
        kind: Literal["credit", "adjustment"],
        idempotency_key: str | None,
        memo: str | None,
    ) -> LedgerEntry:
        try:
            return await self._store.credit(
                account_id, amount, idempotency_key=idempotency_key, memo=memo, kind=kind
            )
        except NotFoundInStore as exc:
            raise NotFound(f"no account {account_id!r}") from exc
        except IdempotencyConflict as exc:
            raise ValidationFailed(
                f"{exc}; a retry must repeat the same account, amount and kind",
                param="idempotency_key",
                code="idempotency_conflict",
            ) from exc
        except ValueError as exc:  # the store refuses to take the balance below zero
            raise InsufficientBalance(
                f"{kind} refused: the balance of {account_id!r} cannot go below zero"
            ) from exc

    async def verify_ledger(self) -> VerifyReport:
        return await self._store.verify_ledger()

    async def statement(
        self, account_id: str, *, since_us: int | None = None, until_us: int | None = None
    ) -> Statement:
        """Entries and usage in ``[since_us, until_us)``; by default from the account's
        creation to now."""
        account = await self.get(account_id)
        since = account.created_us if since_us is None else since_us
        until = self._clock.now_us() if until_us is None else until_us
        if until < since:
            raise ValidationFailed("to: must not be before from", param="to")
        before = await self._store.entries(account_id, until_us=since)
        entries = await self._store.entries(account_id, since_us=since, until_us=until)
        usage = await self._store.list_usage(
            account_id=account_id, since_us=since, until_us=until, limit=None
        )
        usage.reverse()  # oldest first, like the entries
        return Statement(
            account=account,
            since_us=since,
            until_us=until,
            opening=sum(e.amount for e in before),
            entries=entries,
            usage=usage,
        )

    async def create_key(
        self, account_id: str, name: str, *, expires_at: str | None = None
    ) -> NewKey:
        name = name.strip()
        if not name or len(name) > MAX_KEY_NAME_LENGTH:
            raise ValidationFailed(
                f"name: must be 1 to {MAX_KEY_NAME_LENGTH} characters", param="name"
            )
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

    async def get_key(self, key_id: str) -> KeyRecord:
        key = await self._store.get_key(key_id)
        if key is None:
            raise NotFound(f"no key {key_id!r}")
        return key

    async def list_keys(self, account_id: str | None = None) -> list[KeyRecord]:
        return await self._store.list_keys(account_id)

    async def revoke_key(self, key_id: str) -> KeyRecord:
        try:
            return await self._store.revoke_key(key_id)
        except NotFoundInStore as exc:
            raise NotFound(f"no key {key_id!r}") from exc
