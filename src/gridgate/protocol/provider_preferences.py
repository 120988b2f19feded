"""The caller's routing preferences: the ``provider`` object of a request (wire schema and checks).

OpenRouter's ``provider`` object, which the reference exchange accepts, on both surfaces (on the
Anthropic Messages surface as an extension field)::

    "provider": {
      "order": ["sim-b", "sim-a"],        supplier names to try first, in this order
      "only": ["sim-a", "sim-b"],          only these suppliers
      "ignore": ["sim-c"],                 never these
      "allow_fallbacks": true,             false: no supplier outside ``order`` (without
                                           ``order``: only the first-ranked offer)
      "sort": "price",                     or "latency" (p50 TTFT) or "throughput" (p50 tok/s)
      "max_price": {"prompt": 1, "completion": 4},   USD per 1M tokens
      "require_parameters": false,         true: only offers that drop no parameter the
                                           request sets
      "data_collection": "allow",          "deny": only zero-retention suppliers
      "zdr": false                         true: the same
    }

Every field is optional and ``null`` means "not given". Unknown fields (OpenRouter's
``quantizations``, ``max_price.request`` …) are accepted and ignored, like unknown fields
anywhere in a request. Supplier names are matched case-insensitively; a name that is no supplier
of the exchange is not an error (what routing does with the preferences lives in
``core/exchange/preferences.py``).

Prices are decoded as ``Decimal`` (a JSON number or a decimal string), so the USD amount the
caller wrote is compared exactly with the offers' integer nano-dollar prices.

``check_provider_preferences`` is the Python pass both surfaces run after decoding; it raises
``ValidationFailed`` naming the field (``provider.order[1]``, ``provider.max_price.prompt``).
Type errors inside the object are 422 too (both decoders list ``provider.`` among their
structured option objects); ``"provider": "x"`` itself, a wrong JSON type at the top level, is
400 like any other.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from gridgate.protocol.wire_errors import fail

__all__ = [
    "PROVIDER_CHOICES",
    "DataCollection",
    "MaxPrice",
    "ProviderPreferences",
    "Sort",
    "check_provider_preferences",
]

Sort = Literal["price", "latency", "throughput"]
DataCollection = Literal["allow", "deny"]

# Accepted values by path, for the decoders' messages naming the choices.
PROVIDER_CHOICES: Final = {
    "provider.sort": get_args(Sort),
    "provider.data_collection": get_args(DataCollection),
}

_MAX_NAME: Final = 256


class _Wire(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True, kw_only=True):
    """Unknown fields are accepted and dropped; only sent fields are re-encoded."""


class MaxPrice(_Wire):
    """Price ceilings in USD per 1M tokens; an offer priced above either is excluded."""

    prompt: Decimal | UnsetType | None = UNSET
    completion: Decimal | UnsetType | None = UNSET


class ProviderPreferences(_Wire):
    """``provider``. ``UNSET`` = not sent; ``None`` = sent as ``null`` (the same: the default)."""

    order: list[str] | UnsetType | None = UNSET
    only: list[str] | UnsetType | None = UNSET
    ignore: list[str] | UnsetType | None = UNSET
    allow_fallbacks: bool | UnsetType | None = UNSET
    sort: Sort | UnsetType | None = UNSET
    max_price: MaxPrice | UnsetType | None = UNSET
    require_parameters: bool | UnsetType | None = UNSET
    data_collection: DataCollection | UnsetType | None = UNSET
    zdr: bool | UnsetType | None = UNSET


def check_provider_preferences(prefs: ProviderPreferences | UnsetType) -> None:
    """The bounds msgspec's types cannot say: non-empty supplier names, finite prices ≥ 0."""
    if isinstance(prefs, UnsetType):
        return
    for field in ("order", "only", "ignore"):
        names: list[str] | UnsetType | None = getattr(prefs, field)
        for i, name in enumerate(names or ()):
            if not name.strip():
                fail(f"provider.{field}[{i}]", "must be a supplier name (got an empty string)")
            if len(name) > _MAX_NAME:
                fail(f"provider.{field}[{i}]", f"must be at most {_MAX_NAME} characters")
    ceiling = prefs.max_price
    if isinstance(ceiling, MaxPrice):
        _check_price(ceiling.prompt, "provider.max_price.prompt")
        _check_price(ceiling.completion, "provider.max_price.completion")


def _check_price(value: Decimal | UnsetType | None, param: str) -> None:
    if not isinstance(value, Decimal):
        return
    if not value.is_finite():
        fail(param, f"must be a finite number of USD per 1M tokens (got {_show(value)})")
    if value < 0:
        fail(param, f"must be at least 0 USD per 1M tokens (got {_show(value)})")


def _show(value: Decimal, limit: int = 32) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
