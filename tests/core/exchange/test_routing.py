"""Routing: cheapest qualifying offer first, deterministic ties, clear errors."""

from __future__ import annotations

import pytest

from gridgate.core.catalog.catalog import Catalog
from gridgate.core.exchange.preferences import Preferences
from gridgate.core.exchange.routing import Needs, rank
from gridgate.errors import NoCapacity, NoQualifyingOffer
from gridgate.storage.records import Capability, InstrumentRecord, OfferRecord, SupplierRecord

PRIME = InstrumentRecord(
    id="text-prime",
    display_name="Text Prime",
    quality_floor=38,
    ttft_ceiling_ms=4620,
    throughput_floor_tps=40,
    context_floor=128_000,
    max_output_floor=30_000,
    context_length=196_608,
    max_input_tokens=120_000,
    max_completion_tokens=131_072,
)
SUPPLIERS = [
    SupplierRecord(name=n, wire="openai", base_url=f"http://{n}.invalid/v1") for n in "abcde"
]


def offer(
    supplier: str,
    *,
    usd_in: int,
    usd_out: int,
    quality: float = 40,
    context: int = 196_608,
    max_output: int = 65_536,
    caps: tuple[Capability, ...] = (),
    enabled: bool = True,
) -> OfferRecord:
    return OfferRecord(
        id=f"{supplier}/text-prime/m",
        supplier=supplier,
        instrument="text-prime",
        model="m",
        input_per_m=usd_in,
        output_per_m=usd_out,
        quality=quality,
        context=context,
        max_output=max_output,
        capabilities=caps,
        enabled=enabled,
    )


def needs(*caps: Capability, prompt: int = 100, max_out: int | None = None, n: int = 1) -> Needs:
    return Needs(capabilities=frozenset(caps), prompt_tokens=prompt, max_output_tokens=max_out, n=n)


def ranked(offers: list[OfferRecord], request: Needs) -> list[str]:
    catalog = Catalog.build([PRIME], SUPPLIERS, offers)
    return [o.offer.supplier for o in rank(PRIME, catalog.offers_for("text-prime"), request)]


def test_cheapest_qualifying_offer_wins() -> None:
    offers = [
        offer("a", usd_in=10, usd_out=40),
        offer("b", usd_in=8, usd_out=30),
        offer("c", usd_in=9, usd_out=35),
    ]
    assert ranked(offers, needs()) == ["b", "c", "a"]


def test_expected_token_mix_decides() -> None:
    # a is cheap on input, b cheap on output: a long prompt with a short answer favours a
    offers = [offer("a", usd_in=1, usd_out=100), offer("b", usd_in=50, usd_out=10)]
    assert ranked(offers, needs(prompt=10_000, max_out=10))[0] == "a"
    assert ranked(offers, needs(prompt=10, max_out=10_000))[0] == "b"


def test_ties_break_by_offer_id() -> None:
    offers = [
        offer("c", usd_in=5, usd_out=5),
        offer("a", usd_in=5, usd_out=5),
        offer("b", usd_in=5, usd_out=5),
    ]
    assert ranked(offers, needs()) == ["a", "b", "c"]


def test_offer_missing_a_needed_capability_is_skipped() -> None:
    offers = [offer("a", usd_in=1, usd_out=1), offer("b", usd_in=9, usd_out=9, caps=("tools",))]
    assert ranked(offers, needs("tools")) == ["b"]
    assert ranked(offers, needs()) == ["a", "b"]


def test_offer_whose_context_cannot_hold_the_prompt_is_skipped() -> None:
    offers = [
        offer("a", usd_in=1, usd_out=1, context=128_000),
        offer("b", usd_in=9, usd_out=9, context=196_608),
    ]
    assert ranked(offers, needs(prompt=150_000)) == ["b"]


def test_offer_whose_max_output_is_too_small_is_skipped() -> None:
    offers = [
        offer("a", usd_in=1, usd_out=1, max_output=32_000),
        offer("b", usd_in=9, usd_out=9, max_output=131_072),
    ]
    assert ranked(offers, needs(max_out=100_000)) == ["b"]


def test_out_of_spec_and_disabled_offers_never_serve() -> None:
    offers = [
        offer("a", usd_in=1, usd_out=1, quality=30),  # under the quality floor
        offer("b", usd_in=1, usd_out=1, context=100_000),  # under the context floor
        offer("c", usd_in=1, usd_out=1, max_output=16_000),  # under the output floor
        offer("d", usd_in=1, usd_out=1, enabled=False),
        offer("e", usd_in=9, usd_out=9),
    ]
    assert ranked(offers, needs()) == ["e"]


def test_no_offer_meeting_the_need_is_a_clear_error() -> None:
    with pytest.raises(NoQualifyingOffer, match="supports tools"):
        ranked([offer("a", usd_in=1, usd_out=1)], needs("tools"))
    with pytest.raises(NoQualifyingOffer, match="allows 200000 output tokens"):
        ranked([offer("a", usd_in=1, usd_out=1)], needs(max_out=200_000))


def test_an_instrument_without_offers_is_no_capacity() -> None:
    with pytest.raises(NoCapacity):
        ranked([], needs())
    with pytest.raises(NoCapacity):
        ranked([offer("a", usd_in=1, usd_out=1, quality=1)], needs())


def test_instrument_lookup_is_case_insensitive() -> None:
    catalog = Catalog.build([PRIME], SUPPLIERS, [])
    assert catalog.instrument("Text-Prime") is PRIME
    assert catalog.instrument("TEXT-PRIME") is PRIME
    assert catalog.instrument("text-max") is None


# -- with the caller's preferences (core/exchange/preferences.py has the details) ------------------
def test_preferences_narrow_before_and_arrange_after_the_price_ranking() -> None:
    offers = [
        offer("a", usd_in=1, usd_out=1),
        offer("b", usd_in=2, usd_out=2),
        offer("c", usd_in=3, usd_out=3),
        offer("d", usd_in=4, usd_out=4),
    ]
    catalog = Catalog.build([PRIME], SUPPLIERS, offers)

    def order(prefs: Preferences | None) -> list[str]:
        found = rank(PRIME, catalog.offers_for("text-prime"), needs(), prefs)
        return [o.offer.supplier for o in found]

    assert order(None) == ["a", "b", "c", "d"]
    assert order(Preferences(order=("c",), ignore=frozenset({"a"}))) == ["c", "b", "d"]
    assert order(Preferences(allow_fallbacks=False, ignore=frozenset({"a"}))) == ["b"]


def test_preferences_are_applied_before_the_needs_and_named_when_they_leave_nothing() -> None:
    offers = [offer("a", usd_in=1, usd_out=1, caps=("tools",)), offer("b", usd_in=1, usd_out=1)]
    only_b = Preferences(only=frozenset({"b"}), only_given=("b",))
    with pytest.raises(NoQualifyingOffer, match="that the provider preferences allow supports"):
        ranked_with(offers, needs("tools"), only_b)
    with pytest.raises(NoQualifyingOffer, match=r"^provider\.only: no offer .* is from x$"):
        ranked_with(offers, needs(), Preferences(only=frozenset({"x"}), only_given=("x",)))


def ranked_with(offers: list[OfferRecord], request: Needs, prefs: Preferences) -> list[str]:
    catalog = Catalog.build([PRIME], SUPPLIERS, offers)
    return [o.offer.supplier for o in rank(PRIME, catalog.offers_for("text-prime"), request, prefs)]
