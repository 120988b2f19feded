"""Integer money: one unit and one rounding rule.

The unit is the nano-dollar (1e-9 USD). Balances, holds and charges are ``int`` nano-dollars.
Prices are quoted in USD per 1M tokens and kept as ``int`` nano-dollars per 1M tokens, so a price
such as $0.0302 / 1M is exact (30_200_000). A charge for a token count is
``tokens * price_per_million / 1_000_000`` rounded **up** to the next nano-dollar, once per charge
(never per token), so a sum of charges never under-collects.

No float ever touches a balance: USD amounts enter as ``str`` / ``Decimal`` / ``int`` and are
converted exactly; an amount with more precision than a nano-dollar is rejected, not rounded. A
``str`` amount must be a plain ASCII decimal (``-?[0-9]+(.[0-9]+)?``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gridgate.echo import capped

NANOS_PER_USD = 1_000_000_000
# what a USD amount given as text may look like: plain ASCII (``Decimal`` alone also takes
# "1e3", "１" (a full-width digit), " 1", "+1" and "1_000")
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
TOKENS_PER_PRICE_UNIT = 1_000_000


class MoneyError(ValueError):
    """An amount that cannot be represented exactly in nano-dollars."""


def usd_to_nanos(amount: str | Decimal | int) -> int:
    """Exact USD → nano-dollars. Raises MoneyError for non-numbers, NaN/inf or sub-nano precision."""
    if isinstance(amount, bool | float):
        raise MoneyError("amounts must be given as decimal strings or integers, not floats")
    if isinstance(amount, str) and _PLAIN_DECIMAL.fullmatch(amount) is None:
        raise MoneyError(
            f"not a plain decimal amount: {capped(amount)!r} (ASCII digits, an optional leading "
            "'-' and '.', e.g. '25' or '-1.5'; no spaces, exponents or other digits)"
        )
    try:
        value = Decimal(amount) if not isinstance(amount, Decimal) else amount
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"not a decimal amount: {capped(amount)!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"not a finite amount: {capped(amount)!r}")
    if value and value.adjusted() > 18:  # far past any balance a BIGINT of nanos can hold
        raise MoneyError(f"not a plausible amount: {capped(amount)!r}")
    nanos = value * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise MoneyError(f"{amount} USD is finer than one nano-dollar")
    return int(nanos)


def nanos_to_usd(nanos: int) -> Decimal:
    """Nano-dollars → exact Decimal USD (for display and JSON; never for arithmetic on balances)."""
    return (Decimal(nanos) / NANOS_PER_USD).normalize() if nanos else Decimal(0)


def format_usd(nanos: int) -> str:
    """A plain decimal string with up to 9 places and no exponent, e.g. ``'0.000012345'``."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
    return sign + text


def format_usd_fixed(nanos: int) -> str:
    """A plain decimal string with exactly 9 places (every nano-dollar shown), e.g.
    ``'0.000123450'``, ``'0.000000000'``: the form of a charge the consumer reads
    (``usage.cost`` on every consumption surface)."""
    if 0 <= nanos < NANOS_PER_USD:
        return f"0.{nanos:09d}"  # most charges: under a dollar
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    return f"{sign}{whole}.{frac:09d}"


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer ceiling division for non-negative numerator and positive denominator."""
    return -(-numerator // denominator)


@dataclass(frozen=True, slots=True)
class Price:
    """An offer's price in nano-dollars per 1M input and output tokens."""

    input_per_m: int
    output_per_m: int

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        """The charge for a token mix, rounded up once."""
        if input_tokens < 0 or output_tokens < 0:
            raise MoneyError("token counts cannot be negative")
        raw = input_tokens * self.input_per_m + output_tokens * self.output_per_m
        return ceil_div(raw, TOKENS_PER_PRICE_UNIT)

    def output_tokens_affordable(self, budget: int, input_tokens: int) -> int:
        """The largest output token count whose cost with ``input_tokens`` stays within ``budget``."""
        remaining = budget * TOKENS_PER_PRICE_UNIT - input_tokens * self.input_per_m
        if remaining < 0:
            return 0
        if self.output_per_m == 0:
            return 2**62
        return remaining // self.output_per_m
