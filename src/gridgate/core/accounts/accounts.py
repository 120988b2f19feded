"""Accounts as operations: create, read, balance, credit, adjust, statement, ledger check —
authorised (``core/access.py``: money moves only by an operator's hand; an account's people read
their own) and audited, for the management API, the dashboard and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from gridgate.core.access import Actor, account_in_scope, require_operator, required_account
from gridgate.core.audit_log import note
from gridgate.core.clock import Clock
from gridgate.echo import capped
from gridgate.errors import InsufficientBalance, NotFound, ValidationFailed
from gridgate.money import MoneyError, usd_to_nanos
from gridgate.storage.ports.accounts import AccountStore
from gridgate.storage.ports.errors import IdempotencyConflict, NotFoundInStore
from gridgate.storage.ports.ledger import AccountBalance, LedgerStore, VerifyReport
from gridgate.storage.ports.usage import UsageStore
from gridgate.storage.records import AccountRecord, LedgerEntry, UsageRecord

MAX_ACCOUNT_NAME_LENGTH = 200
MAX_MEMO_LENGTH = 500
MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_ENTRY_NANOS = 1_000_000 * 1_000_000_000  # one credit or adjustment: at most $1,000,000


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


class AccountBooks(AccountStore, LedgerStore, UsageStore, Protocol):
    """Accounts, their ledger, and the usage a statement lists beside its entries."""


class Accounts:
    def __init__(self, store: AccountBooks, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, actor: Actor, name: str) -> AccountRecord:
        require_operator(actor)
        cleaned = name.strip()
        if not cleaned or len(cleaned) > MAX_ACCOUNT_NAME_LENGTH:
            raise ValidationFailed(
                f"name: must be 1 to {MAX_ACCOUNT_NAME_LENGTH} characters", param="name"
            )
        return await self._store.create_account(
            cleaned, audit=note(actor, "account.create", name=cleaned)
        )

    async def get(self, actor: Actor, account_id: str | None) -> AccountRecord:
        account_id = required_account(actor, account_id)
        account = await self._store.get_account(account_id)
        if account is None:
            raise NotFound(f"no account {capped(account_id)!r}")
        return account

    async def balance(self, actor: Actor, account_id: str | None) -> AccountBalance:
        account_id = required_account(actor, account_id)
        balance = await self._store.account_balance(account_id)
        if balance is None:
            raise NotFound(f"no account {capped(account_id)!r}")
        return balance

    async def list(self, actor: Actor) -> list[AccountRecord]:
        """Every account for an operator; an account's user sees their own."""
        own = account_in_scope(actor, None, required=False)
        if own is None:
            return await self._store.list_accounts()
        return [await self.get(actor, own)]

    async def credit(
        self,
        actor: Actor,
        account_id: str,
        usd: str,
        *,
        idempotency_key: str | None = None,
        memo: str | None = None,
    ) -> tuple[LedgerEntry, AccountRecord]:
        """Add prepaid credit; a retry with the same idempotency key applies once."""
        require_operator(actor)
        amount = _amount(usd)
        if amount <= 0:
            raise ValidationFailed("amount: must be positive", param="amount")
        entry = await self._append(
            actor, account_id, amount, "credit", _idempotency_key(idempotency_key), _memo(memo)
        )
        return entry, await self.get(actor, account_id)

    async def adjust(
        self,
        actor: Actor,
        account_id: str,
        usd: str,
        *,
        idempotency_key: str,
        memo: str | None = None,
    ) -> tuple[LedgerEntry, AccountRecord]:
        """An adjustment of either sign; it may not take the balance below zero. The
        idempotency key is required: a retried adjustment with the same key applies once."""
        require_operator(actor)
        amount = _amount(usd)
        if amount == 0:
            raise ValidationFailed("amount: must not be zero", param="amount")
        key = _idempotency_key(idempotency_key)
        if key is None:
            raise ValidationFailed(
                "idempotency_key: required for adjustments", param="idempotency_key"
            )
        entry = await self._append(actor, account_id, amount, "adjustment", key, _memo(memo))
        return entry, await self.get(actor, account_id)

    async def _append(
        self,
        actor: Actor,
        account_id: str,
        amount: int,
        kind: Literal["credit", "adjustment"],
        idempotency_key: str | None,
        memo: str | None,
    ) -> LedgerEntry:
        audit = note(actor, f"account.{kind}", amount_nanos=amount, idempotency_key=idempotency_key)
        try:
            return await self._store.credit(
                account_id,
                amount,
                idempotency_key=idempotency_key,
                memo=memo,
                kind=kind,
                audit=audit,
            )
        except NotFoundInStore as exc:
            raise NotFound(f"no account {capped(account_id)!r}") from exc
        except IdempotencyConflict as exc:
            raise ValidationFailed(
                f"{exc}; a retry must repeat the same account, amount and kind",
                param="idempotency_key",
                code="idempotency_conflict",
            ) from exc
        except ValueError as exc:  # the store refuses to take the balance below zero
            raise InsufficientBalance(
                f"{kind} refused: the balance of {capped(account_id)!r} cannot go below zero"
            ) from exc

    async def verify_ledger(self, actor: Actor) -> VerifyReport:
        require_operator(actor)
        return await self._store.verify_ledger()

    async def statement(
        self,
        actor: Actor,
        account_id: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> Statement:
        """Entries and usage in ``[since_us, until_us)``; by default from the account's
        creation to now."""
        account = await self.get(actor, account_id)
        since = account.created_us if since_us is None else since_us
        until = self._clock.now_us() if until_us is None else until_us
        if until < since:
            raise ValidationFailed("to: must not be before from", param="to")
        before = await self._store.entries(account.id, until_us=since)
        entries = await self._store.entries(account.id, since_us=since, until_us=until)
        usage = await self._store.list_usage(
            account_id=account.id, since_us=since, until_us=until, limit=None
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


def _amount(usd: str) -> int:
    try:
        amount = usd_to_nanos(usd)
    except MoneyError as exc:
        raise ValidationFailed(f"amount: {exc}", param="amount") from exc
    if abs(amount) > MAX_ENTRY_NANOS:
        raise ValidationFailed("amount: at most 1000000 USD at a time", param="amount")
    return amount


def _idempotency_key(key: str | None) -> str | None:
    if key is None or not key.strip():
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationFailed(
            f"idempotency_key: at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            param="idempotency_key",
        )
    return key


def _memo(memo: str | None) -> str | None:
    if memo is not None and len(memo) > MAX_MEMO_LENGTH:
        raise ValidationFailed(f"memo: at most {MAX_MEMO_LENGTH} characters", param="memo")
    return memo or None
