"""Numbered schema migrations, shared by SQLite and PostgreSQL.

``MIGRATIONS`` is append-only: a released step never changes. Each step runs inside the one
write transaction of ``apply_migrations`` (both databases have transactional DDL), and its
version is recorded in ``schema_migrations``. Two processes opening the same database at once
are serialised: on PostgreSQL by ``pg_advisory_xact_lock``, on SQLite by the ``BEGIN IMMEDIATE``
the caller's write transaction starts with. Steps are synchronous SQLAlchemy Core functions, run
like every other transaction by ``runner.py``.

``schema.py`` describes the newest version; a step never reads it. Version 1 creates the tables
from its own frozen copy below (``V1_METADATA``, exactly what version 1 created when released),
and every later step is literal DDL. ``tests/storage`` holds a fingerprint of the frozen version
1 (which must never change) and one of ``schema.py`` (which fails as a reminder to add a step),
and checks that migrating a database yields the indexes ``schema.py`` declares.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    select,
    text,
)

from gridgate.storage import schema
from gridgate.storage.ports.errors import StorageError

# Any fixed 64-bit number; the advisory lock is scoped to the database.
_PG_MIGRATION_LOCK = 0x6772_6964_6761_7465  # "gridgate"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


# -- version 1, frozen: the tables as released. Never edit (the fingerprint test guards it). --

V1_METADATA = MetaData()
_V1_BIG_SERIAL = BigInteger().with_variant(Integer(), "sqlite")

Table(
    "schema_migrations",
    V1_METADATA,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("applied_us", BigInteger, nullable=False),
)

Table(
    "accounts",
    V1_METADATA,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

Table(
    "api_keys",
    V1_METADATA,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("secret_hash", Text, nullable=False, unique=True),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("revoked_us", BigInteger, nullable=True),
    Column("last_used_us", BigInteger, nullable=True),
    Index("ix_api_keys_account_id", "account_id"),
)

Table(
    "holds",
    V1_METADATA,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("key_id", Text, ForeignKey("api_keys.id"), nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("charged", BigInteger, nullable=True),
    Column("status", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("closed_us", BigInteger, nullable=True),
    Index("ix_holds_status_expires", "status", "expires_us"),
)

# Append-only. The original parameters of an idempotent credit are the row itself
# (account_id, amount, kind), so a replay is compared against it.
Table(
    "ledger_entries",
    V1_METADATA,
    Column("id", _V1_BIG_SERIAL, primary_key=True, autoincrement=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("hold_id", Text, ForeignKey("holds.id"), nullable=True),
    Column("idempotency_key", Text, nullable=True, unique=True),
    Column("memo", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_ledger_entries_account_created", "account_id", "created_us"),
    Index("ix_ledger_entries_hold_id", "hold_id"),
)

# A log: no foreign keys, so a batch never fails on a reference.
Table(
    "usage_records",
    V1_METADATA,
    Column("request_id", Text, primary_key=True),
    Column("created_us", BigInteger, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("supplier", Text, nullable=True),
    Column("offer_id", Text, nullable=True),
    Column("upstream_model", Text, nullable=True),
    Column("stream", Boolean, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("usage_estimated", Boolean, nullable=False),
    Column("price_input_per_m", BigInteger, nullable=False),
    Column("price_output_per_m", BigInteger, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("hold_id", Text, nullable=True),
    Column("ttft_us", BigInteger, nullable=True),
    Column("duration_us", BigInteger, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("billed", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_usage_records_account_created", "account_id", "created_us"),
    Index("ix_usage_records_created", "created_us"),
)

Table(
    "instruments",
    V1_METADATA,
    Column("id", Text, primary_key=True),
    Column("display_name", Text, nullable=False),
    Column("quality_floor", Double, nullable=False),
    Column("ttft_ceiling_ms", BigInteger, nullable=True),
    Column("throughput_floor_tps", Double, nullable=True),
    Column("context_floor", BigInteger, nullable=False),
    Column("max_output_floor", BigInteger, nullable=False),
    Column("context_length", BigInteger, nullable=False),
    Column("max_input_tokens", BigInteger, nullable=False),
    Column("max_completion_tokens", BigInteger, nullable=False),
    Column("image_input", Boolean, nullable=False),
    Column("reasoning_efforts", Text, nullable=False),  # JSON array of strings
    Column("default_reasoning_effort", Text, nullable=True),
    Column("enabled", Boolean, nullable=False),
)

Table(
    "suppliers",
    V1_METADATA,
    Column("name", Text, primary_key=True),
    Column("wire", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("api_key_env", Text, nullable=True),
    Column("zero_retention", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
)

# No foreign keys to suppliers / instruments: the catalog is replaced row by row from config,
# and core decides what a dangling offer means.
Table(
    "offers",
    V1_METADATA,
    Column("id", Text, primary_key=True),
    Column("supplier", Text, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("input_per_m", BigInteger, nullable=False),
    Column("output_per_m", BigInteger, nullable=False),
    Column("quality", Double, nullable=False),
    Column("context", BigInteger, nullable=False),
    Column("max_output", BigInteger, nullable=False),
    Column("capabilities", Text, nullable=False),  # JSON array of strings
    Column("enabled", Boolean, nullable=False),
)


def _v1_initial(conn: Connection) -> None:
    tables = [t for t in V1_METADATA.sorted_tables if t.name != "schema_migrations"]
    V1_METADATA.create_all(conn, tables=tables, checkfirst=False)


# -- version 2: balance leases -------------------------------------------------------------


def _v2_lease_indexes(conn: Connection) -> None:
    """``expire_holds`` sums the usage recorded against each hold; ``account_balance`` reads an
    account's open holds."""
    conn.execute(text("CREATE INDEX ix_usage_records_hold_id ON usage_records (hold_id)"))
    conn.execute(text("CREATE INDEX ix_holds_account_status ON holds (account_id, status)"))


