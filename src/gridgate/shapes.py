"""The JSON shapes of gridgate's objects, shared by the management API and the CLI's ``--json``
output: times as ISO 8601 UTC (``Z``), money as a USD string with its nano-dollars beside it,
never a secret or a hash.

Each shape is a msgspec struct, ``<Name>View``, built from a record by its ``of``. The API encodes
the structs as they are, and its OpenAPI document derives their schemas from them (as
``<Name>``: ``api/manage/openapi.py``), so what is sent and what is documented cannot part. A
struct has no defaults, so every field is always sent (null when empty), and
``forbid_unknown_fields`` makes its schema list exactly those fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from gridgate.core.billing import cap_windows
from gridgate.core.catalog.price_history import DailyPrice
from gridgate.core.exchange import market
from gridgate.core.times import iso_day
from gridgate.money import format_usd
from gridgate.storage import records
from gridgate.storage.limiter.port import LimitScope
from gridgate.storage.ports.ledger import AccountBalance
from gridgate.storage.records import (
    AccountRecord,
    Capability,
    EntryKind,
    InstrumentRecord,
    KeyRecord,
    ManagementTokenRecord,
    OfferRecord,
    Role,
    SupplierRecord,
    UserRecord,
    WireFormat,
)

When = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
Day = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date"})]
Usd = Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]+(\.[0-9]{1,9})?$", description="USD")]


class View(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The base of every shape: fields in the order they are sent, none left out."""


def when(us: int) -> str:
    """Microseconds since the epoch as ISO 8601 UTC, ``Z``-suffixed."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def iso(us: int | None) -> str | None:
    return None if us is None else when(us)


def _ms(us: int | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


class UserView(View):
    """A person as shown: never the password hash."""

    id: str
    email: str
    name: str
    role: Role
    account_id: str | None
    is_active: bool
    created_at: When
    disabled_at: When | None

    @classmethod
    def of(cls, user: UserRecord) -> UserView:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            account_id=user.account_id,
            is_active=user.disabled_us is None,
            created_at=when(user.created_us),
            disabled_at=iso(user.disabled_us),
        )


SECRET = "The secret: only in the answer that created it, null elsewhere"


class ApiKeyView(View):
    """An API key in the reference platform's shape."""

    id: str
    account_id: str
    name: str
    key_prefix: str
    key: Annotated[str | None, msgspec.Meta(description=SECRET)]
    is_active: bool
    created_at: When
    expires_at: When | None
    last_used_at: When | None
    revoked_at: When | None
    # reads its own usage receipts only (GET /v1/usage), not its account's
    own_usage_only: bool = False

    @classmethod
    def of(cls, key: KeyRecord, now_us: int, secret: str | None = None) -> ApiKeyView:
        return cls(
            id=key.id,
            account_id=key.account_id,
            name=key.name,
            key_prefix=key.prefix,
            key=secret,
            is_active=key.active_at(now_us),
            created_at=when(key.created_us),
            expires_at=iso(key.expires_us),
            last_used_at=iso(key.last_used_us),
            revoked_at=iso(key.revoked_us),
            own_usage_only=key.own_usage_only,
        )


class TokenView(View):
    """A management token."""

    id: str
    user_id: str
    name: str
    token_prefix: str
    token: Annotated[str | None, msgspec.Meta(description=SECRET)]
    is_active: bool
    created_at: When
    expires_at: When | None
    last_used_at: When | None
    revoked_at: When | None

    @classmethod
    def of(cls, token: ManagementTokenRecord, now_us: int, secret: str | None = None) -> TokenView:
        return cls(
            id=token.id,
            user_id=token.user_id,
            name=token.name,
            token_prefix=token.prefix,
            token=secret,
            is_active=token.active_at(now_us),
            created_at=when(token.created_us),
            expires_at=iso(token.expires_us),
            last_used_at=iso(token.last_used_us),
            revoked_at=iso(token.revoked_us),
        )


class BalanceView(View):
    """What the account has left after every charge recorded so far."""

    account_id: str
    balance_usd: Usd
    balance_nanos: int

    @classmethod
    def of(cls, balance: AccountBalance) -> BalanceView:
        return cls(
            account_id=balance.account_id,
            balance_usd=format_usd(balance.effective),
            balance_nanos=balance.effective,
        )


class AccountView(View):
    """`balance`: what is left after every charge recorded so far; `leased`: the part of it
    running gateway processes hold as leases right now"""

    id: str
    name: str
    balance_usd: Usd
    balance_nanos: int
    leased_usd: Usd
    created_at: When

    @classmethod
    def of(cls, account: AccountRecord, balance: AccountBalance) -> AccountView:
        return cls(
            id=account.id,
            name=account.name,
            balance_usd=format_usd(balance.effective),
            balance_nanos=balance.effective,
            leased_usd=format_usd(balance.held - balance.recorded),
            created_at=when(account.created_us),
        )


