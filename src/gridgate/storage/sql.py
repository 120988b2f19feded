"""The one SQL store: SQLAlchemy Core over SQLite and PostgreSQL.

Every operation is a transaction function (plain SQLAlchemy Core over a ``Connection``), written
once for both databases and run in one hop by ``runner.py``. The exception is the hot path on
PostgreSQL: hold, settle and release are each ONE statement of data-modifying CTEs run in
autocommit — one round trip, and the account row stays locked only while that statement runs
(a BEGIN … COMMIT keeps it locked across five round trips, which caps how many holds per second
one account can take). They match the SQLite transactions ``_place_hold`` / ``_close_hold``
condition for condition and row for row; the contract suite runs both. And on SQLite,
``get_key_by_hash`` (every request) is plain DB-API on the runner's read-only ``reader``
connection in the calling thread: no thread hop, no SQLAlchemy.

Money never moves by read-then-write. Every balance change is a conditional
``UPDATE accounts SET balance = balance ± :amt WHERE id = :id AND <balance stays ≥ 0>`` whose
``RETURNING`` says whether it happened, atomically with its ledger row. On PostgreSQL (READ
COMMITTED) that UPDATE re-checks its WHERE clause against the newest row version after waiting
for a concurrent writer; on SQLite writers are serialised by ``BEGIN IMMEDIATE``. Hot-path
statements are built once, with bind parameters, at import.

Driver exceptions become ``StorageError`` in one place, ``_translate`` (inline on that fast path).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, cast

import msgspec
from sqlalchemy import (
    BigInteger,
    Connection,
    Insert,
    Integer,
    Row,
    Select,
    Table,
    Text,
    Update,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import SQLAlchemyError

from gridgate.storage import migrations, sql_catalog
from gridgate.storage.ports.errors import (
    Conflict,
    IdempotencyConflict,
    NotFoundInStore,
    StorageError,
    StoreUnavailable,
)
from gridgate.storage.ports.ledger import (
    LEASE_ID_PREFIX,
    AccountBalance,
    HoldMismatch,
    HoldRefusal,
    HoldResult,
    SettleResult,
    VerifyReport,
)
from gridgate.storage.ports.store import Store
from gridgate.storage.records import (
    AccountRecord,
    AuditEntry,
    AuditNote,
    ChangeKind,
    ChangeRecord,
    DailyUsage,
    DeliveryRow,
    EntryKind,
    HoldRecord,
    HoldStatus,
    InstrumentRecord,
    KeyRecord,
    LedgerEntry,
    LimitOverride,
    LimitScope,
    ManagementTokenRecord,
    OfferRecord,
    PricePoint,
    Role,
    SessionRecord,
    SupplierRecord,
    UsageRecord,
    UserRecord,
)
from gridgate.storage.runner import (
    Dialect,
    Runner,
    SqliteRunner,
    TxFunction,
    driver_url,
    make_runner,
)
from gridgate.storage.schema import (
    accounts,
    api_keys,
    audit_log,
    changes,
    holds,
    ledger_entries,
    management_tokens,
    rate_limits,
    sessions,
    usage_records,
    users,
)
from gridgate.storage.schema import instruments as instruments_t
from gridgate.storage.schema import offers as offers_t
from gridgate.storage.schema import suppliers as suppliers_t

T = TypeVar("T")


def _now_us() -> int:
    return time.time_ns() // 1000


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    """The storage boundary: driver and SQLAlchemy errors become ``StorageError`` — and
    ``StoreUnavailable`` when the database could not be reached (``_unreachable``)."""
    try:
        yield
    except (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError) as exc:
        orig = getattr(exc, "orig", None)
        detail = f"{type(orig).__name__}: {orig}" if orig is not None else f"{exc}"
        error = StoreUnavailable if _unreachable(exc) else StorageError
        raise error(f"database error: {detail}") from exc


# SQLSTATE classes of a server that is gone or going: connection exceptions (08), operator
# intervention (57: shutting down, crashed, not yet accepting), insufficient resources (53)
_UNREACHABLE_SQLSTATES = ("08", "57", "53")
# SQLite's words for a file it cannot use right now (another process's lock, the disk)
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "readonly database")


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached right now, rather than that the
    statement itself was wrong: the former is a 503 to retry, the latter a bug (500)."""
    if isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None) or exc
    cause = orig.__cause__ if orig.__cause__ is not None else orig
    if isinstance(cause, OSError | TimeoutError):
        return True
    sqlstate = getattr(cause, "sqlstate", None) or getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_UNREACHABLE_SQLSTATES)
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return any(word in text for word in _SQLITE_UNAVAILABLE)
    # asyncpg's own connection-level errors (a closed connection, a lost one)
    return isinstance(exc, sa_exc.InterfaceError) or type(cause).__name__ in (
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "InterfaceError",
    )


class _Replay(Exception):
    """A concurrent credit with the same idempotency key won; roll back and compare with it."""


# -- statements, built once -----------------------------------------------------------------
# Bind parameter names start with ``p_`` (names of columns being SET are reserved).

