"""Rows that cross the storage ports. Plain frozen structs; times are unix microseconds (int)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Capability = Literal["tools", "json_schema", "vision", "logprobs"]
WireFormat = Literal["openai", "anthropic", "openai-responses"]
LimitScope = Literal["key", "account", "instrument"]


class AccountRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    balance: int  # nano-dollars; always equals the sum of the account's ledger entries
    created_us: int


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """A secret someone presents (an API key, a management token): stored as its hash, with a
    visible prefix, and usable until it expires or is revoked."""

    id: str
    name: str
    prefix: str  # the visible start of the secret, e.g. "gg_AbCdEf12" or "ggm_AbCdEf12"
    secret_hash: str  # hex sha256 of the full secret; the secret itself is never stored
    created_us: int
    expires_us: int | None = None
    revoked_us: int | None = None
    last_used_us: int | None = None

    def active_at(self, now_us: int) -> bool:
        if self.revoked_us is not None:
            return False
        return self.expires_us is None or self.expires_us > now_us


class KeyRecord(Credential, frozen=True, kw_only=True):
    """An API key of an account (``gg_`` …), for the Consumption API."""

    account_id: str
    # a spend cap applies to its requests (its own or its account's): each then holds its worst
    # case in the database, against the caps, instead of on the process's balance lease
    capped: bool = False
    own_usage_only: bool = False  # reads its own usage receipts only, not its account's


EntryKind = Literal["credit", "hold", "settle", "release", "refund", "adjustment"]


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    account_id: str
    kind: EntryKind
    amount: int  # signed nano-dollars; balance = sum(amount)
    hold_id: str | None
    idempotency_key: str | None
    memo: str | None
    created_us: int


HoldStatus = Literal["held", "settled", "released", "expired"]


class HoldRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account_id: str
    key_id: str | None
    amount: int  # the worst case reserved
    charged: int | None  # set when settled
    status: HoldStatus
    created_us: int
    expires_us: int


class UsageRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One per request, whatever its outcome. Never holds prompt or completion content."""

    request_id: str
    created_us: int
    account_id: str
    key_id: str
    instrument: str
    supplier: str | None
    offer_id: str | None
    upstream_model: str | None
    stream: bool
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    usage_estimated: bool = False  # True when the upstream reported no usage and we counted
    price_input_per_m: int = 0
    price_output_per_m: int = 0
    cost: int = 0  # nano-dollars charged
    hold_id: str | None = None
    ttft_us: int | None = None
    generation_us: int | None = None  # from the first token to the end (streamed answers)
    duration_us: int = 0
    outcome: str = "ok"  # ok | client_error | upstream_error | cancelled | ...
    status: int = 200
    billed: bool = True
    # the delivery judged against its instrument's spec; None = not judged (a failed request,
    # an answer that was not streamed)
    in_spec: bool | None = None
    spec_note: str | None = None  # why it was out of spec, e.g. "first token after … > ceiling …"
    error: str | None = None  # short, secret-free
    endpoint: str | None = None  # the surface that served it, e.g. "/v1/chat/completions"
    request_hash: str | None = None  # hex sha256 of the request body as received


class InstrumentRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # lower-case, e.g. "text-prime"
    display_name: str
    # spec: floors / ceilings a supplier offer must meet
    quality_floor: float
    ttft_ceiling_ms: int | None
    throughput_floor_tps: float | None
    context_floor: int
    max_output_floor: int
    # limits published in /v1/models and enforced on requests
    context_length: int
    max_input_tokens: int
    max_completion_tokens: int
    image_input: bool = False
    reasoning_efforts: tuple[str, ...] = ()
    default_reasoning_effort: str | None = None
    enabled: bool = True
    # False (the default): a delivery that breaks the spec (late first token, slow answer) is
    # not billed; True: it is billed like any other
    bill_out_of_spec: bool = False
    # set when an operator created or edited the row at run time: seeding the catalog from
    # config leaves it alone from then on (the store's copy is the truth)
    edited_us: int | None = None


