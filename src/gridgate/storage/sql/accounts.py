"""Accounts, and credits and adjustments to their balance (``AccountStore``)."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.sql.dml import ReturningInsert

from gridgate.storage.ports.errors import IdempotencyConflict, NotFoundInStore, StorageError
from gridgate.storage.records import AccountRecord, AuditNote, LedgerEntry
from gridgate.storage.schema import accounts, ledger_entries
from gridgate.storage.sql.audit import _note
from gridgate.storage.sql.base import _BALANCE, SqlBase, _now_us, _p_account, _p_amount, _p_key
from gridgate.storage.sql.ledger import _INSERT_ENTRY
from gridgate.storage.sql.ledger_upkeep import _entry
from gridgate.storage.sql.webhook_outbox import balance_after_credit


class _Replay(Exception):
    """A concurrent credit with the same idempotency key won; roll back and compare with it."""


_ADD = (
    update(accounts)
    .where(accounts.c.id == _p_account, accounts.c.balance + _p_amount >= 0)
    .values(balance=accounts.c.balance + _p_amount)
    .returning(accounts.c.balance)
)
_ENTRY_BY_IDEMPOTENCY_KEY = select(ledger_entries).where(ledger_entries.c.idempotency_key == _p_key)


def _account(row: Row[Any]) -> AccountRecord:
    return AccountRecord(
        id=row.id, name=row.name, balance=int(row.balance), created_us=int(row.created_us)
    )


class SqlAccounts(SqlBase):
    """``AccountStore`` in SQL."""

    _entry_once: ReturningInsert[int]  # built for the dialect by ``SqlStore``

    async def create_account(self, name: str, *, audit: AuditNote | None = None) -> AccountRecord:
        record = AccountRecord(
            id="acct_" + secrets.token_hex(12), name=name, balance=0, created_us=_now_us()
        )
        values = {"id": record.id, "name": name, "balance": 0, "created_us": record.created_us}

        def tx(conn: Connection) -> None:
            conn.execute(insert(accounts), values)
            _note(conn, audit, record.id, record.created_us)

        await self._write(tx)
        return record

    async def get_account(self, account_id: str) -> AccountRecord | None:
        stmt = select(accounts).where(accounts.c.id == account_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _account(row)

    async def list_accounts(self) -> list[AccountRecord]:
        stmt = select(accounts).order_by(accounts.c.created_us, accounts.c.id)
        return await self._read(lambda conn: [_account(r) for r in conn.execute(stmt)])

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
        if kind not in ("credit", "adjustment"):
            raise ValueError(f"credit kind must be 'credit' or 'adjustment', not {kind!r}")
        if kind == "credit" and amount <= 0:
            raise ValueError("a credit must be a positive amount")
        now = _now_us()

        def tx(conn: Connection) -> LedgerEntry:
            if idempotency_key is not None:
                original = _entry_by_idempotency_key(conn, idempotency_key)
                if original is not None:
                    return _replayed(original, account_id, amount, kind)
            params = {"p_account": account_id, "p_amount": amount}
            added = conn.execute(_ADD, params).first()
            if added is None:
                if conn.execute(_BALANCE, params).first() is None:
                    raise NotFoundInStore(f"no account {account_id!r}")
                raise ValueError("an adjustment may not take the balance below zero")
            # webhooks: a debit's balance.low on the crossing; a top-up re-arms it
            balance_after_credit(conn, account_id, int(added.balance), amount, now)
            values = {
                "account_id": account_id,
                "kind": kind,
                "amount": amount,
                "hold_id": None,
                "idempotency_key": idempotency_key,
                "memo": memo,
                "created_us": now,
            }
            stmt = _INSERT_ENTRY.returning(ledger_entries.c.id)
            if idempotency_key is not None:
                stmt = self._entry_once
            entry_id = conn.execute(stmt, values).scalar_one_or_none()
            if entry_id is None:
                raise _Replay  # a concurrent credit took the key: roll back the balance change
            _note(conn, audit, account_id, now)
            return LedgerEntry(
                id=int(entry_id),
                account_id=account_id,
                kind=kind,
                amount=amount,
                hold_id=None,
                idempotency_key=idempotency_key,
                memo=memo,
                created_us=now,
            )

        try:
            return await self._write(tx)
        except _Replay:
            pass
        assert idempotency_key is not None
        key = idempotency_key
        original = await self._read(lambda conn: _entry_by_idempotency_key(conn, key))
        if original is None:  # pragma: no cover - a conflicting row cannot vanish
            raise StorageError("idempotency key conflicted but its entry is gone")
        return _replayed(original, account_id, amount, kind)


def _entry_by_idempotency_key(conn: Connection, key: str) -> LedgerEntry | None:
    row = conn.execute(_ENTRY_BY_IDEMPOTENCY_KEY, {"p_key": key}).first()
    return None if row is None else _entry(row)


def _replayed(original: LedgerEntry, account_id: str, amount: int, kind: str) -> LedgerEntry:
    if (original.account_id, original.amount, original.kind) != (account_id, amount, kind):
        raise IdempotencyConflict(
            f"idempotency key {original.idempotency_key!r} was used for a different "
            f"{original.kind} ({original.account_id}, {original.amount})"
        )
    return original