_p_account = bindparam("p_account", type_=Text)
_p_key = bindparam("p_key", type_=Text)
_p_hold = bindparam("p_hold", type_=Text)
_p_status = bindparam("p_status", type_=Text)
_p_amount = bindparam("p_amount", type_=BigInteger)
_p_charge = bindparam("p_charge", type_=BigInteger)
_p_now = bindparam("p_now", type_=BigInteger)
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
_ADD = (
    update(accounts)
    .where(accounts.c.id == _p_account, accounts.c.balance + _p_amount >= 0)
    .values(balance=accounts.c.balance + _p_amount)
    .returning(accounts.c.balance)
)
_REFUND = (
    update(accounts)
    .where(accounts.c.id == _p_account)
    .values(balance=accounts.c.balance + _p_amount)
)
_BALANCE = select(accounts.c.balance).where(accounts.c.id == _p_account)
_PING = select(literal(1))
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
_ACTIVE_KEY_OF = select(api_keys.c.id).where(
    api_keys.c.id == _p_key,
    api_keys.c.account_id == _p_account,
    _KEY_ACTIVE,
)
_ENTRY_BY_IDEMPOTENCY_KEY = select(ledger_entries).where(ledger_entries.c.idempotency_key == _p_key)
_TOUCH_KEY = (
    update(api_keys)
    .where(
        api_keys.c.id == _p_key,
        or_(api_keys.c.last_used_us.is_(None), api_keys.c.last_used_us < _p_now),
    )
    .values(last_used_us=_p_now)
)
_REVOKE_KEY = (
    update(api_keys)
    .where(api_keys.c.id == _p_key)
    .values(revoked_us=func.coalesce(api_keys.c.revoked_us, _p_now))
    .returning(*api_keys.c)
)

# Offer status: every offer id the usage table names, found by one index seek each (a loose
# scan of ix_usage_records_offer_created, however many records there are)…
_OFFER_IDS = text(
    "WITH RECURSIVE seen (offer_id) AS ("
    " SELECT MIN(offer_id) FROM usage_records"
    " UNION ALL"
    " SELECT (SELECT MIN(u.offer_id) FROM usage_records u WHERE u.offer_id > seen.offer_id)"
    " FROM seen WHERE seen.offer_id IS NOT NULL"
    ") SELECT offer_id FROM seen WHERE offer_id IS NOT NULL"
)
# …then each offer's latest deliveries, read backwards along the same index.
_NOT_DELIVERIES = ("in_progress", "rejected")  # a stream's checkpoint; refused before dispatch
_OFFER_DELIVERIES = (
    select(
        usage_records.c.request_id,
        usage_records.c.offer_id,
        usage_records.c.instrument,
        usage_records.c.outcome,
        usage_records.c.status,
        usage_records.c.stream,
        usage_records.c.created_us,
        usage_records.c.output_tokens,
        usage_records.c.ttft_us,
        usage_records.c.generation_us,
        usage_records.c.in_spec,
    )
    .where(
        usage_records.c.offer_id == bindparam("p_offer", type_=Text),
        usage_records.c.created_us >= bindparam("p_since", type_=BigInteger),
        usage_records.c.outcome.not_in(_NOT_DELIVERIES),
    )
    .order_by(usage_records.c.created_us.desc(), usage_records.c.request_id.desc())
    .limit(bindparam("p_limit", type_=Integer))
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
    return select(taken.c.balance).add_cte(hold, entry.cte("entry"))


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


# -- rows → records -------------------------------------------------------------------------


def _account(row: Row[Any]) -> AccountRecord:
    return AccountRecord(
        id=row.id, name=row.name, balance=int(row.balance), created_us=int(row.created_us)
    )


def _key(row: Row[Any]) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        prefix=row.prefix,
        secret_hash=row.secret_hash,
        created_us=row.created_us,
        expires_us=row.expires_us,
        revoked_us=row.revoked_us,
        last_used_us=row.last_used_us,
    )


# The SQLite fast path of ``get_key_by_hash``: plain DB-API on the runner's ``reader``.
_KEY_BY_HASH_SQL = (
    "SELECT id, account_id, name, prefix, secret_hash, created_us, expires_us, revoked_us,"
    " last_used_us FROM api_keys WHERE secret_hash = ?"
)


