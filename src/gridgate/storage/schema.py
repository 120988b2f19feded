"""The tables, as SQLAlchemy Core objects, at the newest migration version.

Conventions: times are unix microseconds (``BIGINT``), money is nano-dollars (``BIGINT``),
ids are text. Tuples (capabilities, reasoning efforts) are stored as JSON text arrays.
The same definitions serve SQLite and PostgreSQL. ``migrations.py`` creates them (version 1 from
its own frozen copy, later versions by DDL steps): a change here needs a new migration step.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

# SQLite only auto-increments an ``INTEGER PRIMARY KEY`` (the rowid alias), never ``BIGINT``.
_BigSerial = BigInteger().with_variant(Integer(), "sqlite")

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("applied_us", BigInteger, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("secret_hash", Text, nullable=False, unique=True),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("revoked_us", BigInteger, nullable=True),
    Column("last_used_us", BigInteger, nullable=True),
    # version 11: the key reads its own usage receipts only (not its account's)
    Column("own_usage_only", Boolean, nullable=False, server_default=false()),
    Index("ix_api_keys_account_id", "account_id"),
)

holds = Table(
    "holds",
    metadata,
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
    Index("ix_holds_account_status", "account_id", "status"),  # version 2
)

# Append-only. The original parameters of an idempotent credit are the row itself
# (account_id, amount, kind), so a replay is compared against it.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", _BigSerial, primary_key=True, autoincrement=True),
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
usage_records = Table(
    "usage_records",
    metadata,
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
    Column("generation_us", BigInteger, nullable=True),  # version 3
    Column("in_spec", Boolean, nullable=True),  # version 3; NULL = not judged
    Column("spec_note", Text, nullable=True),  # version 3
    Column("endpoint", Text, nullable=True),  # version 11: the surface that served it
    Column("request_hash", Text, nullable=True),  # version 11: sha256 hex of the request body
    Index("ix_usage_records_account_created", "account_id", "created_us"),
    Index("ix_usage_records_created", "created_us"),
    Index("ix_usage_records_hold_id", "hold_id"),  # version 2
    Index("ix_usage_records_offer_created", "offer_id", "created_us"),  # version 3
    Index("ix_usage_records_key_created", "key_id", "created_us"),  # version 6
)

instruments = Table(
    "instruments",
    metadata,
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
    Column("bill_out_of_spec", Boolean, nullable=False, server_default=false()),  # version 3
    Column("edited_us", BigInteger, nullable=True),  # version 6: an operator's run-time edit
)

suppliers = Table(
    "suppliers",
    metadata,
    Column("name", Text, primary_key=True),
    Column("wire", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("api_key_env", Text, nullable=True),
    Column("zero_retention", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("edited_us", BigInteger, nullable=True),  # version 6
)

# No foreign keys to suppliers / instruments: the catalog is replaced row by row from config,
# and core decides what a dangling offer means.
offers = Table(
    "offers",
    metadata,
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
    Column("disabled_us", BigInteger, nullable=True),  # version 4: an operator's disable
    Column("edited_us", BigInteger, nullable=True),  # version 6
)

# Version 6. Every offer's price and availability over time: a row whenever either changes
# (appended in the transaction of the change), so an instrument's price can be charted.
offer_prices = Table(
    "offer_prices",
    metadata,
    Column("id", _BigSerial, primary_key=True, autoincrement=True),
    Column("offer_id", Text, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("input_per_m", BigInteger, nullable=False),
    Column("output_per_m", BigInteger, nullable=False),
    Column("available", Boolean, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_offer_prices_instrument_created", "instrument", "created_us"),
    Index("ix_offer_prices_offer_id", "offer_id", "id"),
)

# Version 4. Per-subject limit overrides; NULL keeps the config default, -1 lifts it.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("requests_per_minute", BigInteger, nullable=True),
    Column("tokens_per_minute", BigInteger, nullable=True),
    Column("concurrent", BigInteger, nullable=True),
    Column("updated_us", BigInteger, nullable=False),
)

# Version 4. The change feed every process polls to drop what it cached (written in the same
# transaction as the change it announces; old entries are pruned).
changes = Table(
    "changes",
    metadata,
    Column("id", _BigSerial, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_changes_created", "created_us"),
)

# Version 5: people and their credentials. An operator belongs to no account; an owner or a
# member belongs to exactly one. Emails are stored lower-case; passwords as argon2 strings.
users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=True),
    Column("password_hash", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("disabled_us", BigInteger, nullable=True),
    CheckConstraint("role IN ('operator', 'owner', 'member')", name="ck_users_role"),
    CheckConstraint("(role = 'operator') = (account_id IS NULL)", name="ck_users_role_account"),
    Index("ix_users_account_id", "account_id"),
)

# Version 5. A browser session: only the SHA-256 of its secret and of its CSRF token are kept.
sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", Text, primary_key=True),
    Column("user_id", Text, ForeignKey("users.id"), nullable=False),
    Column("csrf_hash", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_expires", "expires_us"),
)

# Version 5. A script's token for the management API, acting as its user (like ``api_keys``).
management_tokens = Table(
    "management_tokens",
    metadata,
    Column("id", Text, primary_key=True),
    Column("user_id", Text, ForeignKey("users.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("secret_hash", Text, nullable=False, unique=True),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("revoked_us", BigInteger, nullable=True),
    Column("last_used_us", BigInteger, nullable=True),
    Index("ix_management_tokens_user_id", "user_id"),
)

# Version 5. Append-only: who changed what, when. ``detail`` is a JSON object, never a secret.
# A log: no foreign keys (the actor may be ``cli``, the subject any kind of id).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _BigSerial, primary_key=True, autoincrement=True),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_audit_log_created", "created_us"),
    Index("ix_audit_log_subject_created", "subject", "created_us"),
)

# Version 7. The Responses API's stored responses (``store: true``), kept per account until
# ``expires_us`` (``[responses] retention_days`` after creation), then swept. ``response`` is the
# whole Response JSON as answered; ``previous_response_id`` links a conversation's turns.
responses = Table(
    "responses",
    metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("key_id", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("previous_response_id", Text, nullable=True),
    Column("response", Text, nullable=False),
    Index("ix_responses_account_id", "account_id", "id"),
    Index("ix_responses_expires", "expires_us"),
)

# Version 7. A stored response's items, in order: its input items (``kind`` input), then its
# output items. ``item_id`` is the item's own id (one is given to an input item that had none):
# the cursor of ``GET /v1/responses/{id}/input_items``. Deleted with their response.
response_items = Table(
    "response_items",
    metadata,
    Column("response_id", Text, primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("kind", Text, nullable=False),
    Column("item_id", Text, nullable=False),
    Column("item", Text, nullable=False),
    CheckConstraint("kind IN ('input', 'output')", name="ck_response_items_kind"),
)

# Version 8. Hard spend caps: at most ``limit_nanos`` per UTC calendar ``period`` (daily, weekly
# from Monday, monthly, lifetime) for an account or one of its keys (``scope``, ``subject``).
spend_caps = Table(
    "spend_caps",
    metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("limit_nanos", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("scope", "subject", "period", name="uq_spend_caps_subject"),
    CheckConstraint("scope IN ('account', 'key')", name="ck_spend_caps_scope"),
    CheckConstraint(
        "period IN ('daily', 'weekly', 'monthly', 'lifetime')", name="ck_spend_caps_period"
    ),
    CheckConstraint("limit_nanos >= 0", name="ck_spend_caps_limit"),
    Index("ix_spend_caps_account_id", "account_id"),
)

# Version 8. What a cap has committed in one window (``window_start_us``; 0 for lifetime): the
# worst cases of its open holds plus the charges of its closed ones. Changed only in the
# transaction of a capped hold, its close or its expiry.
cap_spend = Table(
    "cap_spend",
    metadata,
    Column("cap_id", Text, primary_key=True),
    Column("window_start_us", BigInteger, primary_key=True, autoincrement=False),
    Column("spent", BigInteger, nullable=False),
)

# Version 8. The cap windows a capped hold counted against.
hold_caps = Table(
    "hold_caps",
    metadata,
    Column("hold_id", Text, primary_key=True),
    Column("cap_id", Text, primary_key=True),
    Column("window_start_us", BigInteger, nullable=False),
)

# Version 11. The Ed25519 keys usage receipts are signed with, shared by every process of a
# fleet: the private key is the raw 32-byte seed, base64url (never logged, never served). The
# one key in use has ``active`` true (a unique column: two processes creating the first key at
# once cannot both succeed); a retired key keeps its row (NULL) so old signatures still verify.
receipt_keys = Table(
    "receipt_keys",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("private_key", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("active", Boolean, nullable=True, unique=True),
)

# Version 9. Idempotency keys (``Idempotency-Key`` on the inference endpoints), per account: the
# claim of the first request (``running``), then its answer (``done``) until ``expires_us``
# (24 h), swept with the stored responses. ``request_hash``: SHA-256 of the endpoint and the body.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("owner", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("stale_us", BigInteger, nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_headers", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    CheckConstraint("status IN ('running', 'done')", name="ck_idempotency_keys_status"),
    Index("ix_idempotency_keys_expires", "expires_us"),
)

# Version 10. Where webhooks are sent: an account's endpoint (its events) or a global one
# (``account_id`` NULL: every event, the operator's). ``secret`` signs each delivery (it must be
# kept to sign; shown once at creation, never logged); ``events`` a JSON array of event types,
# ``["*"]`` for all.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, nullable=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_webhook_endpoints_account_id", "account_id"),
)

# Version 10. The outbox: an event, written in the transaction of what it announces. ``id`` is
# the event id every delivery (and every retry of it) carries. ``fanned_out``: its deliveries
# (one per endpoint subscribed when it was written) have been made.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("account_id", Text, nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("fanned_out", Boolean, nullable=False, server_default=false()),
    Index("ix_webhook_events_fanned_out", "fanned_out", "created_us"),
    Index("ix_webhook_events_account_created", "account_id", "created_us"),
)

# Version 10. One event's delivery to one endpoint. ``next_attempt_us`` is when it is due, and
# while an attempt runs the end of its claim (``claim`` names the claimant).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("endpoint_id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("claim", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("delivered_us", BigInteger, nullable=True),
    CheckConstraint(
        "status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"
    ),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_us"),
    Index("ix_webhook_deliveries_endpoint", "endpoint_id"),
)

# Version 10. The balance below which an account's ``balance.low`` webhook fires (nano-dollars),
# checked where the balance goes down, on the crossing only, and only while ``armed``: firing
# disarms it, a credit that lifts the balance back to the threshold re-arms it (so leases that
# take and give back slices around the threshold do not fire again and again). No row: no event.
balance_thresholds = Table(
    "balance_thresholds",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("below", BigInteger, nullable=False),
    Column("armed", Boolean, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)
