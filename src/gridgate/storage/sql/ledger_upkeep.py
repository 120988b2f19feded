"""The ledger off the hot path (the rest of ``LedgerStore``): expiring the holds of crashed
processes, extending the leases of living ones, balances, entries, and the verification that
every balance equals its entries and every closed lease its usage records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Text,
    and_,
    any_,
    bindparam,
    case,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect

from gridgate.storage.ports.ledger import (
    LEASE_ID_PREFIX,
    AccountBalance,
    HoldMismatch,
    SettleResult,
    VerifyReport,
)
from gridgate.storage.records import EntryKind, HoldRecord, HoldStatus, LedgerEntry
from gridgate.storage.schema import accounts, holds, ledger_entries, usage_records
from gridgate.storage.sql.base import SqlBase, _p_account, _p_now
from gridgate.storage.sql.caps import _give_back
from gridgate.storage.sql.ledger import _INSERT_ENTRY, _REFUND, _p_expires

_DUE_HOLDS = (
    select(holds.c.id)
    .where(holds.c.status == "held", holds.c.expires_us <= _p_now)
    .order_by(holds.c.expires_us, holds.c.id)
    .limit(bindparam("p_limit", type_=Integer))
    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's writer holds the database lock
)
# What a hold's usage records cost, capped at the hold: what closing it on expiry charges.
# (Correlated to the ``holds`` row of the enclosing statement; the sum is computed once.)
_recorded = func.coalesce(func.sum(usage_records.c.cost), 0)
_CHARGEABLE = (
    select(case((_recorded < holds.c.amount, _recorded), else_=holds.c.amount))
    .where(usage_records.c.hold_id == holds.c.id)
    .correlate(holds)
    .scalar_subquery()
)
_EXPIRE = (
    update(holds)
    .where(holds.c.id.in_(_DUE_HOLDS.scalar_subquery()), holds.c.status == "held")
    .values(status="expired", charged=_CHARGEABLE, closed_us=_p_now)
    .returning(holds.c.id, holds.c.account_id, holds.c.amount, holds.c.charged)
)
# A stream's checkpoint on an expired hold will never be replaced by its final record (its
# process died): it becomes final, at the cost it recorded, which the expiry charged.
_INTERRUPT = (
    update(usage_records)
    .where(
        usage_records.c.hold_id.in_(bindparam("p_holds", expanding=True)),
        usage_records.c.outcome == "in_progress",
    )
    .values(outcome="interrupted")
)
_EXTEND = (
    update(holds)
    .where(holds.c.status == "held", holds.c.expires_us < _p_expires)  # only ever later
    .values(expires_us=_p_expires)
)
_EXTEND_SQLITE = _EXTEND.where(holds.c.id.in_(bindparam("p_ids", expanding=True)))
# PostgreSQL: one array parameter, so every batch size is the same prepared statement
_EXTEND_PG = _EXTEND.where(holds.c.id == any_(bindparam("p_ids", type_=pg_dialect.ARRAY(Text))))
_open_holds = and_(holds.c.account_id == accounts.c.id, holds.c.status == "held")
_ACCOUNT_BALANCE = select(
    accounts.c.balance,
    select(func.coalesce(func.sum(holds.c.amount), 0))
    .where(_open_holds)
    .correlate(accounts)
    .scalar_subquery()
    .label("held"),
    select(func.coalesce(func.sum(_CHARGEABLE), 0))
    .where(_open_holds)
    .correlate(accounts)
    .scalar_subquery()
    .label("recorded"),
).where(accounts.c.id == _p_account)


def _entry(row: Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        id=int(row.id),
        account_id=row.account_id,
        kind=cast(EntryKind, row.kind),
        amount=int(row.amount),
        hold_id=row.hold_id,
        idempotency_key=row.idempotency_key,
        memo=row.memo,
        created_us=int(row.created_us),
    )


def _hold(row: Row[Any]) -> HoldRecord:
    return HoldRecord(
        id=row.id,
        account_id=row.account_id,
        key_id=row.key_id,
        amount=int(row.amount),
        charged=None if row.charged is None else int(row.charged),
        status=cast(HoldStatus, row.status),
        created_us=int(row.created_us),
        expires_us=int(row.expires_us),
    )


def _closed_holds_against_usage(conn: Connection) -> tuple[int, tuple[HoldMismatch, ...]]:
    """Every closed lease (settled, expired or released) beside what its usage records cost:
    each request a lease served charged it exactly its record's cost, so the two agree (capped
    at the hold, as settling and expiring charge) — or a record was lost or never charged."""
    recorded = (
        select(usage_records.c.hold_id, func.sum(usage_records.c.cost).label("cost"))
        .where(usage_records.c.hold_id.is_not(None))
        .group_by(usage_records.c.hold_id)
        .subquery()
    )
    stmt = (
        select(
            holds.c.id,
            holds.c.account_id,
            holds.c.amount,
            func.coalesce(holds.c.charged, 0).label("charged"),
            func.coalesce(recorded.c.cost, 0).label("recorded"),
        )
        .select_from(holds.outerjoin(recorded, recorded.c.hold_id == holds.c.id))
        .where(holds.c.status != "held", holds.c.id.startswith(LEASE_ID_PREFIX, autoescape=True))
        .order_by(holds.c.id)
    )
    checked = 0
    unmatched: list[HoldMismatch] = []
    for row in conn.execute(stmt):
        checked += 1
        capped = min(int(row.recorded), int(row.amount))
        if int(row.charged) != capped:
            unmatched.append(
                HoldMismatch(
                    hold_id=str(row.id),
                    account_id=str(row.account_id),
                    charged=int(row.charged),
                    recorded=capped,
                )
            )
    return checked, tuple(unmatched)


class SqlLedgerUpkeep(SqlBase):
    """The rest of ``LedgerStore`` in SQL."""

    async def expire_holds(self, now_us: int, *, limit: int = 1000) -> list[SettleResult]:
        """One transaction: close the due holds (``WHERE status = 'held'``, so a concurrent
        settle of the same hold and this never both close it), each charged what its usage
        records cost (capped at the hold), then refund the rest per account in a fixed order;
        the streams' checkpoints on them (``in_progress``) become ``interrupted``."""

        def tx(conn: Connection) -> list[tuple[str, str, int, int]]:
            closed = sorted(
                (str(r.id), str(r.account_id), int(r.amount), int(r.charged))
                for r in conn.execute(_EXPIRE, {"p_now": now_us, "p_limit": limit})
            )
            if not closed:
                return []
            refunds: dict[str, int] = {}
            for _, account_id, amount, charged in closed:
                refunds[account_id] = refunds.get(account_id, 0) + amount - charged
            for account_id in sorted(refunds):  # a fixed lock order across processes
                if refunds[account_id]:
                    conn.execute(
                        _REFUND, {"p_account": account_id, "p_amount": refunds[account_id]}
                    )
            for hold_id, _, amount, charged in closed:  # capped holds: after the accounts
                _give_back(conn, hold_id, amount - charged)
            conn.execute(
                _INSERT_ENTRY,
                [
                    {
                        "account_id": account_id,
                        "kind": "settle",
                        "amount": amount - charged,
                        "hold_id": hold_id,
                        "idempotency_key": None,
                        "memo": "expired",
                        "created_us": now_us,
                    }
                    for hold_id, account_id, amount, charged in closed
                ],
            )
            conn.execute(_INTERRUPT, {"p_holds": [hold_id for hold_id, *_ in closed]})
            return closed

        return [
            SettleResult(
                hold_id=hold_id, charged=charged, released=amount - charged, already_settled=False
            )
            for hold_id, _, amount, charged in await self._write(tx)
        ]

    async def extend_holds(self, hold_ids: Sequence[str], expires_us: int) -> int:
        """One statement. Counts the holds moved: not those closed (or expired) meanwhile — how
        a lease owner learns it lost one — nor those already expiring at ``expires_us`` or
        later."""
        ids = sorted(set(hold_ids))
        if not ids:
            return 0
        params: dict[str, Any] = {"p_ids": ids, "p_expires": expires_us}
        stmt = _EXTEND_PG if self._dialect == "postgresql" else _EXTEND_SQLITE
        return await self._write_statement(lambda conn: int(conn.execute(stmt, params).rowcount))

    async def account_balance(self, account_id: str) -> AccountBalance | None:
        """One statement, so one snapshot on both databases. ``recorded`` counts each hold's
        usage at most up to the hold's amount — what settling or expiring it can charge — so
        ``effective`` does not move when a hold closes on its recorded usage."""
        params = {"p_account": account_id}
        row = await self._read(lambda conn: conn.execute(_ACCOUNT_BALANCE, params).first())
        if row is None:
            return None
        return AccountBalance(
            account_id=account_id,
            ledger=int(row.balance),
            held=int(row.held),
            recorded=int(row.recorded),
        )

    async def get_hold(self, hold_id: str) -> HoldRecord | None:
        stmt = select(holds).where(holds.c.id == hold_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _hold(row)

    async def entries(
        self,
        account_id: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[LedgerEntry]:
        """Oldest first; ``since_us`` inclusive, ``until_us`` exclusive."""
        stmt = (
            select(ledger_entries)
            .where(ledger_entries.c.account_id == account_id)
            .order_by(ledger_entries.c.id)
        )
        if since_us is not None:
            stmt = stmt.where(ledger_entries.c.created_us >= since_us)
        if until_us is not None:
            stmt = stmt.where(ledger_entries.c.created_us < until_us)
        return await self._read(lambda conn: [_entry(r) for r in conn.execute(stmt)])

    async def verify_ledger(self) -> VerifyReport:
        total = func.coalesce(func.sum(ledger_entries.c.amount), 0)
        stmt = (
            select(accounts.c.id, accounts.c.balance, total.label("total"))
            .select_from(
                accounts.outerjoin(ledger_entries, ledger_entries.c.account_id == accounts.c.id)
            )
            .group_by(accounts.c.id, accounts.c.balance)
            .order_by(accounts.c.id)
        )
        rows = await self._read(
            lambda conn: [(str(r.id), int(r.balance), int(r.total)) for r in conn.execute(stmt)]
        )
        checked, unmatched = await self._read(_closed_holds_against_usage)
        return VerifyReport(
            accounts_checked=len(rows),
            mismatches=tuple((a, b, s) for a, b, s in rows if b != s),
            negative=tuple(a for a, b, _ in rows if b < 0),
            holds_checked=checked,
            holds=unmatched,
        )