def _key_from_tuple(r: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(
        id=r[0],
        account_id=r[1],
        name=r[2],
        prefix=r[3],
        secret_hash=r[4],
        created_us=r[5],
        expires_us=r[6],
        revoked_us=r[7],
        last_used_us=r[8],
    )


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


_USAGE_FIELDS: tuple[str, ...] = UsageRecord.__struct_fields__
_SQLITE_UPSERT_USAGE = (
    f"INSERT INTO usage_records ({', '.join(_USAGE_FIELDS)}) "
    f"VALUES ({', '.join('?' for _ in _USAGE_FIELDS)}) "
    "ON CONFLICT (request_id) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in _USAGE_FIELDS if f != "request_id")
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


def _usage(row: Row[Any]) -> UsageRecord:
    m = row._mapping
    return UsageRecord(
        request_id=m["request_id"],
        created_us=m["created_us"],
        account_id=m["account_id"],
        key_id=m["key_id"],
        instrument=m["instrument"],
        supplier=m["supplier"],
        offer_id=m["offer_id"],
        upstream_model=m["upstream_model"],
        stream=bool(m["stream"]),
        input_tokens=m["input_tokens"],
        output_tokens=m["output_tokens"],
        reasoning_tokens=m["reasoning_tokens"],
        cached_tokens=m["cached_tokens"],
        usage_estimated=bool(m["usage_estimated"]),
        price_input_per_m=m["price_input_per_m"],
        price_output_per_m=m["price_output_per_m"],
        cost=m["cost"],
        hold_id=m["hold_id"],
        ttft_us=m["ttft_us"],
        generation_us=m["generation_us"],
        duration_us=m["duration_us"],
        outcome=m["outcome"],
        status=m["status"],
        billed=bool(m["billed"]),
        in_spec=None if m["in_spec"] is None else bool(m["in_spec"]),
        spec_note=m["spec_note"],
        error=m["error"],
    )


def _delivery(row: Row[*tuple[Any, ...]]) -> DeliveryRow:
    """A row of ``_OFFER_DELIVERIES`` (positional: a row's attribute lookup costs several times
    more, and a report reads thousands)."""
    (request_id, offer_id, instrument, outcome, status, stream) = row[:6]
    (created_us, output_tokens, ttft_us, generation_us, in_spec) = row[6:]
    return DeliveryRow(
        request_id=request_id,
        offer_id=offer_id,
        instrument=instrument,
        outcome=outcome,
        status=status,
        stream=bool(stream),
        created_us=created_us,
        output_tokens=output_tokens,
        ttft_us=ttft_us,
        generation_us=generation_us,
        in_spec=None if in_spec is None else bool(in_spec),
    )


def _limits(row: Row[Any]) -> LimitOverride:
    return LimitOverride(
        scope=cast(LimitScope, row.scope),
        subject=row.subject,
        requests_per_minute=row.requests_per_minute,
        tokens_per_minute=row.tokens_per_minute,
        concurrent=row.concurrent,
        updated_us=row.updated_us,
    )


def _user(row: Row[Any]) -> UserRecord:
    return UserRecord(
        id=row.id,
        email=row.email,
        name=row.name,
        role=cast(Role, row.role),
        account_id=row.account_id,
        password_hash=row.password_hash,
        created_us=int(row.created_us),
        disabled_us=None if row.disabled_us is None else int(row.disabled_us),
    )


def _session(row: Row[Any]) -> SessionRecord:
    return SessionRecord(
        id_hash=row.id_hash,
        user_id=row.user_id,
        csrf_hash=row.csrf_hash,
        created_us=int(row.created_us),
        expires_us=int(row.expires_us),
        last_seen_us=int(row.last_seen_us),
    )


def _token(row: Row[Any]) -> ManagementTokenRecord:
    return ManagementTokenRecord(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        secret_hash=row.secret_hash,
        created_us=int(row.created_us),
        expires_us=row.expires_us,
        revoked_us=row.revoked_us,
        last_used_us=row.last_used_us,
    )


def _audit(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=int(row.id),
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        detail=json.loads(row.detail),
        created_us=int(row.created_us),
    )


def _announce(conn: Connection, kind: ChangeKind, subject: str, now_us: int) -> None:
    """Append to the change feed, inside the transaction of the change it announces."""
    conn.execute(insert(changes), {"kind": kind, "subject": subject, "created_us": now_us})


def _audit_values(
    actor: str, action: str, subject: str, detail: Mapping[str, Any], now_us: int
) -> dict[str, Any]:
    return {
        "actor": actor,
        "action": action,
        "subject": subject,
        "detail": json.dumps(dict(detail), separators=(",", ":"), sort_keys=True),
        "created_us": now_us,
    }


def _note(conn: Connection, note: AuditNote | None, subject: str, now_us: int) -> None:
    """Write ``note`` to the audit log about ``subject``, inside the transaction of the change."""
    if note is not None:
        conn.execute(
            insert(audit_log), _audit_values(note.actor, note.action, subject, note.detail, now_us)
        )


# -- the store ------------------------------------------------------------------------------
# -- the store ------------------------------------------------------------------------------


class SqlStore:
    """``Store`` over SQLite or PostgreSQL. ``await open()`` before use (or ``async with``)."""

    def __init__(
        self, url: str, *, pool_size: int | None = None, max_overflow: int | None = None
    ) -> None:
        """``url``: ``sqlite:///path.db``, ``sqlite:///:memory:`` or ``postgresql://…``.
        ``pool_size`` / ``max_overflow`` size the connection pool (PostgreSQL: 10 + 5;
        SQLite: 4 + 0, one worker thread per connection; ``:memory:`` has one connection)."""
        _, self._dialect = driver_url(url)  # a bad URL fails here, not at open()
        self._url = url
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._runner: Runner | None = None
        self._reader: sqlite3.Connection | None = None  # SQLite file: the loop-thread reader
        self._entry_once = self._insert_ignoring(ledger_entries, "idempotency_key").returning(
            ledger_entries.c.id
        )
        self._usage_upsert = self._upsert(usage_records, "request_id")
        # an operator's edit (edited_us) and disable outlive every seeding from config
        self._seed_instrument = self._upsert(instruments_t, "id", unless_edited=True)
        self._seed_supplier = self._upsert(suppliers_t, "name", unless_edited=True)
        self._seed_offer = self._upsert(offers_t, "id", keep=("disabled_us",), unless_edited=True)

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            if self._runner is None:
                self._runner = make_runner(
                    self._url, pool_size=self._pool_size, max_overflow=self._max_overflow
                )
                with _translate():
                    await self._runner.prepare()
            await self._write(migrations.apply_migrations)
            if isinstance(self._runner, SqliteRunner):
                self._reader = self._runner.reader
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._reader = None
        runner, self._runner = self._runner, None
        if runner is not None:
            with _translate():
                await runner.close()

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute(_PING).scalar_one())

    async def schema_version(self) -> int:
        """The newest migration applied to the database (0 when never migrated)."""
        return max(await self._read(migrations.applied_versions), default=0)

    def _require_runner(self) -> Runner:
        if self._runner is None:
            raise StorageError("the store is not open")
        return self._runner

    async def _read(self, fn: TxFunction[T], *, snapshot: bool = False) -> T:
        runner = self._require_runner()
        with _translate():
            return await runner.read(fn, snapshot=snapshot)

    async def _write(self, fn: TxFunction[T]) -> T:
        """Run ``fn`` as one write transaction: committed on return, rolled back on raise."""
        runner = self._require_runner()
        with _translate():
            return await runner.write(fn)

    async def _write_statement(self, fn: TxFunction[T]) -> T:
        """Run ``fn``, which executes exactly one statement, atomically."""
        runner = self._require_runner()
        with _translate():
            return await runner.write_statement(fn)

    # -- dialect-specific statements --------------------------------------------------------

    def _insert_ignoring(self, table: Table, conflict: str) -> Insert:
        if self._dialect == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing(index_elements=[conflict])
        return sqlite_dialect.insert(table).on_conflict_do_nothing(index_elements=[conflict])

    def _upsert(
        self, table: Table, key: str, *, keep: tuple[str, ...] = (), unless_edited: bool = False
    ) -> Insert:
        """Insert, or on a conflicting ``key`` replace every column but those in ``keep`` —
        with ``unless_edited``, only a row no operator has edited (``edited_us`` unset)."""
        cols = [c.name for c in table.columns if c.name != key and c.name not in keep]
        where = table.c.edited_us.is_(None) if unless_edited else None
        if self._dialect == "postgresql":
            pg = pg_dialect.insert(table)
            return pg.on_conflict_do_update(
                index_elements=[key], set_={c: pg.excluded[c] for c in cols}, where=where
            )
        lite = sqlite_dialect.insert(table)
        return lite.on_conflict_do_update(
            index_elements=[key], set_={c: lite.excluded[c] for c in cols}, where=where
        )

    # -- accounts ---------------------------------------------------------------------------

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
            if conn.execute(_ADD, params).first() is None:
                if conn.execute(_BALANCE, params).first() is None:
                    raise NotFoundInStore(f"no account {account_id!r}")
                raise ValueError("an adjustment may not take the balance below zero")
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

    # -- keys -------------------------------------------------------------------------------

    async def create_key(
        self,
        *,
        account_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        expires_us: int | None,
        audit: AuditNote | None = None,
    ) -> KeyRecord:
        record = KeyRecord(
            id="key_" + secrets.token_hex(12),
            account_id=account_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            created_us=_now_us(),
            expires_us=expires_us,
        )
        values = {f: getattr(record, f) for f in record.__struct_fields__}

        def tx(conn: Connection) -> None:
            if conn.execute(_BALANCE, {"p_account": account_id}).first() is None:
                raise NotFoundInStore(f"no account {account_id!r}")
            conn.execute(insert(api_keys), values)
            _note(conn, audit, record.id, record.created_us)

        await self._write(tx)
        return record

    async def get_key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """SQLite (a file): an indexed read on the runner's ``reader``, in this thread, with no
        await — a few microseconds instead of a hop to a worker thread. In autocommit, fully
        fetched: no read transaction outlives the call, so the next call sees every commit.
        Synchronous, so concurrent tasks never interleave on the connection."""
        reader = self._reader
        if reader is not None:
            try:
                rows = reader.execute(_KEY_BY_HASH_SQL, (secret_hash,)).fetchall()
            except sqlite3.OperationalError:
                pass  # busy (rare in WAL mode): the worker threads wait for it, below
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {type(exc).__name__}: {exc}") from exc
            else:
                return _key_from_tuple(rows[0]) if rows else None
        stmt = select(api_keys).where(api_keys.c.secret_hash == secret_hash)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _key(row)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        stmt = select(api_keys).where(api_keys.c.id == key_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _key(row)

    async def list_keys(self, account_id: str | None = None) -> list[KeyRecord]:
        stmt = select(api_keys).order_by(api_keys.c.created_us, api_keys.c.id)
        if account_id is not None:
            stmt = stmt.where(api_keys.c.account_id == account_id)
        return await self._read(lambda conn: [_key(r) for r in conn.execute(stmt)])

    async def revoke_key(self, key_id: str, *, audit: AuditNote | None = None) -> KeyRecord:
        now = _now_us()
        params = {"p_key": key_id, "p_now": now}

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(_REVOKE_KEY, params).first()
            if row is not None:
                _announce(conn, "key", key_id, now)
                if row.revoked_us == now:  # revoked now, not by an earlier call
                    _note(conn, audit, key_id, now)
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no key {key_id!r}")
        return _key(row)

    async def rename_key(
        self, key_id: str, name: str, *, audit: AuditNote | None = None
    ) -> KeyRecord:
        stmt = (
            update(api_keys).where(api_keys.c.id == key_id).values(name=name).returning(*api_keys.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None:
                _note(conn, audit, key_id, _now_us())
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no key {key_id!r}")
        return _key(row)

    async def touch_keys(self, last_used: dict[str, int]) -> None:
        if not last_used:
            return
        # a fixed row order, so that two batches never wait on each other in a cycle
        params = [{"p_key": k, "p_now": v} for k, v in sorted(last_used.items())]
        await self._write(lambda conn: conn.execute(_TOUCH_KEY, params))

    # -- ledger -----------------------------------------------------------------------------

    async def place_hold(
        self,
        *,
        hold_id: str,
        account_id: str,
        key_id: str | None,
        amount: int,
        expires_us: int,
        now_us: int,
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
        if self._dialect == "postgresql":
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
        return HoldResult(hold=hold, refused=None, balance=int(balance))

    async def settle_hold(self, hold_id: str, charge: int, *, now_us: int) -> SettleResult:
        if charge < 0:
            raise ValueError("a charge cannot be negative")
        return await self._close_hold(hold_id, charge, "settled", "settle", now_us)

    async def release_hold(self, hold_id: str, *, now_us: int) -> SettleResult:
        return await self._close_hold(hold_id, 0, "released", "release", now_us)

    async def _close_hold(
        self, hold_id: str, charge: int, status: HoldStatus, kind: EntryKind, now_us: int
    ) -> SettleResult:
        params = {
            "p_hold": hold_id,
            "p_status": status,
            "p_charge": charge,
            "p_now": now_us,
            "p_kind": kind,
        }
        if self._dialect == "postgresql":
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

    # -- usage ------------------------------------------------------------------------------

    async def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        # the last record of a request wins (a stream's checkpoints, then its final record)
        latest = list({r.request_id: r for r in records}.values())
        if self._dialect == "sqlite":
            # the usage writer's batches run in a worker thread but hold the GIL for as long
            # as Python touches each parameter; plain tuples through the driver's executemany
            # keep the event loop's stalls short (measured: p99 at 1 connection)
            tuples = [tuple(getattr(r, f) for f in _USAGE_FIELDS) for r in latest]
            await self._write(lambda conn: conn.exec_driver_sql(_SQLITE_UPSERT_USAGE, tuples))
            return
        rows = [{f: getattr(r, f) for f in _USAGE_FIELDS} for r in latest]
        await self._write(lambda conn: conn.execute(self._usage_upsert, rows))

    async def list_usage(
        self,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = 100,
        key_id: str | None = None,
        instrument: str | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[UsageRecord]:
        """Newest first; ``since_us`` inclusive, ``until_us`` exclusive; ``limit=None``: all;
        ``before``: only records after this ``(created_us, request_id)`` in that order."""
        u = usage_records
        stmt = _usage_filter(
            select(u).order_by(u.c.created_us.desc(), u.c.request_id.desc()),
            account_id=account_id,
            since_us=since_us,
            until_us=until_us,
            key_id=key_id,
            instrument=instrument,
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        if before is not None:
            created, request_id = before
            stmt = stmt.where(
                or_(
                    u.c.created_us < created,
                    and_(u.c.created_us == created, u.c.request_id < request_id),
                )
            )
        return await self._read(lambda conn: [_usage(r) for r in conn.execute(stmt)])

    async def usage_daily(
        self,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        key_id: str | None = None,
        instrument: str | None = None,
    ) -> list[DailyUsage]:
        """Usage summed per UTC day and instrument, oldest day first. Streams' provisional
        checkpoints (outcome ``in_progress``) count like the final record they become."""
        u = usage_records
        day = (u.c.created_us // _DAY_US).label("day")
        stmt = _usage_filter(
            select(
                day,
                u.c.instrument,
                func.count().label("requests"),
                func.coalesce(func.sum(case((u.c.billed, 1), else_=0)), 0).label("billed"),
                func.coalesce(func.sum(u.c.input_tokens), 0).label("input_tokens"),
                func.coalesce(func.sum(u.c.output_tokens), 0).label("output_tokens"),
                func.coalesce(func.sum(u.c.cost), 0).label("cost"),
            )
            .group_by(day, u.c.instrument)
            .order_by(day, u.c.instrument),
            account_id=account_id,
            since_us=since_us,
            until_us=until_us,
            key_id=key_id,
            instrument=instrument,
        )

        def tx(conn: Connection) -> list[DailyUsage]:
            return [
                DailyUsage(
                    day=int(r.day),
                    instrument=r.instrument,
                    requests=int(r.requests),
                    billed_requests=int(r.billed),
                    input_tokens=int(r.input_tokens),
                    output_tokens=int(r.output_tokens),
                    cost=int(r.cost),
                )
                for r in conn.execute(stmt)
            ]

        return await self._read(tx)

    async def offer_deliveries(self, since_us: int, limit_per_offer: int) -> list[DeliveryRow]:
        """One read: the offer ids (a loose index scan), then each offer's latest deliveries (a
        backward range read of ``ix_usage_records_offer_created``, stopping at the limit). The
        cost follows offers × limit, not how many records the window holds."""
        if limit_per_offer < 1:
            raise ValueError(f"limit_per_offer must be at least 1 (got {limit_per_offer})")

        def tx(conn: Connection) -> list[DeliveryRow]:
            found: list[DeliveryRow] = []
            for offer_id in conn.execute(_OFFER_IDS).scalars().all():
                params = {"p_offer": offer_id, "p_since": since_us, "p_limit": limit_per_offer}
                found += [_delivery(r) for r in conn.execute(_OFFER_DELIVERIES, params)]
            return found

        return await self._read(tx)

    # -- catalog ----------------------------------------------------------------------------

    async def upsert_catalog(
        self,
        instruments: Sequence[InstrumentRecord],
        suppliers: Sequence[SupplierRecord],
        offers: Sequence[OfferRecord],
    ) -> None:
        batches = [
            (self._seed_instrument, [sql_catalog.instrument_values(r) for r in instruments]),
            (self._seed_supplier, [sql_catalog.supplier_values(r) for r in suppliers]),
            (self._seed_offer, [sql_catalog.offer_values(r) for r in offers]),
        ]

        def tx(conn: Connection) -> None:
            now = _now_us()
            for stmt, rows in batches:
                for row in rows:
                    row["edited_us"] = None  # seeding is not an edit
                if rows:
                    conn.execute(stmt, rows)
            sql_catalog.sync_prices(conn, now)
            _announce(conn, "catalog", "*", now)

        await self._write(tx)

    async def load_catalog(
        self,
    ) -> tuple[list[InstrumentRecord], list[SupplierRecord], list[OfferRecord]]:
        def tx(
            conn: Connection,
        ) -> tuple[list[InstrumentRecord], list[SupplierRecord], list[OfferRecord]]:
            by_id = select(instruments_t).order_by(instruments_t.c.id)
            by_name = select(suppliers_t).order_by(suppliers_t.c.name)
            offers = select(offers_t).order_by(offers_t.c.id)
            return (
                [sql_catalog.instrument_of(r) for r in conn.execute(by_id)],
                [sql_catalog.supplier_of(r) for r in conn.execute(by_name)],
                [sql_catalog.offer_of(r) for r in conn.execute(offers)],
            )

        return await self._read(tx, snapshot=True)

    async def set_offer_disabled(
        self, offer_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> OfferRecord:
        now = _now_us()
        stmt = (
            update(offers_t)
            .where(offers_t.c.id == offer_id)
            .values(disabled_us=func.coalesce(offers_t.c.disabled_us, now) if disabled else None)
            .returning(*offers_t.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None:
                sql_catalog.sync_prices(conn, now)
                _announce(conn, "offer", offer_id, now)
                _note(conn, audit, offer_id, now)
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no offer {offer_id!r}")
        return sql_catalog.offer_of(row)

    async def save_instrument(
        self, record: InstrumentRecord, *, create: bool, audit: AuditNote | None = None
    ) -> InstrumentRecord:
        saved = await self._save_catalog(record, create=create, audit=audit, subject=record.id)
        assert isinstance(saved, InstrumentRecord)
        return saved

    async def save_supplier(
        self, record: SupplierRecord, *, create: bool, audit: AuditNote | None = None
    ) -> SupplierRecord:
        saved = await self._save_catalog(record, create=create, audit=audit, subject=record.name)
        assert isinstance(saved, SupplierRecord)
        return saved

    async def save_offer(
        self, record: OfferRecord, *, create: bool, audit: AuditNote | None = None
    ) -> OfferRecord:
        saved = await self._save_catalog(record, create=create, audit=audit, subject=record.id)
        assert isinstance(saved, OfferRecord)
        return saved

    async def _save_catalog(
        self,
        record: sql_catalog.CatalogRecord,
        *,
        create: bool,
        audit: AuditNote | None,
        subject: str,
    ) -> sql_catalog.CatalogRecord:
        def tx(conn: Connection) -> sql_catalog.CatalogRecord:
            now = _now_us()
            saved = sql_catalog.save(conn, record, create=create, now_us=now)
            kind: ChangeKind = "offer" if isinstance(record, OfferRecord) else "catalog"
            _announce(conn, kind, subject, now)
            _note(conn, audit, subject, now)
            return saved

        return await self._write(tx)

    async def price_history(self, instrument: str) -> list[PricePoint]:
        return await self._read(lambda conn: sql_catalog.price_history(conn, instrument))

    # -- limits and the change feed ------------------------------------------------------------

    async def set_limits(
        self, override: LimitOverride, *, audit: AuditNote | None = None
    ) -> LimitOverride:
        now = _now_us()
        saved = msgspec.structs.replace(override, updated_us=now)
        subject = override.subject
        owner = {"key": api_keys.c.id, "account": accounts.c.id, "instrument": instruments_t.c.id}
        column = owner[override.scope]
        values = {f: getattr(saved, f) for f in saved.__struct_fields__}
        where = and_(
            rate_limits.c.scope == override.scope, rate_limits.c.subject == override.subject
        )

        def tx(conn: Connection) -> None:
            if (
                subject != "*"
                and conn.execute(select(column).where(column == subject)).first() is None
            ):
                raise NotFoundInStore(f"no {override.scope} {subject!r}")
            conn.execute(rate_limits.delete().where(where))
            if not saved.empty:
                conn.execute(insert(rate_limits), values)
            _announce(conn, "limits", f"{override.scope}:{subject}", now)
            _note(conn, audit, f"{override.scope}:{subject}", now)

        await self._write(tx)
        return saved

    async def get_limits(self, scope: LimitScope, subject: str) -> LimitOverride | None:
        stmt = select(rate_limits).where(
            rate_limits.c.scope == scope, rate_limits.c.subject == subject
        )
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _limits(row)

    async def list_limits(self) -> list[LimitOverride]:
        stmt = select(rate_limits).order_by(rate_limits.c.scope, rate_limits.c.subject)
        return await self._read(lambda conn: [_limits(r) for r in conn.execute(stmt)])

    async def changes_since(self, since_us: int) -> list[ChangeRecord]:
        stmt = select(changes).where(changes.c.created_us >= since_us).order_by(changes.c.id)

        def tx(conn: Connection) -> list[ChangeRecord]:
            return [
                ChangeRecord(
                    id=int(r.id),
                    kind=cast(ChangeKind, r.kind),
                    subject=r.subject,
                    created_us=r.created_us,
                )
                for r in conn.execute(stmt)
            ]

        return await self._read(tx)

    async def prune_changes(self, before_us: int) -> int:
        stmt = changes.delete().where(changes.c.created_us < before_us)
        return await self._write_statement(lambda conn: conn.execute(stmt).rowcount)

    # -- people and access -------------------------------------------------------------------

    async def create_user(
        self,
        *,
        email: str,
        name: str,
        role: Role,
        account_id: str | None,
        password_hash: str,
        audit: AuditNote | None = None,
    ) -> UserRecord:
        record = UserRecord(
            id="usr_" + secrets.token_hex(12),
            email=email.strip().lower(),
            name=name,
            role=role,
            account_id=account_id,
            password_hash=password_hash,
            created_us=_now_us(),
        )
        values = msgspec.structs.asdict(record)
        stmt = self._insert_ignoring(users, "email").returning(users.c.id)

        def tx(conn: Connection) -> None:
            if account_id is not None and (
                conn.execute(_BALANCE, {"p_account": account_id}).first() is None
            ):
                raise NotFoundInStore(f"no account {account_id!r}")
            if conn.execute(stmt, values).first() is None:
                raise Conflict(f"a user with email {record.email!r} exists already")
            _note(conn, audit, record.id, record.created_us)

        await self._write(tx)
        return record

    async def get_user(self, user_id: str) -> UserRecord | None:
        stmt = select(users).where(users.c.id == user_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _user(row)

    async def get_user_by_email(self, email: str) -> UserRecord | None:
        stmt = select(users).where(users.c.email == email.strip().lower())
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _user(row)

    async def list_users(self, account_id: str | None = None) -> list[UserRecord]:
        stmt = select(users).order_by(users.c.created_us, users.c.id)
        if account_id is not None:
            stmt = stmt.where(users.c.account_id == account_id)
        return await self._read(lambda conn: [_user(r) for r in conn.execute(stmt)])

    async def set_user_disabled(
        self, user_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> UserRecord:
        now = _now_us()
        stmt = (
            update(users)
            .where(users.c.id == user_id)
            .values(disabled_us=func.coalesce(users.c.disabled_us, now) if disabled else None)
            .returning(*users.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None and disabled:
                conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
                # revoked for good: enabling the user again must not revive them
                tokens = management_tokens.c
                conn.execute(
                    update(management_tokens)
                    .where(tokens.user_id == user_id, tokens.revoked_us.is_(None))
                    .values(revoked_us=now)
                )
            if row is not None:
                _note(conn, audit, user_id, now)
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no user {user_id!r}")
        return _user(row)

    async def set_password_hash(
        self, user_id: str, password_hash: str, *, audit: AuditNote | None = None
    ) -> UserRecord:
        stmt = (
            update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash)
            .returning(*users.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None:
                _note(conn, audit, user_id, _now_us())
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no user {user_id!r}")
        return _user(row)

    async def create_session(self, session: SessionRecord) -> SessionRecord:
        values = msgspec.structs.asdict(session)
        user_id = session.user_id

        def tx(conn: Connection) -> None:
            if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
                raise NotFoundInStore(f"no user {user_id!r}")
            conn.execute(insert(sessions), values)

        await self._write(tx)
        return session

    async def get_session_by_hash(self, id_hash: str) -> SessionRecord | None:
        stmt = select(sessions).where(sessions.c.id_hash == id_hash)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _session(row)

    async def touch_session(self, id_hash: str, *, last_seen_us: int, expires_us: int) -> bool:
        stmt = (
            update(sessions)
            .where(sessions.c.id_hash == id_hash, sessions.c.last_seen_us <= last_seen_us)
            .values(
                last_seen_us=last_seen_us,
                expires_us=case(
                    (sessions.c.expires_us < expires_us, expires_us),
                    else_=sessions.c.expires_us,
                ),
            )
        )
        return bool(await self._write_statement(lambda conn: conn.execute(stmt).rowcount))

    async def delete_session(self, id_hash: str) -> bool:
        stmt = sessions.delete().where(sessions.c.id_hash == id_hash)
        return bool(await self._write_statement(lambda conn: conn.execute(stmt).rowcount))

    async def delete_expired_sessions(self, now_us: int) -> int:
        stmt = sessions.delete().where(sessions.c.expires_us <= now_us)
        return int(await self._write_statement(lambda conn: conn.execute(stmt).rowcount))

    async def create_management_token(
        self,
        *,
        user_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        expires_us: int | None,
        audit: AuditNote | None = None,
    ) -> ManagementTokenRecord:
        record = ManagementTokenRecord(
            id="mtk_" + secrets.token_hex(12),
            user_id=user_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            created_us=_now_us(),
            expires_us=expires_us,
        )
        values = msgspec.structs.asdict(record)

        def tx(conn: Connection) -> None:
            if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
                raise NotFoundInStore(f"no user {user_id!r}")
            conn.execute(insert(management_tokens), values)
            _note(conn, audit, record.id, record.created_us)

        await self._write(tx)
        return record

    async def get_management_token_by_hash(self, secret_hash: str) -> ManagementTokenRecord | None:
        stmt = select(management_tokens).where(management_tokens.c.secret_hash == secret_hash)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _token(row)

    async def get_management_token(self, token_id: str) -> ManagementTokenRecord | None:
        stmt = select(management_tokens).where(management_tokens.c.id == token_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _token(row)

    async def list_management_tokens(self, user_id: str) -> list[ManagementTokenRecord]:
        stmt = (
            select(management_tokens)
            .where(management_tokens.c.user_id == user_id)
            .order_by(management_tokens.c.created_us, management_tokens.c.id)
        )
        return await self._read(lambda conn: [_token(r) for r in conn.execute(stmt)])

    async def revoke_management_token(
        self, token_id: str, *, audit: AuditNote | None = None
    ) -> ManagementTokenRecord:
        t = management_tokens
        now = _now_us()
        stmt = (
            update(t)
            .where(t.c.id == token_id)
            .values(revoked_us=func.coalesce(t.c.revoked_us, now))
            .returning(*t.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None and row.revoked_us == now:
                _note(conn, audit, token_id, now)
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no management token {token_id!r}")
        return _token(row)

    async def touch_management_token(self, token_id: str, now_us: int) -> None:
        t = management_tokens
        stmt = (
            update(t)
            .where(t.c.id == token_id, or_(t.c.last_used_us.is_(None), t.c.last_used_us < now_us))
            .values(last_used_us=now_us)
        )
        await self._write_statement(lambda conn: conn.execute(stmt))

    async def append_audit(
        self, actor: str, action: str, subject: str, detail: Mapping[str, Any]
    ) -> AuditEntry:
        now = _now_us()
        values = _audit_values(actor, action, subject, detail, now)
        stmt = insert(audit_log).returning(audit_log.c.id)
        entry_id = await self._write_statement(lambda conn: conn.execute(stmt, values).scalar_one())
        return AuditEntry(
            id=int(entry_id),
            actor=actor,
            action=action,
            subject=subject,
            detail=json.loads(values["detail"]),
            created_us=now,
        )

    async def list_audit(
        self,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int = 100,
        subject: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        for column, value in (
            (audit_log.c.subject, subject),
            (audit_log.c.actor, actor),
            (audit_log.c.action, action),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if since_us is not None:
            stmt = stmt.where(audit_log.c.created_us >= since_us)
        if until_us is not None:
            stmt = stmt.where(audit_log.c.created_us < until_us)
        if before_id is not None:
            stmt = stmt.where(audit_log.c.id < before_id)
        return await self._read(lambda conn: [_audit(r) for r in conn.execute(stmt)])


# -- transaction helpers --------------------------------------------------------------------

_DAY_US = 86_400_000_000


def _usage_filter(
    stmt: Select[Any],
    *,
    account_id: str | None,
    since_us: int | None,
    until_us: int | None,
    key_id: str | None,
    instrument: str | None,
) -> Select[Any]:
    u = usage_records
    for column, value in (
        (u.c.account_id, account_id),
        (u.c.key_id, key_id),
        (u.c.instrument, instrument),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since_us is not None:
        stmt = stmt.where(u.c.created_us >= since_us)
    if until_us is not None:
        stmt = stmt.where(u.c.created_us < until_us)
    return stmt


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
    return int(balance)


def _close_hold(conn: Connection, params: dict[str, Any]) -> tuple[int, int] | None:
    """Close a held hold in one transaction (SQLite); None when it was not ``held``."""
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


def open_store(
    url: str, *, pool_size: int | None = None, max_overflow: int | None = None
) -> SqlStore:
    """The store for a database URL (not yet opened: ``await store.open()`` or ``async with``)."""
    return SqlStore(url, pool_size=pool_size, max_overflow=max_overflow)


if TYPE_CHECKING:

    def _conforms(store: SqlStore) -> Store:  # mypy proves SqlStore implements the port
        return store
