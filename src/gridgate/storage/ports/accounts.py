"""Accounts and the money put into them (credits and adjustments)."""

from __future__ import annotations

from typing import Literal, Protocol

from gridgate.storage.records import AccountRecord, AuditNote, LedgerEntry


class AccountStore(Protocol):
    async def create_account(
        self, name: str, *, audit: AuditNote | None = None
    ) -> AccountRecord: ...

    async def get_account(self, account_id: str) -> AccountRecord | None: ...

    async def list_accounts(self) -> list[AccountRecord]: ...

    async def credit(
        self,
        account_id: str,
        amount: int,
        *,
        idempotency_key: str | None = None,
        memo: str | None = None,
        kind: Literal["credit", "adjustment"] = "credit",
        audit: AuditNote | None = None,
    ) -> LedgerEntry:
        """Append a credit (amount > 0) or adjustment (any sign; may not take the balance below
        zero → ValueError). A repeated idempotency key with the same account/amount/kind returns
        the original entry and changes nothing; with different parameters → IdempotencyConflict.
        Unknown account → NotFoundInStore."""
