"""The ledger's hot path (part of ``LedgerStore``): placing, settling and releasing holds.

On PostgreSQL hold, settle and release are each ONE statement of data-modifying CTEs run in
autocommit — one round trip, and the account row stays locked only while that statement runs
(a BEGIN … COMMIT keeps it locked across five round trips, which caps how many holds per second
one account can take). They match the SQLite transactions ``_place_hold`` / ``_close_hold``
condition for condition and row for row; the contract suite runs both.

Money never moves by read-then-write. Every balance change is a conditional
``UPDATE accounts SET balance = balance ± :amt WHERE id = :id AND <balance stays ≥ 0>`` whose
``RETURNING`` says whether it happened, atomically with its ledger row. On PostgreSQL (READ
COMMITTED) that UPDATE re-checks its WHERE clause against the newest row version after waiting
for a concurrent writer; on SQLite writers are serialised by ``BEGIN IMMEDIATE``. Hot-path
statements are built once, with bind parameters, at import.

The rest of the ledger (expiry, renewal, balances, entries, verification) is in
``ledger_upkeep.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    Text,
    Update,
    and_,
    bindparam,
    case,
    exists,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)

from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.ports.ledger import HoldRefusal, HoldResult, SettleResult
from gridgate.storage.records import CapPeriod, CapUse, EntryKind, HoldRecord, HoldStatus
from gridgate.storage.runner import Dialect
from gridgate.storage.schema import accounts, api_keys, holds, ledger_entries
from gridgate.storage.sql.base import _BALANCE, SqlBase, _p_account, _p_amount, _p_key, _p_now
from gridgate.storage.sql.caps import CapRefused, _commit_caps, _give_back
from gridgate.storage.sql.webhook_outbox import balance_low_after_hold, balance_low_cte

_p_hold = bindparam("p_hold", type_=Text)
_p_status = bindparam("p_status", type_=Text)
_p_charge = bindparam("p_charge", type_=BigInteger)
_p_expires = bindparam("p_expires", type_=BigInteger)

_KEY_ACTIVE = and_(
    api_keys.c.revoked_us.is_(None),
    or_(api_keys.c.expires_us.is_(None), api_keys.c.expires_us > _p_now),
)

_TAKE = (
    update(accounts)
    .where(accounts.c.id == _p_account, accounts.c.balance >= _p_amount)
    .values(balance=accounts.c.balance - _p_amount)
    .returning(accounts.c.balance)
)
_TAKE_WITH_KEY = _TAKE.where(
    exists().where(
        api_keys.c.id == _p_key,
        api_keys.c.account_id == accounts.c.id,
        _KEY_ACTIVE,
    )
)
_REFUND = (
    update(accounts)
    .where(accounts.c.id == _p_account)
    .values(balance=accounts.c.balance + _p_amount)
)
_INSERT_HOLD = insert(holds)
_INSERT_ENTRY = insert(ledger_entries)
_CLOSE_HOLD = (
    update(holds)
    .where(holds.c.id == _p_hold, holds.c.status == "held")
    .values(
        status=_p_status,
        charged=case((holds.c.amount < _p_charge, holds.c.amount), else_=_p_charge),
        closed_us=_p_now,
    )
    .returning(holds.c.account_id, holds.c.amount, holds.c.charged)
)
_HOLD_OUTCOME = select(holds.c.amount, holds.c.charged).where(holds.c.id == _p_hold)
_ACTIVE_KEY_OF = select(api_keys.c.id).where(
    api_keys.c.id == _p_key,
    api_keys.c.account_id == _p_account,
    _KEY_ACTIVE,
)

# PostgreSQL's hot path: one statement each (see the module docstring).
_p_kind = bindparam("p_kind", type_=Text)


def _pg_place_hold(take: Update) -> Select[int]:
    taken = take.returning(accounts.c.id).cte("taken")
    hold = (
        insert(holds)
        .from_select(
            ["id", "account_id", "key_id", "amount", "status", "created_us", "expires_us"],
            select(
                _p_hold, taken.c.id, _p_key, _p_amount, literal("held"), _p_now, _p_expires
            ).select_from(taken),
        )
        .returning(holds.c.id)
        .cte("hold")
    )
    entry = insert(ledger_entries).from_select(
        ["account_id", "kind", "amount", "hold_id", "created_us"],
        select(taken.c.id, literal("hold"), -_p_amount, hold.c.id, _p_now).select_from(
            taken.join(hold, true())
        ),
    )
    low = balance_low_cte(taken)  # webhooks: balance.low on the crossing
    return select(taken.c.balance).add_cte(hold, entry.cte("entry"), low)


def _pg_close_hold() -> Select[int, int]:
    closed = _CLOSE_HOLD.cte("closed")
    refund = (
        update(accounts)
        .where(accounts.c.id == closed.c.account_id, closed.c.amount > closed.c.charged)
        .values(balance=accounts.c.balance + (closed.c.amount - closed.c.charged))
    )
    entry = insert(ledger_entries).from_select(
        ["account_id", "kind", "amount", "hold_id", "created_us"],
        select(
            closed.c.account_id, _p_kind, closed.c.amount - closed.c.charged, _p_hold, _p_now
        ).select_from(closed),
    )
    return select(closed.c.amount, closed.c.charged).add_cte(
        refund.cte("refund"), entry.cte("entry")
    )


_PG_TAKE = _pg_place_hold(_TAKE)
_PG_TAKE_WITH_KEY = _pg_place_hold(_TAKE_WITH_KEY)
_PG_CLOSE_HOLD = _pg_close_hold()


class SqlLedger(SqlBase):
    """The hot path of ``LedgerStore`` in SQL."""

    async def place_hold(
        self,
        *,
        hold_id: str,
        account_id: str,
        key_id: str | None,
        amount: int,
        expires_us: int,
        now_us: int,
        windows: Mapping[CapPeriod, int] | None = None,
    ) -> HoldResult:
        if amount < 0:
            raise ValueError("a hold cannot be negative")
        params = {
            "p_account": account_id,
            "p_amount": amount,
            "p_key": key_id,
            "p_now": now_us,
            "p_hold": hold_id,
            "p_expires": expires_us,
        }
        caps: tuple[CapUse, ...] = ()
        if windows is not None:
            try:
                balance, caps = await self._write(
                    lambda conn: _place_capped_hold(conn, self._dialect, params, windows)
                )
            except CapRefused as refusal:
                return HoldResult(hold=None, refused="cap_reached", balance=0, caps=(refusal.use,))
        elif self._dialect == "postgresql":
            one = _PG_TAKE if key_id is None else _PG_TAKE_WITH_KEY
            balance = await self._write_statement(
                lambda conn: conn.execute(one, params).scalar_one_or_none()
            )
        else:
            balance = await self._write(lambda conn: _place_hold(conn, params, key_id is not None))
        if balance is None:
            refused, found = await self._read(
                lambda conn: _hold_refusal(conn, account_id, key_id, now_us)
            )
            return HoldResult(hold=None, refused=refused, balance=found)
        hold = HoldRecord(
            id=hold_id,
            account_id=account_id,
            key_id=key_id,
            amount=amount,
            charged=None,
            status="held",
            created_us=now_us,
            expires_us=expires_us,
        )
        return HoldResult(hold=hold, refused=None, balance=int(balance), caps=caps)

    async def settle_hold(
        self, hold_id: str, charge: int, *, now_us: int, capped: bool = False
    ) -> SettleResult:
        if charge < 0:
            raise ValueError("a charge cannot be negative")
        return await self._close_hold(hold_id, charge, "settled", "settle", now_us, capped)

    async def release_hold(
        self, hold_id: str, *, now_us: int, capped: bool = False
    ) -> SettleResult:
        return await self._close_hold(hold_id, 0, "released", "release", now_us, capped)

    async def _close_hold(
        self,
        hold_id: str,
        charge: int,
        status: HoldStatus,
        kind: EntryKind,
        now_us: int,
        capped: bool,
    ) -> SettleResult:
        params = {
            "p_hold": hold_id,
            "p_status": status,
            "p_charge": charge,
            "p_now": now_us,
            "p_kind": kind,
        }
        if capped:  # one transaction on either database: the cap windows take back the rest
            outcome = await self._write(lambda conn: _close_hold(conn, params, capped=True))
        elif self._dialect == "postgresql":
            row = await self._write_statement(
                lambda conn: conn.execute(_PG_CLOSE_HOLD, params).first()
            )
            outcome = None if row is None else (int(row.amount), int(row.charged))
        else:
            outcome = await self._write(lambda conn: _close_hold(conn, params))
        if outcome is not None:
            amount, charged = outcome
            return SettleResult(
                hold_id=hold_id, charged=charged, released=amount - charged, already_settled=False
            )
        # closed before (or unknown): report what was done
        prior = await self._read(lambda conn: conn.execute(_HOLD_OUTCOME, params).first())
        if prior is None:
            raise NotFoundInStore(f"no hold {hold_id!r}")
        done = int(prior.charged or 0)
        return SettleResult(
            hold_id=hold_id, charged=done, released=int(prior.amount) - done, already_settled=True
        )


def _place_hold(conn: Connection, params: dict[str, Any], with_key: bool) -> int | None:
    """The hold as three statements in one transaction (SQLite): take, hold row, entry."""
    balance = conn.execute(_TAKE_WITH_KEY if with_key else _TAKE, params).scalar_one_or_none()
    if balance is None:
        return None
    conn.execute(
        _INSERT_HOLD,
        {
            "id": params["p_hold"],
            "account_id": params["p_account"],
            "key_id": params["p_key"],
            "amount": params["p_amount"],
            "charged": None,
            "status": "held",
            "created_us": params["p_now"],
            "expires_us": params["p_expires"],
            "closed_us": None,
        },
    )
    conn.execute(
        _INSERT_ENTRY,
        {
            "account_id": params["p_account"],
            "kind": "hold",
            "amount": -params["p_amount"],
            "hold_id": params["p_hold"],
            "idempotency_key": None,
            "memo": None,
            "created_us": params["p_now"],
        },
    )
    balance_low_after_hold(conn, params, balance)  # webhooks: balance.low on the crossing
    return int(balance)


def _place_capped_hold(
    conn: Connection,
    dialect: Dialect,
    params: dict[str, Any],
    windows: Mapping[CapPeriod, int],
) -> tuple[int | None, tuple[CapUse, ...]]:
    """A capped hold in one transaction (either database): the balance first, then every cap
    window (``caps._commit_caps``, which raises ``CapRefused`` to roll it all back)."""
    balance = _place_hold(conn, params, params["p_key"] is not None)
    if balance is None:
        return None, ()
    return balance, _commit_caps(conn, dialect, params, windows)


def _close_hold(
    conn: Connection, params: dict[str, Any], *, capped: bool = False
) -> tuple[int, int] | None:
    """Close a held hold in one transaction (SQLite; either database when ``capped``); None
    when it was not ``held``."""
    row = conn.execute(_CLOSE_HOLD, params).first()
    if row is None:
        return None
    amount, charged = int(row.amount), int(row.charged)
    if amount > charged:
        conn.execute(_REFUND, {"p_account": row.account_id, "p_amount": amount - charged})
    conn.execute(
        _INSERT_ENTRY,
        {
            "account_id": row.account_id,
            "kind": params["p_kind"],
            "amount": amount - charged,
            "hold_id": params["p_hold"],
            "idempotency_key": None,
            "memo": None,
            "created_us": params["p_now"],
        },
    )
    if capped:
        _give_back(conn, params["p_hold"], amount - charged)
    return amount, charged


def _hold_refusal(
    conn: Connection, account_id: str, key_id: str | None, now_us: int
) -> tuple[HoldRefusal, int]:
    """Why a hold was refused (the cold path: a read after the UPDATE matched nothing)."""
    params = {"p_account": account_id, "p_key": key_id, "p_now": now_us}
    balance = conn.execute(_BALANCE, params).scalar_one_or_none()
    if balance is None:
        return "account_missing", 0
    if key_id is not None and conn.execute(_ACTIVE_KEY_OF, params).first() is None:
        return "key_inactive", int(balance)
    return "insufficient_balance", int(balance)
