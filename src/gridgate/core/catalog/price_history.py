"""An instrument's price over time, from its offers' price history. Pure.

The price of an instrument at a moment is that of its cheapest available offer for a typical
request (1,000 tokens in, 1,000 out: the mix ``/v1/models`` ranks its best price by), among the
offers that meet the instrument's spec. A day's price is the price at the day's end (now, for
today); a day on which no offer was available has none. The average is over the days that had a
price, input and output each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gridgate.core.times import day_start
from gridgate.storage.records import PricePoint

TYPICAL_TOKENS = 1_000


@dataclass(frozen=True, slots=True)
class DailyPrice:
    day: int  # days since 1970-01-01 (UTC)
    offer_id: str | None  # None: no offer was available
    input_per_m: int | None
    output_per_m: int | None


def _cheapest(state: dict[str, PricePoint]) -> PricePoint | None:
    live = [p for p in state.values() if p.available]
    if not live:
        return None
    return min(
        live,
        key=lambda p: (
            p.input_per_m * TYPICAL_TOKENS + p.output_per_m * TYPICAL_TOKENS,
            p.offer_id,
        ),
    )


def daily_prices(
    points: Sequence[PricePoint],
    *,
    first_day: int,
    last_day: int,
    now_us: int,
    qualifying: Iterable[str] | None = None,
) -> list[DailyPrice]:
    """One price per day from ``first_day`` to ``last_day`` (inclusive). ``points`` are oldest
    first; ``qualifying``, when given, names the offers that meet the instrument's spec (the
    others are ignored)."""
    allowed = None if qualifying is None else set(qualifying)
    ordered = [p for p in points if allowed is None or p.offer_id in allowed]
    state: dict[str, PricePoint] = {}
    index = 0
    out: list[DailyPrice] = []
    for day in range(first_day, last_day + 1):
        moment = min(day_start(day + 1) - 1, now_us)
        while index < len(ordered) and ordered[index].created_us <= moment:
            state[ordered[index].offer_id] = ordered[index]
            index += 1
        best = _cheapest(state)
        out.append(
            DailyPrice(day, None, None, None)
            if best is None
            else DailyPrice(day, best.offer_id, best.input_per_m, best.output_per_m)
        )
    return out


def average(prices: Sequence[DailyPrice]) -> tuple[int, int] | None:
    """The mean input and output price (nano-dollars per 1M, rounded half up) over the days that
    had one; None when none had."""
    priced = [(p.input_per_m, p.output_per_m) for p in prices if p.input_per_m is not None]
    if not priced:
        return None
    n = len(priced)
    total_in = sum(i for i, _ in priced)
    total_out = sum(o or 0 for _, o in priced)
    return (total_in * 2 + n) // (2 * n), (total_out * 2 + n) // (2 * n)
