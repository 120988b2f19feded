"""Spend caps in SQL: ``CapStore``, and the steps of a capped hold that ``ledger.py`` and
``ledger_upkeep.py`` run inside their own transactions.

A capped hold (``_commit_caps``), after the balance has been taken: for every cap of the
account and of the key, in id order, ensure the row of its current window, then
``UPDATE cap_spend SET spent = spent + :amount WHERE … AND spent + :amount <= :limit``. On
PostgreSQL that UPDATE waits for a concurrent holder of the row and re-checks its condition
against the row it committed; on SQLite writers are serialised. A cap with too little left
raises ``CapRefused``, which rolls the whole hold back. Row locks are always taken account
first, then cap windows, so holds, closes and expiries never wait on each other in a cycle.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Connection,
    Insert,
    Row,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.records import AuditNote, CapPeriod, CapScope, CapUse, SpendCap
from gridgate.storage.runner import Dialect
from gridgate.storage.schema import api_keys, cap_spend, hold_caps, spend_caps, usage_records
from gridgate.storage.sql.audit import _note
from gridgate.storage.sql.base import SqlBase, _now_us, _p_account, _p_amount, _p_key
from gridgate.storage.sql.changes import _announce

_p_cap = bindparam("p_cap", type_=Text)
_p_start = bindparam("p_start", type_=BigInteger)
_p_limit = bindparam("p_limit", type_=BigInteger)
_p_hold = bindparam("p_hold", type_=Text)

_CAPS_OF_HOLD = (
    select(spend_caps)
    .where(
        or_(
            and_(spend_caps.c.scope == "key", spend_caps.c.subject == _p_key),
            and_(spend_caps.c.scope == "account", spend_caps.c.subject == _p_account),
        )
    )
    .order_by(spend_caps.c.id)
)
_WINDOW = and_(cap_spend.c.cap_id == _p_cap, cap_spend.c.window_start_us == _p_start)
_COMMIT = (
    update(cap_spend)
    .where(_WINDOW, cap_spend.c.spent + _p_amount <= _p_limit)
    .values(spent=cap_spend.c.spent + _p_amount)
    .returning(cap_spend.c.spent)
)
_SPENT = select(cap_spend.c.spent).where(_WINDOW)
_INSERT_HOLD_CAP = insert(hold_caps)
_GIVE_BACK = (
    update(cap_spend)
    .where(
        exists().where(
            hold_caps.c.hold_id == _p_hold,
            hold_caps.c.cap_id == cap_spend.c.cap_id,
            hold_caps.c.window_start_us == cap_spend.c.window_start_us,
        )
    )
    .values(spent=cap_spend.c.spent - _p_amount)
)

_FORGET_HOLD = delete(hold_caps).where(hold_caps.c.hold_id == _p_hold)


def _ensure_window(dialect: Dialect) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` of a window's row, in ``dialect``."""
    keys = ["cap_id", "window_start_us"]
    if dialect == "postgresql":
        return pg_dialect.insert(cap_spend).on_conflict_do_nothing(index_elements=keys)
    return sqlite_dialect.insert(cap_spend).on_conflict_do_nothing(index_elements=keys)


_ENSURE: dict[Dialect, Insert] = {
    "postgresql": _ensure_window("postgresql"),
    "sqlite": _ensure_window("sqlite"),
}


class CapRefused(Exception):
    """A cap had too little left for a hold (raised inside its transaction, to roll it back)."""

    def __init__(self, use: CapUse) -> None:
        super().__init__(use.cap.id)
        self.use = use


def _cap(row: Row[Any]) -> SpendCap:
    return SpendCap(
        id=row.id,
        account_id=row.account_id,
        scope=cast(CapScope, row.scope),
        subject=row.subject,
        period=cast(CapPeriod, row.period),
        limit=int(row.limit_nanos),
        created_us=int(row.created_us),
        updated_us=int(row.updated_us),
    )


def _commit_caps(
    conn: Connection, dialect: Dialect, params: Mapping[str, Any], windows: Mapping[CapPeriod, int]
) -> tuple[CapUse, ...]:
    """Count the hold of ``params`` (p_hold, p_account, p_key, p_amount) against every cap of
    its account and key, in their current ``windows``; ``CapRefused`` when one cannot take it."""
    uses: list[CapUse] = []
    amount = params["p_amount"]
    for row in conn.execute(_CAPS_OF_HOLD, params).all():
        cap = _cap(row)
        start = windows[cap.period]
        window = {"p_cap": cap.id, "p_start": start, "p_amount": amount, "p_limit": cap.limit}
        conn.execute(_ENSURE[dialect], {"cap_id": cap.id, "window_start_us": start, "spent": 0})
        spent = conn.execute(_COMMIT, window).scalar_one_or_none()
        if spent is None:
            found = int(conn.execute(_SPENT, window).scalar_one())
            raise CapRefused(CapUse(cap=cap, window_start_us=start, spent=found))
        conn.execute(
            _INSERT_HOLD_CAP,
            {"hold_id": params["p_hold"], "cap_id": cap.id, "window_start_us": start},
        )
        uses.append(CapUse(cap=cap, window_start_us=start, spent=int(spent)))
    return tuple(uses)