class LedgerEntryView(View):
    id: int
    account_id: str
    kind: EntryKind
    amount_usd: Usd
    amount_nanos: int
    hold_id: str | None
    idempotency_key: str | None
    memo: str | None
    created_at: When

    @classmethod
    def of(cls, entry: records.LedgerEntry) -> LedgerEntryView:
        return cls(
            id=entry.id,
            account_id=entry.account_id,
            kind=entry.kind,
            amount_usd=format_usd(entry.amount),
            amount_nanos=entry.amount,
            hold_id=entry.hold_id,
            idempotency_key=entry.idempotency_key,
            memo=entry.memo,
            created_at=when(entry.created_us),
        )


class MoneyMovedView(View):
    entry: LedgerEntryView
    account: AccountView


Setting = Annotated[
    int | Literal["unlimited"] | None, msgspec.Meta(description='a number, "unlimited" or null')
]


class LimitSettingsView(View):
    """The overrides set: a number, "unlimited", or null (the default applies)."""

    requests_per_minute: Setting
    tokens_per_minute: Setting
    concurrent: Setting


class LimitValuesView(View):
    """The limits in effect: null for no limit."""

    requests_per_minute: int | None
    tokens_per_minute: int | None
    concurrent: int | None


class SpendCapView(View):
    """A spend cap and its current window: what it has committed (charges, and the worst cases
    of requests in flight) and what is left."""

    id: str
    account_id: str
    scope: records.CapScope
    subject: str  # the account id or the key id
    period: records.CapPeriod
    limit_usd: Usd
    limit_nanos: int
    spent_usd: Usd
    spent_nanos: int
    remaining_usd: Usd
    remaining_nanos: int
    window_start: When
    resets_at: When | None  # None: a lifetime cap never resets

    @classmethod
    def of(cls, use: records.CapUse) -> SpendCapView:
        cap = use.cap
        return cls(
            id=cap.id,
            account_id=cap.account_id,
            scope=cap.scope,
            subject=cap.subject,
            period=cap.period,
            limit_usd=format_usd(cap.limit),
            limit_nanos=cap.limit,
            spent_usd=format_usd(use.spent),
            spent_nanos=use.spent,
            remaining_usd=format_usd(use.remaining),
            remaining_nanos=use.remaining,
            window_start=when(use.window_start_us),
            resets_at=iso(cap_windows.resets_at(cap.period, use.window_start_us)),
        )


class LimitsView(View):
    scope: LimitScope
    subject: str
    overrides: LimitSettingsView
    effective: LimitValuesView


class UsageRecordView(View):
    request_id: str
    created_at: When
    key_id: str
    instrument: str
    supplier: str | None
    upstream_model: str | None
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    estimated: bool
    cost_usd: Usd
    cost_nanos: int
    outcome: str
    status: int
    billed: bool
    hold_id: str | None
    offer_id: str | None
    stream: bool
    ttft_ms: float | None
    duration_ms: float | None
    in_spec: bool | None
    spec_note: str | None

    @classmethod
    def of(cls, usage: records.UsageRecord) -> UsageRecordView:
        return cls(
            request_id=usage.request_id,
            created_at=when(usage.created_us),
            key_id=usage.key_id,
            instrument=usage.instrument,
            supplier=usage.supplier,
            upstream_model=usage.upstream_model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cached_tokens=usage.cached_tokens,
            estimated=usage.usage_estimated,
            cost_usd=format_usd(usage.cost),
            cost_nanos=usage.cost,
            outcome=usage.outcome,
            status=usage.status,
            billed=usage.billed,
            hold_id=usage.hold_id,
            offer_id=usage.offer_id,
            stream=usage.stream,
            ttft_ms=_ms(usage.ttft_us),
            duration_ms=_ms(usage.duration_us),
            in_spec=usage.in_spec,
            spec_note=usage.spec_note,
        )


class DailyUsageView(View):
    date: Day
    instrument: str
    requests: int
    billed_requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: Usd
    cost_nanos: int

    @classmethod
    def of(cls, day: records.DailyUsage) -> DailyUsageView:
        return cls(
            date=iso_day(day.day),
            instrument=day.instrument,
            requests=day.requests,
            billed_requests=day.billed_requests,
            input_tokens=day.input_tokens,
            output_tokens=day.output_tokens,
            cost_usd=format_usd(day.cost),
            cost_nanos=day.cost,
        )


class AuditEntryView(View):
    id: int
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    created_at: When

    @classmethod
    def of(cls, entry: records.AuditEntry) -> AuditEntryView:
        return cls(
            id=entry.id,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            detail=entry.detail,
            created_at=when(entry.created_us),
        )


class SupplierView(View):
    """A supplier: ``api_key_env`` names the variable holding its credential, never the value."""

    name: str
    wire: WireFormat
    base_url: str
    api_key_env: str | None
    zero_retention: bool
    enabled: bool
    edited_at: When | None

    @classmethod
    def of(cls, supplier: SupplierRecord) -> SupplierView:
        return cls(
            name=supplier.name,
            wire=supplier.wire,
            base_url=supplier.base_url,
            api_key_env=supplier.api_key_env,
            zero_retention=supplier.zero_retention,
            enabled=supplier.enabled,
            edited_at=iso(supplier.edited_us),
        )


