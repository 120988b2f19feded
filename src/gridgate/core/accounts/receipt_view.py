"""A usage record as the consumer's receipt (``GET /v1/usage/{request_id}``), in the reference
exchange's shape: ``{request_id, status, requested_model, serving_model, endpoint, api_key_id,
created_at, usage, cost, timing, spec}``, money as exact decimal strings (USD).

The two status words are derived from the record here and, for filters and sums, in SQL
(``storage/sql/receipts.py``); a test holds them equal:

- ``status``: ``pending`` while the request runs (its record is a stream's checkpoint,
  outcome ``in_progress``), ``reconciled`` once answered (whole, or cut at its hold), ``error``
  when it failed;
- ``cost.status``: ``pending`` while it runs; ``reconciled`` once charged (gridgate settles
  synchronously, so at once after the answer), or answered at no charge; ``waived`` for a
  delivery judged out of its instrument's spec and not billed; ``cancelled`` for a failure
  that was not billed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from gridgate.money import NANOS_PER_USD, format_usd_fixed
from gridgate.storage.records import UsageRecord

SETTLED_OUTCOMES = frozenset({"ok", "cut_at_hold"})
STATUSES = ("pending", "reconciled", "error")
COST_STATUSES = ("pending", "reconciled", "cancelled", "waived")
CURRENCY = "USD"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NANOS_PER_PRICE_UNIT = NANOS_PER_USD * 1_000_000  # prices are nano-dollars per 1M tokens


def status_of(record: UsageRecord) -> str:
    if record.outcome == "in_progress":
        return "pending"
    return "reconciled" if record.outcome in SETTLED_OUTCOMES else "error"


def cost_status_of(record: UsageRecord) -> str:
    if record.outcome == "in_progress":
        return "pending"
    if record.cost > 0:
        return "reconciled"
    if record.in_spec is False:
        return "waived"
    return "reconciled" if record.outcome in SETTLED_OUTCOMES else "cancelled"


def iso_time(us: int) -> str:
    """Unix microseconds as ISO 8601 UTC with a ``Z`` (exact: no float)."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def plain(value: Decimal) -> str:
    """A decimal as plain text: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def price_per_token(per_m: int) -> str:
    """A price in nano-dollars per 1M tokens as exact USD per token."""
    return plain(Decimal(per_m).scaleb(-15))


def effective_price(cost: int, tokens: int) -> str | None:
    """What one token cost on average (USD, 18 significant digits), None without tokens."""
    if tokens <= 0:
        return None
    with localcontext() as context:
        context.prec = 18
        return plain(Decimal(cost) / (Decimal(tokens) * NANOS_PER_USD))


def tokens_per_second(record: UsageRecord) -> float | None:
    """Output tokens over the generation time (first token to last), when it was measured."""
    if not record.generation_us or record.output_tokens <= 0:
        return None
    return round(record.output_tokens * 1_000_000 / record.generation_us, 2)


def _ms(us: int | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def breakdown(record: UsageRecord) -> list[dict[str, Any]]:
    """What the request cost, per offer: gridgate serves a request from one offer (an attempt
    that failed over before its first byte cost nothing), so at most one line."""
    if record.offer_id is None:
        return []
    return [
        {
            "offer": record.offer_id,
            "supplier": record.supplier,
            "price_per_input_token": price_per_token(record.price_input_per_m),
            "price_per_output_token": price_per_token(record.price_output_per_m),
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "tokens": record.input_tokens + record.output_tokens,
            "subtotal": format_usd_fixed(record.cost),
        }
    ]


def receipt_json(record: UsageRecord, *, with_breakdown: bool = True) -> dict[str, Any]:
    """The receipt (``with_breakdown=False``: a list entry, which omits the breakdown, as the
    reference's list does)."""
    total = record.input_tokens + record.output_tokens
    cost_status = cost_status_of(record)
    cost: dict[str, Any] = {
        "amount": format_usd_fixed(record.cost),
        "currency": CURRENCY,
        "status": cost_status,
        "effective_price_per_token": effective_price(record.cost, total),
        # settled synchronously at the request's end
        "reconciled_at": None
        if cost_status == "pending"
        else iso_time(record.created_us + record.duration_us),
    }
    if with_breakdown:
        cost["breakdown"] = breakdown(record)
    return {
        "request_id": record.request_id,
        "status": status_of(record),
        "requested_model": record.instrument,
        "serving_model": record.upstream_model,
        "endpoint": record.endpoint,
        "api_key_id": record.key_id,
        "created_at": iso_time(record.created_us),
        "usage": {
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "total_tokens": total,
            "cached_tokens": record.cached_tokens,
            "reasoning_tokens": record.reasoning_tokens,
            "estimated": record.usage_estimated,
        },
        "cost": cost,
        "timing": {
            "ttft_ms": _ms(record.ttft_us),
            "tokens_per_second": tokens_per_second(record),
            "duration_ms": _ms(record.duration_us),
        },
        "spec": {"in_spec": record.in_spec, "note": record.spec_note},
    }