class DeliveryRow(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery of an offer, as its usage record has it: the measurements offer status is
    built from (``Store.offer_deliveries``)."""

    request_id: str
    offer_id: str
    instrument: str
    outcome: str
    status: int
    stream: bool
    created_us: int
    output_tokens: int
    ttft_us: int | None
    generation_us: int | None
    in_spec: bool | None


class SupplierRecord(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    wire: WireFormat
    base_url: str
    api_key_env: str | None = None  # the env var holding the credential; never the secret itself
    zero_retention: bool = True
    enabled: bool = True
    edited_us: int | None = None  # an operator's run-time edit; config seeding keeps it


class OfferRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # stable, e.g. "sim-a/text-prime"
    supplier: str
    instrument: str
    model: str  # the upstream model name
    input_per_m: int  # nano-dollars per 1M input tokens
    output_per_m: int  # nano-dollars per 1M output tokens
    quality: float
    context: int
    max_output: int
    capabilities: tuple[Capability, ...] = ()
    enabled: bool = True
    # set by an operator (``gridgate offers disable``): the offer serves nothing from then on,
    # whatever the config says; the config's catalog seeding never touches it
    disabled_us: int | None = None
    edited_us: int | None = None  # an operator's run-time edit; config seeding keeps it


class PricePoint(msgspec.Struct, frozen=True, kw_only=True):
    """An offer's price and availability from ``created_us`` on (the catalog's price history:
    one row whenever either changes)."""

    offer_id: str
    instrument: str
    input_per_m: int
    output_per_m: int
    available: bool  # enabled, not disabled by an operator, its supplier enabled
    created_us: int


class DailyUsage(msgspec.Struct, frozen=True, kw_only=True):
    """The usage records of one UTC day and one instrument, summed."""

    day: int  # days since 1970-01-01 (UTC)
    instrument: str
    requests: int
    billed_requests: int
    input_tokens: int
    output_tokens: int
    cost: int  # nano-dollars


#: A limit override's value meaning "no limit", against a default that sets one.
UNLIMITED = -1


class LimitOverride(msgspec.Struct, frozen=True, kw_only=True):
    """The limits set on one subject (a key, an account or an instrument), or on every subject
    of a scope (``subject = "*"``), overriding the config's defaults. A field left None keeps
    the default; ``UNLIMITED`` lifts it."""

    scope: LimitScope
    subject: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None
    updated_us: int = 0

    @property
    def empty(self) -> bool:
        return (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.concurrent is None
        )


CapScope = Literal["account", "key"]
CapPeriod = Literal["daily", "weekly", "monthly", "lifetime"]


class SpendCap(msgspec.Struct, frozen=True, kw_only=True):
    """At most ``limit`` nano-dollars per UTC calendar ``period`` for an account or a key."""

    id: str
    account_id: str
    scope: CapScope
    subject: str  # the account id or the key id
    period: CapPeriod
    limit: int
    created_us: int
    updated_us: int


class CapUse(msgspec.Struct, frozen=True, kw_only=True):
    """A cap and what it has committed in one window: the charges of its closed holds and the
    worst cases of its open ones."""

    cap: SpendCap
    window_start_us: int
    spent: int

    @property
    def remaining(self) -> int:
        return max(self.cap.limit - self.spent, 0)


ChangeKind = Literal["key", "limits", "offer", "catalog"]


class ChangeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the change feed: something every process may have cached changed."""

    id: int
    kind: ChangeKind
    subject: str  # key id, "<scope>:<subject>", offer id, or "*"
    created_us: int


Role = Literal["operator", "owner", "member"]


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A person. An operator has no account; an owner or a member belongs to one."""

    id: str  # "usr_" + hex
    email: str  # lower-case, unique
    name: str
    role: Role
    account_id: str | None
    password_hash: str  # argon2 encoded string; never shown, never logged
    created_us: int
    disabled_us: int | None = None


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A browser session. Only hashes of its secret and of its CSRF token are stored."""

    id_hash: str  # hex sha256 of the session secret (the cookie's value)
    user_id: str
    csrf_hash: str  # hex sha256 of the session's CSRF token
    created_us: int
    expires_us: int
    last_seen_us: int


class ManagementTokenRecord(Credential, frozen=True, kw_only=True):
    """A script's token for the management API (``ggm_`` …, id ``mtk_`` + hex); it acts as
    its user."""

    user_id: str


class AuditNote(msgspec.Struct, frozen=True, kw_only=True):
    """What to write to the audit log with a change, in the change's own transaction: the store
    fills in the subject (the id of what changed) and the time."""

    actor: str  # a user id, or ``cli``
    action: str  # e.g. ``api_key.create``
    detail: dict[str, Any] = {}  # never a secret


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One change: who (a user id, or ``cli``), what (e.g. ``api_key.create``), to what."""

    id: int
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]  # never a secret
    created_us: int