# -- version 3: deliveries judged against their instrument's spec ---------------------------


def _v3_delivery_spec(conn: Connection) -> None:
    """Whether an instrument bills out-of-spec deliveries (existing ones: no, the default); each
    usage record's generation time and spec verdict (existing ones: not judged); and the index
    offer status reads an offer's latest deliveries by."""
    for ddl in (
        "ALTER TABLE instruments ADD COLUMN bill_out_of_spec BOOLEAN NOT NULL DEFAULT false",
        "ALTER TABLE usage_records ADD COLUMN generation_us BIGINT NULL",
        "ALTER TABLE usage_records ADD COLUMN in_spec BOOLEAN NULL",
        "ALTER TABLE usage_records ADD COLUMN spec_note TEXT NULL",
        "CREATE INDEX ix_usage_records_offer_created ON usage_records (offer_id, created_us)",
    ):
        conn.execute(text(ddl))


# -- version 4: rate limits and the change feed ------------------------------------------------


def _v4_limits_and_changes(conn: Connection) -> None:
    """Limit overrides per key, account or instrument; an operator's disable of an offer (the
    config's catalog seeding leaves it alone); the change feed processes drop caches by."""
    serial = "BIGSERIAL" if conn.dialect.name == "postgresql" else "INTEGER"
    for ddl in (
        "ALTER TABLE offers ADD COLUMN disabled_us BIGINT NULL",
        "CREATE TABLE rate_limits ("
        " scope TEXT NOT NULL, subject TEXT NOT NULL,"
        " requests_per_minute BIGINT NULL, tokens_per_minute BIGINT NULL,"
        " concurrent BIGINT NULL, updated_us BIGINT NOT NULL,"
        " PRIMARY KEY (scope, subject))",
        f"CREATE TABLE changes (id {serial} NOT NULL PRIMARY KEY,"
        " kind TEXT NOT NULL, subject TEXT NOT NULL, created_us BIGINT NOT NULL)",
        "CREATE INDEX ix_changes_created ON changes (created_us)",
    ):
        conn.execute(text(ddl))


# -- version 5: people and access ------------------------------------------------------------


