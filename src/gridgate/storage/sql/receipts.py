"""Usage receipts (``ReceiptStore``): a request's record, filtered and ordered pages, sums per
bucket and cost status, the entry that closed a lease, and the receipt signing keys.

A receipt's status words are derived from the usage record in one place in SQL
(``_STATUS``, ``_COST_STATUS``), mirroring ``core/accounts/receipts.py``'s ``status_of`` and
``cost_status_of`` (``tests/storage/test_receipts.py`` holds them equal)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)

from gridgate.storage.ports.receipts import (
    ReceiptFilter,
    ReceiptOrder,
    SigningKey,
    SummaryGroup,
    SummaryRow,
)
from gridgate.storage.records import UsageRecord
from gridgate.storage.schema import ledger_entries, receipt_keys, usage_records
from gridgate.storage.sql.base import SqlBase
from gridgate.storage.sql.usage import _DAY_US, _usage, _usage_filter

_u = usage_records
SETTLED_OUTCOMES = ("ok", "cut_at_hold")  # an answer given whole, or cut at its hold
_STATUS = case(
    (_u.c.outcome == "in_progress", literal("pending")),
    (_u.c.outcome.in_(SETTLED_OUTCOMES), literal("reconciled")),
    else_=literal("error"),
)
_COST_STATUS = case(
    (_u.c.outcome == "in_progress", literal("pending")),
    (_u.c.cost > 0, literal("reconciled")),
    (_u.c.in_spec.is_(false()), literal("waived")),
    (_u.c.outcome.in_(SETTLED_OUTCOMES), literal("reconciled")),
    else_=literal("cancelled"),
)
_ORDER = {"created_us": _u.c.created_us, "cost": _u.c.cost}


def _filtered(stmt: Select[Any], where: ReceiptFilter) -> Select[Any]:
    stmt = _usage_filter(
        stmt,
        account_id=where.account_id,
        since_us=where.since_us,
        until_us=where.until_us,
        key_id=where.key_id,
        instrument=where.instrument,
    )
    if where.status is not None:
        stmt = stmt.where(_STATUS.__eq__(where.status))
    if where.cost_status is not None:
        stmt = stmt.where(_COST_STATUS.__eq__(where.cost_status))
    return stmt


def _signing_key(row: Any) -> SigningKey:
    return SigningKey(
        kid=row.kid,
        private_key=row.private_key,
        public_key=row.public_key,
        created_us=row.created_us,
        active=bool(row.active),
    )


class SqlReceipts(SqlBase):
    """``ReceiptStore`` in SQL."""

    async def get_usage(self, request_id: str) -> UsageRecord | None:
        stmt = select(_u).where(_u.c.request_id == request_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _usage(row)

    async def receipt_page(
        self,
        where: ReceiptFilter,
        *,
        order_by: ReceiptOrder,
        descending: bool,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[UsageRecord]:
        column = _ORDER[order_by]
        keys = (column.desc(), _u.c.request_id.desc()) if descending else (column, _u.c.request_id)
        stmt = _filtered(select(_u).order_by(*keys), where).limit(limit)
        if after is not None:
            value, request_id = after
            if descending:
                past = or_(column < value, and_(column == value, _u.c.request_id < request_id))
            else:
                past = or_(column > value, and_(column == value, _u.c.request_id > request_id))
            stmt = stmt.where(past)
        return await self._read(lambda conn: [_usage(r) for r in conn.execute(stmt)])

    async def usage_summary(
        self, where: ReceiptFilter, group_by: SummaryGroup | None
    ) -> list[SummaryRow]:
        if group_by == "day":
            bucket: Any = (_u.c.created_us // _DAY_US).label("bucket")
        elif group_by == "model":
            bucket = _u.c.instrument.label("bucket")
        elif group_by == "api_key":
            bucket = _u.c.key_id.label("bucket")
        else:
            bucket = literal(None).label("bucket")
        cost_status = _COST_STATUS.label("cost_status")
        stmt = _filtered(
            select(
                bucket,
                cost_status,
                func.count().label("requests"),
                func.coalesce(func.sum(_u.c.input_tokens), 0).label("input_tokens"),
                func.coalesce(func.sum(_u.c.output_tokens), 0).label("output_tokens"),
                func.coalesce(func.sum(_u.c.cost), 0).label("cost"),
            ),
            where,
        )
        stmt = stmt.group_by(bucket, cost_status) if group_by else stmt.group_by(cost_status)

        def tx(conn: Connection) -> list[SummaryRow]:
            return [
                SummaryRow(
                    bucket=int(r.bucket) if group_by == "day" else r.bucket,
                    cost_status=r.cost_status,
                    requests=int(r.requests),
                    input_tokens=int(r.input_tokens),
                    output_tokens=int(r.output_tokens),
                    cost=int(r.cost),
                )
                for r in conn.execute(stmt)
            ]

        return await self._read(tx)

    async def lease_closing_entry(self, hold_id: str) -> int | None:
        e = ledger_entries
        stmt = (
            select(e.c.id)
            .where(e.c.hold_id == hold_id, e.c.kind.in_(("settle", "release")))
            .order_by(e.c.id)
            .limit(1)
        )
        found = await self._read(lambda conn: conn.execute(stmt).scalar())
        return None if found is None else int(found)

    async def receipt_keys(self) -> list[SigningKey]:
        k = receipt_keys
        stmt = select(k).order_by(k.c.active.is_(None), k.c.created_us.desc(), k.c.kid)
        return await self._read(lambda conn: [_signing_key(r) for r in conn.execute(stmt)])

    async def add_receipt_key(self, key: SigningKey) -> SigningKey:
        k = receipt_keys
        active = select(k).where(k.c.active == true())

        def tx(conn: Connection) -> SigningKey:
            # serialised with the other writers (SQLite: BEGIN IMMEDIATE); on PostgreSQL the
            # unique ``active`` column makes a concurrent second insert fail, and the caller
            # reads the winner's key
            row = conn.execute(active).first()
            if row is not None:
                return _signing_key(row)
            conn.execute(
                insert(k).values(
                    kid=key.kid,
                    private_key=key.private_key,
                    public_key=key.public_key,
                    created_us=key.created_us,
                    active=True,
                )
            )
            return key

        return await self._write(tx)