class OfferView(View):
    id: str
    supplier: str
    instrument: str
    model: str
    input_usd_per_m: Usd
    output_usd_per_m: Usd
    quality: float
    context: int
    max_output: int
    capabilities: list[Capability]
    enabled: bool
    disabled_at: When | None
    edited_at: When | None

    @classmethod
    def of(cls, offer: OfferRecord) -> OfferView:
        return cls(
            id=offer.id,
            supplier=offer.supplier,
            instrument=offer.instrument,
            model=offer.model,
            input_usd_per_m=format_usd(offer.input_per_m),
            output_usd_per_m=format_usd(offer.output_per_m),
            quality=offer.quality,
            context=offer.context,
            max_output=offer.max_output,
            capabilities=list(offer.capabilities),
            enabled=offer.enabled and offer.disabled_us is None,
            disabled_at=iso(offer.disabled_us),
            edited_at=iso(offer.edited_us),
        )


class PriceView(View):
    usd_per_1m_input_tokens: Usd
    usd_per_1m_output_tokens: Usd

    @classmethod
    def of(cls, input_per_m: int | None, output_per_m: int | None) -> PriceView | None:
        if input_per_m is None or output_per_m is None:
            return None
        return cls(
            usd_per_1m_input_tokens=format_usd(input_per_m),
            usd_per_1m_output_tokens=format_usd(output_per_m),
        )


class InstrumentSpecView(View):
    quality_floor: float
    ttft_ceiling_ms: int | None
    throughput_floor_tps: float | None
    context_floor: int
    max_output_floor: int
    bill_out_of_spec: bool

    @classmethod
    def of(cls, instrument: InstrumentRecord) -> InstrumentSpecView:
        return cls(
            quality_floor=instrument.quality_floor,
            ttft_ceiling_ms=instrument.ttft_ceiling_ms,
            throughput_floor_tps=instrument.throughput_floor_tps,
            context_floor=instrument.context_floor,
            max_output_floor=instrument.max_output_floor,
            bill_out_of_spec=instrument.bill_out_of_spec,
        )


class InstrumentLimitsView(View):
    context_length: int
    max_input_tokens: int
    max_completion_tokens: int


class DailyPriceView(View):
    date: Day
    offer_id: str | None
    price: PriceView | None

    @classmethod
    def of(cls, price: DailyPrice) -> DailyPriceView:
        return cls(
            date=iso_day(price.day),
            offer_id=price.offer_id,
            price=PriceView.of(price.input_per_m, price.output_per_m),
        )


class InstrumentView(View):
    """An instrument as a consumer sees it: spec, limits, best price now, 30 days of prices."""

    id: str
    display_name: str
    enabled: bool
    spec: InstrumentSpecView
    limits: InstrumentLimitsView
    image_input: bool
    available_offers: int
    best_price: PriceView | None
    average_price_30d: PriceView | None
    price_history: list[DailyPriceView]
    edited_at: When | None

    @classmethod
    def of(cls, view: market.InstrumentView) -> InstrumentView:
        i, best, average = view.instrument, view.best, view.average
        return cls(
            id=i.id,
            display_name=i.display_name,
            enabled=i.enabled,
            spec=InstrumentSpecView.of(i),
            limits=InstrumentLimitsView(
                context_length=i.context_length,
                max_input_tokens=i.max_input_tokens,
                max_completion_tokens=i.max_completion_tokens,
            ),
            image_input=i.image_input,
            available_offers=view.offers,
            best_price=None
            if best is None
            else PriceView.of(best.price.input_per_m, best.price.output_per_m),
            average_price_30d=None if average is None else PriceView.of(*average),
            price_history=[DailyPriceView.of(p) for p in view.history],
            edited_at=iso(i.edited_us),
        )


# The CLI prints these with json.dumps: each shape as plain dicts and lists.


def as_json(view: msgspec.Struct) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(view)
    return out


def money(prefix: str, nanos: int) -> dict[str, Any]:
    """``{prefix}_usd`` (exact decimal string) and ``{prefix}_nanos`` side by side."""
    return {f"{prefix}_usd": format_usd(nanos), f"{prefix}_nanos": nanos}


def account_json(account: AccountRecord, balance: AccountBalance) -> dict[str, Any]:
    return as_json(AccountView.of(account, balance))


def key_json(key: KeyRecord, now_us: int, secret: str | None = None) -> dict[str, Any]:
    return as_json(ApiKeyView.of(key, now_us, secret))


def token_json(
    token: ManagementTokenRecord, now_us: int, secret: str | None = None
) -> dict[str, Any]:
    return as_json(TokenView.of(token, now_us, secret))


def usage_json(usage: records.UsageRecord) -> dict[str, Any]:
    return as_json(UsageRecordView.of(usage))


def user_json(user: UserRecord) -> dict[str, Any]:
    return as_json(UserView.of(user))


def entry_json(entry: records.LedgerEntry) -> dict[str, Any]:
    return as_json(LedgerEntryView.of(entry))


def offer_json(offer: OfferRecord) -> dict[str, Any]:
    return as_json(OfferView.of(offer))