def _v5_people(conn: Connection) -> None:
    """Users (operators, account owners and members), their browser sessions and management
    tokens (hashes only), and the audit log of every change."""
    serial = "BIGSERIAL" if conn.dialect.name == "postgresql" else "INTEGER"
    for ddl in (
        "CREATE TABLE users ("
        " id TEXT NOT NULL PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
        " role TEXT NOT NULL, account_id TEXT NULL REFERENCES accounts (id),"
        " password_hash TEXT NOT NULL, created_us BIGINT NOT NULL, disabled_us BIGINT NULL,"
        " CONSTRAINT ck_users_role CHECK (role IN ('operator', 'owner', 'member')),"
        " CONSTRAINT ck_users_role_account CHECK ((role = 'operator') = (account_id IS NULL)))",
        "CREATE INDEX ix_users_account_id ON users (account_id)",
        "CREATE TABLE sessions ("
        " id_hash TEXT NOT NULL PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id),"
        " csrf_hash TEXT NOT NULL, created_us BIGINT NOT NULL, expires_us BIGINT NOT NULL,"
        " last_seen_us BIGINT NOT NULL)",
        "CREATE INDEX ix_sessions_user_id ON sessions (user_id)",
        "CREATE INDEX ix_sessions_expires ON sessions (expires_us)",
        "CREATE TABLE management_tokens ("
        " id TEXT NOT NULL PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id),"
        " name TEXT NOT NULL, prefix TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,"
        " created_us BIGINT NOT NULL, expires_us BIGINT NULL, revoked_us BIGINT NULL,"
        " last_used_us BIGINT NULL)",
        "CREATE INDEX ix_management_tokens_user_id ON management_tokens (user_id)",
        f"CREATE TABLE audit_log (id {serial} NOT NULL PRIMARY KEY,"
        " actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,"
        " detail TEXT NOT NULL, created_us BIGINT NOT NULL)",
        "CREATE INDEX ix_audit_log_created ON audit_log (created_us)",
        "CREATE INDEX ix_audit_log_subject_created ON audit_log (subject, created_us)",
    ):
        conn.execute(text(ddl))


# -- version 6: the catalog managed at run time ---------------------------------------------


def _v6_managed_catalog(conn: Connection) -> None:
    """An operator's run-time edit of an instrument, supplier or offer (config seeding then
    leaves the row alone); the offers' price history, started from today's catalog; and the
    index usage filtered by key reads."""
    serial = "BIGSERIAL" if conn.dialect.name == "postgresql" else "INTEGER"
    now = time.time_ns() // 1000
    for ddl in (
        "ALTER TABLE instruments ADD COLUMN edited_us BIGINT NULL",
        "ALTER TABLE suppliers ADD COLUMN edited_us BIGINT NULL",
        "ALTER TABLE offers ADD COLUMN edited_us BIGINT NULL",
        f"CREATE TABLE offer_prices (id {serial} NOT NULL PRIMARY KEY,"
        " offer_id TEXT NOT NULL, instrument TEXT NOT NULL,"
        " input_per_m BIGINT NOT NULL, output_per_m BIGINT NOT NULL,"
        " available BOOLEAN NOT NULL, created_us BIGINT NOT NULL)",
        "CREATE INDEX ix_offer_prices_instrument_created ON offer_prices (instrument, created_us)",
        "CREATE INDEX ix_offer_prices_offer_id ON offer_prices (offer_id, id)",
        "CREATE INDEX ix_usage_records_key_created ON usage_records (key_id, created_us)",
    ):
        conn.execute(text(ddl))
    conn.execute(
        text(
            "INSERT INTO offer_prices"
            " (offer_id, instrument, input_per_m, output_per_m, available, created_us)"
            " SELECT o.id, o.instrument, o.input_per_m, o.output_per_m,"
            " (o.enabled AND o.disabled_us IS NULL AND COALESCE(s.enabled, false)), :now"
            " FROM offers o LEFT JOIN suppliers s ON s.name = o.supplier"
        ),
        {"now": now},
    )


# -- version 7: stored responses ------------------------------------------------------------


def _v7_stored_responses(conn: Connection) -> None:
    """The Responses API's stored responses (``store: true``): the Response JSON per account,
    with its expiry and the response it continues, and its input and output items in order. No
    foreign key: a response and its items are always deleted in one transaction, the response
    row first (so a deleter and the sweep lock in the same order)."""
    for ddl in (
        "CREATE TABLE responses ("
        " id TEXT NOT NULL PRIMARY KEY, account_id TEXT NOT NULL, key_id TEXT NULL,"
        " created_us BIGINT NOT NULL, expires_us BIGINT NOT NULL,"
        " previous_response_id TEXT NULL, response TEXT NOT NULL)",
        "CREATE INDEX ix_responses_account_id ON responses (account_id, id)",
        "CREATE INDEX ix_responses_expires ON responses (expires_us)",
        "CREATE TABLE response_items ("
        " response_id TEXT NOT NULL, position INTEGER NOT NULL, kind TEXT NOT NULL,"
        " item_id TEXT NOT NULL, item TEXT NOT NULL,"
        " PRIMARY KEY (response_id, position),"
        " CONSTRAINT ck_response_items_kind CHECK (kind IN ('input', 'output')))",
    ):
        conn.execute(text(ddl))


