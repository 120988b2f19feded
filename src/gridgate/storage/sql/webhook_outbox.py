"""Writing webhook events into the outbox, inside the transaction of what they announce.

``insert_event`` is for any change made in a ``Connection`` transaction (a key's revocation, a
spend cap reached: call it in that transaction, and the event is committed with the change or
not at all). ``balance_low_*`` are the ``balance.low`` checks of the ledger's hot path: one
conditional ``INSERT … SELECT`` that writes an event only when the balance just crossed below
the account's threshold (old ≥ threshold > new). Without a threshold it is one primary-key probe
of the (small) ``balance_thresholds`` table that matches nothing; on PostgreSQL it is one more
CTE of the hold's single statement.

Event ids: ``evt_`` and 24 hex digits, except where a deterministic id deduplicates (the
hold's ``balance.low``: ``evt_low_<hold id>``; an offer's ejection: see core/webhooks)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Connection,
    Insert,
    Text,
    bindparam,
    cast,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gridgate.storage.schema import balance_thresholds, webhook_events

EVENT_COLUMNS = ["id", "type", "account_id", "payload", "created_us"]

_p_balance = bindparam("p_balance", type_=BigInteger)
_p_event = bindparam("p_event", type_=Text)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def insert_event(
    conn: Connection,
    event_type: str,
    account_id: str | None,
    data: Mapping[str, Any],
    now_us: int,
    *,
    event_id: str | None = None,
) -> str:
    """Write an event into the outbox in ``conn``'s open transaction; returns its id. ``data``
    must be JSON-serialisable and hold no secret (it is sent to every subscribed endpoint).

    For the spend caps (``cap.reached``): call it in the transaction that finds the cap reached,
    e.g. ``insert_event(conn, "cap.reached", account_id, {"cap_id": …, "scope": "key",
    "key_id": …, "window": "daily", "limit_nanos": …, "spent_nanos": …, "resets_at": …},
    now_us, event_id=f"evt_cap_{cap_id}_{window_start_us}")`` — a deterministic id makes N
    processes reaching the same cap in the same window write one event (a duplicate id raises
    an IntegrityError: use ``insert_event_once`` where several may race)."""
    eid = event_id or new_event_id()
    conn.execute(insert(webhook_events), _values(eid, event_type, account_id, data, now_us))
    return eid


def insert_event_once(
    conn: Connection,
    event_type: str,
    account_id: str | None,
    data: Mapping[str, Any],
    now_us: int,
    *,
    event_id: str,
) -> bool:
    """``insert_event`` with a deterministic ``event_id``, ignored when that id was written
    already (by this transaction's rivals too): whether it was written now."""
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = dialect(webhook_events).on_conflict_do_nothing(index_elements=["id"])
    result = conn.execute(stmt, _values(event_id, event_type, account_id, data, now_us))
    return bool(result.rowcount)


def _values(
    event_id: str,
    event_type: str,
    account_id: str | None,
    data: Mapping[str, Any],
    now_us: int,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": event_type,
        "account_id": account_id,
        "payload": json.dumps(dict(data), separators=(",", ":"), sort_keys=True),
        "created_us": now_us,
    }


def _low_payload(account: ColumnElement[Any], balance: ColumnElement[Any]) -> ColumnElement[Any]:
    """The event's data as JSON text, built in SQL: ids are ``[A-Za-z0-9_-]``, numbers integers."""
    return (
        literal('{"account_id":"', Text)
        + cast(account, Text)
        + literal('","balance_nanos":', Text)
        + cast(balance, Text)
        + literal(',"threshold_nanos":', Text)
        + cast(balance_thresholds.c.below, Text)
        + literal("}", Text)
    )


def _balance_low(
    event_id: ColumnElement[Any],
    account: ColumnElement[Any],
    balance: ColumnElement[Any],
    amount: ColumnElement[Any],
    now: ColumnElement[Any],
) -> Insert:
    """``balance.low`` when ``balance`` (the new balance, after ``amount`` was taken) crossed
    below the account's threshold."""
    crossed = select(
        event_id,
        literal("balance.low", Text),
        account,
        _low_payload(account, balance),
        now,
    ).where(
        balance_thresholds.c.account_id == account,
        balance_thresholds.c.below > balance,
        balance_thresholds.c.below <= balance + amount,
    )
    return insert(webhook_events).from_select(EVENT_COLUMNS, crossed)


def balance_low_cte(taken: CTE) -> CTE:
    """PostgreSQL's hold statement: ``taken`` is the CTE of the balance UPDATE (its ``id`` and
    new ``balance``); the event's id is ``evt_low_<hold id>``."""
    hold = bindparam("p_hold", type_=Text)
    amount = bindparam("p_amount", type_=BigInteger)
    now = bindparam("p_now", type_=BigInteger)
    stmt = _balance_low(literal("evt_low_", Text) + hold, taken.c.id, taken.c.balance, amount, now)
    return stmt.cte("balance_low")


_HOLD_LOW = _balance_low(
    literal("evt_low_", Text) + bindparam("p_hold", type_=Text),
    bindparam("p_account", type_=Text),
    _p_balance,
    bindparam("p_amount", type_=BigInteger),
    bindparam("p_now", type_=BigInteger),
)
_DEBIT_LOW = _balance_low(
    _p_event,
    bindparam("p_account", type_=Text),
    _p_balance,
    bindparam("p_amount", type_=BigInteger),
    bindparam("p_now", type_=BigInteger),
)


def balance_low_after_hold(conn: Connection, params: Mapping[str, Any], balance: int) -> None:
    """SQLite's hold transaction, after the balance UPDATE returned ``balance``: ``params``
    are the hold's (``p_hold``, ``p_account``, ``p_amount``, ``p_now``)."""
    conn.execute(_HOLD_LOW, {**params, "p_balance": balance})


def balance_low_after_debit(
    conn: Connection, account_id: str, balance: int, debit: int, now_us: int
) -> None:
    """An operator's debit (a negative adjustment) of ``debit`` left ``balance``."""
    conn.execute(
        _DEBIT_LOW,
        {
            "p_event": new_event_id(),
            "p_account": account_id,
            "p_balance": balance,
            "p_amount": debit,
            "p_now": now_us,
        },
    )
