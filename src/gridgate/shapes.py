"""The JSON shapes of gridgate's objects, shared by the CLI's ``--json`` output and the
management API: times as ISO 8601 UTC (``Z``), money as a USD string with its nano-dollars
beside it, never a secret or a hash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gridgate.core.catalog.price_history import DailyPrice
from gridgate.core.exchange.market import InstrumentView
from gridgate.core.times import iso_day
from gridgate.money import format_usd
from gridgate.storage.ports.ledger import AccountBalance
from gridgate.storage.records import (
    AccountRecord,
    AuditEntry,
    DailyUsage,
    InstrumentRecord,
    KeyRecord,
    LedgerEntry,
    ManagementTokenRecord,
    OfferRecord,
    SupplierRecord,
    UsageRecord,
    UserRecord,
)


def iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def account_json(account: AccountRecord, balance: AccountBalance) -> dict[str, Any]:
    """``balance`` is what the account has left after every charge recorded so far;
    ``leased`` is the part of it that running gateway processes hold as leases right now."""
    return {
        "id": account.id,
        "name": account.name,
        "balance_usd": format_usd(balance.effective),
        "balance_nanos": balance.effective,
        "leased_usd": format_usd(balance.held - balance.recorded),
        "created_at": iso(account.created_us),
    }


def money(prefix: str, nanos: int) -> dict[str, Any]:
    """``{prefix}_usd`` (exact decimal string) and ``{prefix}_nanos`` side by side."""
    return {f"{prefix}_usd": format_usd(nanos), f"{prefix}_nanos": nanos}


def key_json(key: KeyRecord, now_us: int, secret: str | None = None) -> dict[str, Any]:
    """An API key in the reference platform's shape: ``key`` is the secret, set only in the
    answer that created it (null everywhere else)."""
    return {
        "id": key.id,
        "account_id": key.account_id,
        "name": key.name,
        "key_prefix": key.prefix,
        "key": secret,
        "is_active": key.active_at(now_us),
        "created_at": iso(key.created_us),
        "expires_at": iso(key.expires_us),
        "last_used_at": iso(key.last_used_us),
        "revoked_at": iso(key.revoked_us),
    }


def usage_json(usage: UsageRecord) -> dict[str, Any]:
    return {
        "request_id": usage.request_id,
        "created_at": iso(usage.created_us),
        "key_id": usage.key_id,
        "instrument": usage.instrument,
        "supplier": usage.supplier,
        "upstream_model": usage.upstream_model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cached_tokens": usage.cached_tokens,
        "estimated": usage.usage_estimated,
        "cost_usd": format_usd(usage.cost),
        "cost_nanos": usage.cost,
        "outcome": usage.outcome,
        "status": usage.status,
        "billed": usage.billed,
        "hold_id": usage.hold_id,
        "offer_id": usage.offer_id,
        "stream": usage.stream,
        "ttft_ms": _ms(usage.ttft_us),
        "duration_ms": _ms(usage.duration_us),
        "in_spec": usage.in_spec,
        "spec_note": usage.spec_note,
    }


def _ms(us: int | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def user_json(user: UserRecord) -> dict[str, Any]:
    """A user as shown: never the password hash."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "account_id": user.account_id,
        "is_active": user.disabled_us is None,
        "created_at": iso(user.created_us),
        "disabled_at": iso(user.disabled_us),
    }


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "account_id": entry.account_id,
        "kind": entry.kind,
        **money("amount", entry.amount),
        "hold_id": entry.hold_id,
        "idempotency_key": entry.idempotency_key,
        "memo": entry.memo,
        "created_at": iso(entry.created_us),
    }


def token_json(
    token: ManagementTokenRecord, now_us: int, secret: str | None = None
) -> dict[str, Any]:
    """A management token; ``token`` is the secret, only in the answer that created it."""
    return {
        "id": token.id,
        "user_id": token.user_id,
        "name": token.name,
        "token_prefix": token.prefix,
        "token": secret,
        "is_active": token.active_at(now_us),
        "created_at": iso(token.created_us),
        "expires_at": iso(token.expires_us),
        "last_used_at": iso(token.last_used_us),
        "revoked_at": iso(token.revoked_us),
    }


def daily_json(day: DailyUsage) -> dict[str, Any]:
    return {
        "date": iso_day(day.day),
        "instrument": day.instrument,
        "requests": day.requests,
        "billed_requests": day.billed_requests,
        "input_tokens": day.input_tokens,
        "output_tokens": day.output_tokens,
        **money("cost", day.cost),
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "detail": entry.detail,
        "created_at": iso(entry.created_us),
    }


def supplier_json(supplier: SupplierRecord) -> dict[str, Any]:
    """A supplier: ``api_key_env`` names the variable holding its credential, never the value."""
    return {
        "name": supplier.name,
        "wire": supplier.wire,
        "base_url": supplier.base_url,
        "api_key_env": supplier.api_key_env,
        "zero_retention": supplier.zero_retention,
        "enabled": supplier.enabled,
        "edited_at": iso(supplier.edited_us),
    }


def offer_json(offer: OfferRecord) -> dict[str, Any]:
    return {
        "id": offer.id,
        "supplier": offer.supplier,
        "instrument": offer.instrument,
        "model": offer.model,
        "input_usd_per_m": format_usd(offer.input_per_m),
        "output_usd_per_m": format_usd(offer.output_per_m),
        "quality": offer.quality,
        "context": offer.context,
        "max_output": offer.max_output,
        "capabilities": list(offer.capabilities),
        "enabled": offer.enabled and offer.disabled_us is None,
        "disabled_at": iso(offer.disabled_us),
        "edited_at": iso(offer.edited_us),
    }


def spec_json(instrument: InstrumentRecord) -> dict[str, Any]:
    return {
        "quality_floor": instrument.quality_floor,
        "ttft_ceiling_ms": instrument.ttft_ceiling_ms,
        "throughput_floor_tps": instrument.throughput_floor_tps,
        "context_floor": instrument.context_floor,
        "max_output_floor": instrument.max_output_floor,
        "bill_out_of_spec": instrument.bill_out_of_spec,
    }


def _price(input_per_m: int | None, output_per_m: int | None) -> dict[str, Any] | None:
    if input_per_m is None or output_per_m is None:
        return None
    return {
        "usd_per_1m_input_tokens": format_usd(input_per_m),
        "usd_per_1m_output_tokens": format_usd(output_per_m),
    }


def daily_price_json(price: DailyPrice) -> dict[str, Any]:
    return {
        "date": iso_day(price.day),
        "offer_id": price.offer_id,
        "price": _price(price.input_per_m, price.output_per_m),
    }


def instrument_json(view: InstrumentView) -> dict[str, Any]:
    """An instrument as a consumer sees it: spec, limits, best price now, 30 days of prices."""
    i = view.instrument
    best = view.best
    return {
        "id": i.id,
        "display_name": i.display_name,
        "enabled": i.enabled,
        "spec": spec_json(i),
        "limits": {
            "context_length": i.context_length,
            "max_input_tokens": i.max_input_tokens,
            "max_completion_tokens": i.max_completion_tokens,
        },
        "image_input": i.image_input,
        "available_offers": view.offers,
        "best_price": None
        if best is None
        else _price(best.price.input_per_m, best.price.output_per_m),
        "average_price_30d": None if view.average is None else _price(*view.average),
        "price_history": [daily_price_json(p) for p in view.history],
        "edited_at": iso(i.edited_us),
    }
