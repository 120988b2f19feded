"""Integer money: exact conversion, one rounding rule (up, once per charge)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridgate.money import MoneyError, Price, format_usd, nanos_to_usd, usd_to_nanos

prices = st.integers(min_value=0, max_value=10**12)
tokens = st.integers(min_value=0, max_value=10**7)


def test_usd_converts_exactly() -> None:
    assert usd_to_nanos("0.0302") == 30_200_000
    assert usd_to_nanos("10") == 10_000_000_000
    assert usd_to_nanos("0.000000001") == 1
    assert usd_to_nanos(Decimal("1.5")) == 1_500_000_000


@pytest.mark.parametrize("bad", ["0.0000000001", "abc", "NaN", "Infinity"])
def test_inexact_or_invalid_amounts_are_refused(bad: str) -> None:
    with pytest.raises(MoneyError):
        usd_to_nanos(bad)


@pytest.mark.parametrize(
    "bad", ["１", "1e3", "1E3", " 1", "1 ", "+1", "1_000", "1.", ".5", "٣", "0x10", "1\n", ""]
)
def test_only_plain_ascii_decimals_are_amounts(bad: str) -> None:
    with pytest.raises(MoneyError, match="plain decimal"):
        usd_to_nanos(bad)


def test_floats_are_refused() -> None:
    with pytest.raises(MoneyError):
        usd_to_nanos(0.1)  # type: ignore[arg-type]


def test_a_charge_rounds_up_once() -> None:
    price = Price(input_per_m=30_200_000, output_per_m=60_000_000)  # $0.0302 / $0.06 per 1M
    # 1 token in: 30.2 nanos -> 31; 1 in + 1 out: 90.2 -> 91 (not 31 + 60)
    assert price.cost(1, 0) == 31
    assert price.cost(1, 1) == 91
    assert price.cost(0, 0) == 0


@given(prices, prices, tokens, tokens)
def test_cost_is_the_ceiling_of_the_exact_amount(pin: int, pout: int, tin: int, tout: int) -> None:
    exact = Decimal(tin * pin + tout * pout) / 1_000_000
    cost = Price(pin, pout).cost(tin, tout)
    assert cost >= exact > cost - 1


@given(prices, st.integers(min_value=1, max_value=10**12), st.integers(0, 10**12), tokens)
def test_affordable_output_is_the_largest_that_fits(
    pin: int, pout: int, budget: int, tin: int
) -> None:
    price = Price(pin, pout)
    out = price.output_tokens_affordable(budget, tin)
    if out > 0 or price.cost(tin, 0) <= budget:
        assert price.cost(tin, out) <= budget
        assert price.cost(tin, out + 1) > budget
    else:
        assert out == 0


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_round_trips(nanos: int) -> None:
    assert usd_to_nanos(format_usd(nanos)) == nanos
    assert usd_to_nanos(nanos_to_usd(nanos)) == nanos