# -- version 8: spend caps -------------------------------------------------------------------


def _v8_spend_caps(conn: Connection) -> None:
    """Hard spend caps per account or key and UTC calendar period: the caps, what each has
    committed in each of its windows (reservations in flight included), and which windows every
    capped hold counted against, so closing or expiring it gives back exactly what it did not
    spend. No foreign keys: a cap's rows are deleted with it."""
    for ddl in (
        "CREATE TABLE spend_caps ("
        " id TEXT NOT NULL PRIMARY KEY, account_id TEXT NOT NULL, scope TEXT NOT NULL,"
        " subject TEXT NOT NULL, period TEXT NOT NULL, limit_nanos BIGINT NOT NULL,"
        " created_us BIGINT NOT NULL, updated_us BIGINT NOT NULL,"
        " CONSTRAINT uq_spend_caps_subject UNIQUE (scope, subject, period),"
        " CONSTRAINT ck_spend_caps_scope CHECK (scope IN ('account', 'key')),"
        " CONSTRAINT ck_spend_caps_period"
        " CHECK (period IN ('daily', 'weekly', 'monthly', 'lifetime')),"
        " CONSTRAINT ck_spend_caps_limit CHECK (limit_nanos >= 0))",
        "CREATE INDEX ix_spend_caps_account_id ON spend_caps (account_id)",
        "CREATE TABLE cap_spend ("
        " cap_id TEXT NOT NULL, window_start_us BIGINT NOT NULL, spent BIGINT NOT NULL,"
        " PRIMARY KEY (cap_id, window_start_us))",
        "CREATE TABLE hold_caps ("
        " hold_id TEXT NOT NULL, cap_id TEXT NOT NULL, window_start_us BIGINT NOT NULL,"
        " PRIMARY KEY (hold_id, cap_id))",
    ):
        conn.execute(text(ddl))


# -- version 9: idempotency keys ----------------------------------------------------------


def _v9_idempotency_keys(conn: Connection) -> None:
    """``Idempotency-Key`` on the inference endpoints: one row per account and key, claimed by
    the first request's insert (the primary key refuses a second), then holding its answer
    until it expires."""
    for ddl in (
        "CREATE TABLE idempotency_keys ("
        " account_id TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,"
        " endpoint TEXT NOT NULL, status TEXT NOT NULL, stream BOOLEAN NOT NULL,"
        " owner TEXT NOT NULL, created_us BIGINT NOT NULL, expires_us BIGINT NOT NULL,"
        " stale_us BIGINT NOT NULL, response_status INTEGER NULL,"
        " response_headers TEXT NULL, response_body TEXT NULL,"
        " PRIMARY KEY (account_id, key),"
        " CONSTRAINT ck_idempotency_keys_status CHECK (status IN ('running', 'done')))",
        "CREATE INDEX ix_idempotency_keys_expires ON idempotency_keys (expires_us)",
    ):
        conn.execute(text(ddl))


# -- version 10: webhooks -------------------------------------------------------------------


