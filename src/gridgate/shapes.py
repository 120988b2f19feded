"""The JSON shapes of gridgate's objects, shared by the CLI's ``--json`` output and the
management API: times as ISO 8601 UTC (``Z``), money as a USD string with its nano-dollars
beside it, never a secret or a hash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gridgate.money import format_usd
from gridgate.storage.ports import AccountBalance
from gridgate.storage.records import AccountRecord, KeyRecord, UsageRecord, UserRecord


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


def key_json(key: KeyRecord, now_us: int) -> dict[str, Any]:
    return {
        "id": key.id,
        "account_id": key.account_id,
        "name": key.name,
        "key_prefix": key.prefix,
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
    }


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