def _give_back(conn: Connection, hold_id: str, unspent: int) -> None:
    """A capped hold closed (or expired) having charged ``unspent`` less than it held: its cap
    windows take that back, and forget the hold (its windows now hold its charge for good)."""
    if unspent > 0:
        conn.execute(_GIVE_BACK, {"p_hold": hold_id, "p_amount": unspent})
    conn.execute(_FORGET_HOLD, {"p_hold": hold_id})


def _keys_it_covers(conn: Connection, scope: CapScope, subject: str) -> list[str]:
    if scope == "key":
        return [subject]
    stmt = select(api_keys.c.id).where(api_keys.c.account_id == subject)
    return [str(r.id) for r in conn.execute(stmt)]


def _spent_since(conn: Connection, scope: CapScope, subject: str, start_us: int) -> int:
    """What the subject's usage records cost from ``start_us`` on (a new cap's first window)."""
    column = usage_records.c.key_id if scope == "key" else usage_records.c.account_id
    stmt = select(func.coalesce(func.sum(usage_records.c.cost), 0)).where(
        column == subject, usage_records.c.created_us >= start_us
    )
    return int(conn.execute(stmt).scalar_one())


class SqlCaps(SqlBase):
    """``CapStore`` in SQL."""

    async def set_cap(
        self,
        *,
        account_id: str,
        scope: CapScope,
        subject: str,
        period: CapPeriod,
        limit: int,
        window_start_us: int,
        now_us: int,
        audit: AuditNote | None = None,
    ) -> SpendCap:
        if limit < 0:
            raise ValueError("a spend cap cannot be negative")
        ensure = _ENSURE[self._dialect]
        find = select(spend_caps).where(
            spend_caps.c.scope == scope,
            spend_caps.c.subject == subject,
            spend_caps.c.period == period,
        )

        def tx(conn: Connection) -> tuple[SpendCap, list[str]]:
            row = conn.execute(find).first()
            if row is None:
                cap_id = "cap_" + secrets.token_hex(8)
                conn.execute(
                    insert(spend_caps),
                    {
                        "id": cap_id,
                        "account_id": account_id,
                        "scope": scope,
                        "subject": subject,
                        "period": period,
                        "limit_nanos": limit,
                        "created_us": now_us,
                        "updated_us": now_us,
                    },
                )
                spent = _spent_since(conn, scope, subject, window_start_us)
                conn.execute(
                    ensure, {"cap_id": cap_id, "window_start_us": window_start_us, "spent": spent}
                )
            else:
                cap_id = str(row.id)
                conn.execute(
                    update(spend_caps)
                    .where(spend_caps.c.id == cap_id)
                    .values(limit_nanos=limit, updated_us=now_us)
                )
            keys = _keys_it_covers(conn, scope, subject)
            for key_id in keys:
                _announce(conn, "key", key_id, now_us)
            _note(conn, audit, cap_id, now_us)
            saved = conn.execute(select(spend_caps).where(spend_caps.c.id == cap_id)).one()
            return _cap(saved), keys

        cap, _ = await self._write(tx)
        self._mark_keys_changed()
        return cap

    async def remove_cap(self, cap_id: str, *, audit: AuditNote | None = None) -> SpendCap:
        now = _now_us()

        def tx(conn: Connection) -> SpendCap | None:
            row = conn.execute(select(spend_caps).where(spend_caps.c.id == cap_id)).first()
            if row is None:
                return None
            cap = _cap(row)
            conn.execute(delete(spend_caps).where(spend_caps.c.id == cap_id))
            conn.execute(delete(cap_spend).where(cap_spend.c.cap_id == cap_id))
            conn.execute(delete(hold_caps).where(hold_caps.c.cap_id == cap_id))
            for key_id in _keys_it_covers(conn, cap.scope, cap.subject):
                _announce(conn, "key", key_id, now)
            _note(conn, audit, cap_id, now)
            return cap

        cap = await self._write(tx)
        if cap is None:
            raise NotFoundInStore(f"no spend cap {cap_id!r}")
        self._mark_keys_changed()
        return cap

    async def get_cap(self, cap_id: str) -> SpendCap | None:
        stmt = select(spend_caps).where(spend_caps.c.id == cap_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _cap(row)

    async def caps_of(self, account_id: str, windows: Mapping[CapPeriod, int]) -> list[CapUse]:
        caps_stmt = (
            select(spend_caps)
            .where(spend_caps.c.account_id == account_id)
            .order_by(spend_caps.c.scope, spend_caps.c.subject, spend_caps.c.period)
        )

        def tx(conn: Connection) -> list[CapUse]:
            caps = [_cap(r) for r in conn.execute(caps_stmt)]
            return [
                CapUse(
                    cap=cap, window_start_us=windows[cap.period], spent=_spent(conn, cap, windows)
                )
                for cap in caps
            ]

        return await self._read(tx)


def _spent(conn: Connection, cap: SpendCap, windows: Mapping[CapPeriod, int]) -> int:
    found = conn.execute(
        _SPENT, {"p_cap": cap.id, "p_start": windows[cap.period]}
    ).scalar_one_or_none()
    return 0 if found is None else int(found)