def _v10_webhooks(conn: Connection) -> None:
    """Webhooks: the endpoints (an account's, or global with no account), the durable outbox of
    events (each written in the transaction of what it announces), one delivery per event and
    endpoint, and the balance below which an account's ``balance.low`` event fires. No foreign
    keys: an outbox row must never stop the change it announces."""
    for ddl in (
        "CREATE TABLE webhook_endpoints ("
        " id TEXT NOT NULL PRIMARY KEY, account_id TEXT NULL, url TEXT NOT NULL,"
        " secret TEXT NOT NULL, events TEXT NOT NULL, enabled BOOLEAN NOT NULL,"
        " created_us BIGINT NOT NULL)",
        "CREATE INDEX ix_webhook_endpoints_account_id ON webhook_endpoints (account_id)",
        "CREATE TABLE webhook_events ("
        " id TEXT NOT NULL PRIMARY KEY, type TEXT NOT NULL, account_id TEXT NULL,"
        " payload TEXT NOT NULL, created_us BIGINT NOT NULL,"
        " fanned_out BOOLEAN NOT NULL DEFAULT false)",
        "CREATE INDEX ix_webhook_events_fanned_out ON webhook_events (fanned_out, created_us)",
        "CREATE INDEX ix_webhook_events_account_created ON webhook_events (account_id, created_us)",
        "CREATE TABLE webhook_deliveries ("
        " event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, status TEXT NOT NULL,"
        " attempts INTEGER NOT NULL, next_attempt_us BIGINT NOT NULL, claim TEXT NULL,"
        " last_error TEXT NULL, last_status INTEGER NULL, delivered_us BIGINT NULL,"
        " PRIMARY KEY (event_id, endpoint_id),"
        " CONSTRAINT ck_webhook_deliveries_status"
        " CHECK (status IN ('pending', 'delivered', 'failed')))",
        "CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (status, next_attempt_us)",
        "CREATE INDEX ix_webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id)",
        "CREATE TABLE balance_thresholds ("
        " account_id TEXT NOT NULL PRIMARY KEY, below BIGINT NOT NULL, armed BOOLEAN NOT NULL,"
        " updated_us BIGINT NOT NULL)",
    ):
        conn.execute(text(ddl))


# -- version 11: usage receipts -------------------------------------------------------------


def _v11_receipts(conn: Connection) -> None:
    """Keys that read their own usage receipts only; each usage record's surface and request
    hash (existing ones: unknown); the Ed25519 keys receipts are signed with."""
    for ddl in (
        "ALTER TABLE api_keys ADD COLUMN own_usage_only BOOLEAN NOT NULL DEFAULT false",
        "ALTER TABLE usage_records ADD COLUMN endpoint TEXT NULL",
        "ALTER TABLE usage_records ADD COLUMN request_hash TEXT NULL",
        "CREATE TABLE receipt_keys ("
        " kid TEXT NOT NULL PRIMARY KEY, private_key TEXT NOT NULL, public_key TEXT NOT NULL,"
        " created_us BIGINT NOT NULL, active BOOLEAN NULL UNIQUE)",
    ):
        conn.execute(text(ddl))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _v1_initial),
    Migration(2, "lease_indexes", _v2_lease_indexes),
    Migration(3, "delivery_spec", _v3_delivery_spec),
    Migration(4, "limits_and_changes", _v4_limits_and_changes),
    Migration(5, "people", _v5_people),
    Migration(6, "managed_catalog", _v6_managed_catalog),
    Migration(7, "stored_responses", _v7_stored_responses),
    Migration(8, "spend_caps", _v8_spend_caps),
    Migration(9, "idempotency_keys", _v9_idempotency_keys),
    Migration(10, "webhooks", _v10_webhooks),
    Migration(11, "receipts", _v11_receipts),
)

LATEST_VERSION = MIGRATIONS[-1].version


def applied_versions(conn: Connection) -> list[int]:
    """Versions recorded in the database (empty when it was never migrated)."""
    if not conn.dialect.has_table(conn, schema.schema_migrations.name):
        return []
    rows = conn.execute(
        select(schema.schema_migrations.c.version).order_by(schema.schema_migrations.c.version)
    )
    return [int(v) for v in rows.scalars()]


def apply_migrations(conn: Connection) -> list[int]:
    """Apply every pending step; return the versions applied now (empty when up to date).

    ``conn`` must be inside a write transaction (SQLite: started with ``BEGIN IMMEDIATE``);
    the caller commits.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    schema.schema_migrations.create(conn, checkfirst=True)
    done = set(applied_versions(conn))
    newer = sorted(v for v in done if v > LATEST_VERSION)
    if newer:
        raise StorageError(
            f"the database is at schema version {newer[-1]}, newer than this gridgate "
            f"understands ({LATEST_VERSION}); upgrade gridgate"
        )
    applied: list[int] = []
    for step in MIGRATIONS:
        if step.version in done:
            continue
        step.apply(conn)
        conn.execute(
            insert(schema.schema_migrations).values(
                version=step.version, name=step.name, applied_us=time.time_ns() // 1000
            )
        )
        applied.append(step.version)
    return applied
