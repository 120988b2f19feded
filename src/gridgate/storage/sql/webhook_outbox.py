"""Writing webhook events into the outbox, inside the transaction of what they announce.

``insert_event`` is for any change made in a ``Connection`` transaction (a key's revocation, a
spend cap reached: call it in that transaction, and the event is committed with the change or
not at all). ``balance_low_*`` and ``balance_after_credit`` are the ``balance.low`` checks
where the balance goes down: one conditional ``UPDATE balance_thresholds SET armed = false …
RETURNING`` that matches only when the balance just crossed below the account's armed threshold
(old ≥ threshold > new), and the event written from what it returned. Without a threshold it
is one primary-key probe of the (small) ``balance_thresholds`` table that matches nothing; on
PostgreSQL two more CTEs of the hold's single statement. A credit that lifts the balance back
to the threshold re-arms it: one event per fall, however often leases take and give back
slices around it.

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
    Select,
    Text,
    Update,
    bindparam,
    cast,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gridgate.storage.schema import balance_thresholds, webhook_events

EVENT_COLUMNS = ["id", "type", "account_id", "payload", "created_us"]


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
    an IntegrityError: use ``insert_event_once`` where several may race). Inside PostgreSQL's
    one-statement hold, use ``event_insert_from`` as a CTE instead. Outside any stored change,
    core code calls ``core/webhooks/outbox.py:WebhookOutbox.emit`` (``AppState.webhooks``)."""
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


def event_insert_from(rows: Select[Any], *, dialect: str, once: bool = False) -> Insert:
    """An ``INSERT … SELECT`` of events for a single statement (PostgreSQL's hot path: ``.cte()``
    it and ``add_cte`` it to the statement): ``rows`` selects, in order, the id, type,
    account_id, payload (JSON text) and created_us of each event. ``once``: an id already
    written is skipped (a deterministic id, e.g. ``cap.reached`` per cap and window)."""
    if not once:
        return insert(webhook_events).from_select(EVENT_COLUMNS, rows)
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        make(webhook_events)
        .from_select(EVENT_COLUMNS, rows)
        .on_conflict_do_nothing(index_elements=["id"])
    )


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


def _low_payload(
    account: ColumnElement[Any], balance: ColumnElement[Any], below: ColumnElement[Any]
) -> ColumnElement[Any]:
    """The event's data as JSON text, built in SQL (PostgreSQL's one statement): ids are
    ``[A-Za-z0-9_-]``, amounts integers; the keys in ``insert_event``'s (sorted) order."""
    return (
        literal('{"account_id":"', Text)
        + cast(account, Text)
        + literal('","balance_nanos":', Text)
        + cast(balance, Text)
        + literal(',"threshold_nanos":', Text)
        + cast(below, Text)
        + literal("}", Text)
    )


def _disarm(
    account: ColumnElement[Any], balance: ColumnElement[Any], amount: ColumnElement[Any]
) -> Update:
    """Disarm the account's threshold when ``balance`` (the new balance, after ``amount`` was
    taken) just crossed below it — old ≥ threshold > new — and it was armed; RETURNING says
    whether it fired."""
    t = balance_thresholds.c
    return (
        update(balance_thresholds)
        .where(t.account_id == account, t.armed, t.below > balance, t.below <= balance + amount)
        .values(armed=False)
    )


def balance_low_cte(taken: CTE) -> CTE:
    """PostgreSQL's hold statement: ``taken`` is the CTE of the balance UPDATE (its ``id`` and
    new ``balance``). Two more CTEs: the threshold disarmed when crossed, and the event written
    from what that returned (id ``evt_low_<hold id>``)."""
    t = balance_thresholds.c
    amount = bindparam("p_amount", type_=BigInteger)
    fired = (
        _disarm(taken.c.id, taken.c.balance, amount)
        .returning(t.account_id, t.below, taken.c.balance)
        .cte("low_fired")
    )
    event = select(
        literal("evt_low_", Text) + bindparam("p_hold", type_=Text),
        literal("balance.low", Text),
        fired.c.account_id,
        _low_payload(fired.c.account_id, fired.c.balance, fired.c.below),
        bindparam("p_now", type_=BigInteger),
    ).select_from(fired)
    return insert(webhook_events).from_select(EVENT_COLUMNS, event).cte("balance_low")


_DISARM = _disarm(
    bindparam("p_account", type_=Text),
    bindparam("p_balance", type_=BigInteger),
    bindparam("p_amount", type_=BigInteger),
).returning(balance_thresholds.c.below)
_REARM = (
    update(balance_thresholds)
    .where(
        balance_thresholds.c.account_id == bindparam("p_account", type_=Text),
        balance_thresholds.c.armed.is_(False),
        balance_thresholds.c.below <= bindparam("p_balance", type_=BigInteger),
    )
    .values(armed=True)
)


def _balance_low(
    conn: Connection, account_id: str, balance: int, taken: int, now_us: int, event_id: str
) -> None:
    params = {"p_account": account_id, "p_balance": balance, "p_amount": taken}
    below = conn.execute(_DISARM, params).scalar_one_or_none()
    if below is None:
        return
    data = {"account_id": account_id, "balance_nanos": balance, "threshold_nanos": int(below)}
    insert_event(conn, "balance.low", account_id, data, now_us, event_id=event_id)


def balance_low_after_hold(conn: Connection, params: Mapping[str, Any], balance: int) -> None:
    """SQLite's hold transaction, after the balance UPDATE returned ``balance``: ``params``
    are the hold's (``p_hold``, ``p_account``, ``p_amount``, ``p_now``). Without a threshold
    (or a disarmed one) this is one UPDATE that matches nothing."""
    event_id = "evt_low_" + params["p_hold"]
    _balance_low(conn, params["p_account"], balance, params["p_amount"], params["p_now"], event_id)


def balance_after_credit(
    conn: Connection, account_id: str, balance: int, change: int, now_us: int
) -> None:
    """After a credit or an adjustment of ``change`` left ``balance``: a debit may fire
    ``balance.low``; a top-up back to the threshold re-arms it."""
    if change < 0:
        _balance_low(conn, account_id, balance, -change, now_us, new_event_id())
    elif change > 0:
        conn.execute(_REARM, {"p_account": account_id, "p_balance": balance})
