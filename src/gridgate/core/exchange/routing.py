"""Routing: which offers may serve a request, cheapest first.

An offer qualifies when it meets the instrument's spec (quality, context and max-output floors)
and the request's needs (capabilities; the prompt fits the offer's context; the requested max
tokens fit its max output). Qualifying offers are ranked by the cost of this request's expected
token mix — prompt estimate × input price + expected output × output price, where the expected
output is ``n × max tokens`` when the request sets max tokens and ``n × 1,000`` otherwise — with
ties broken by offer id, so the choice is deterministic.

A request's routing preferences (``provider``; ``core/exchange/preferences.py``), when it states any,
first narrow the in-spec offers (only, ignore, data collection, max price, require parameters)
and then arrange the ranked ones into the failover order (sort, order, allow_fallbacks). Without
them ranking does no extra work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridgate.core.catalog.catalog import PricedOffer
from gridgate.core.exchange.preferences import Figures, Preferences, no_figures
from gridgate.errors import NoCapacity, NoQualifyingOffer
from gridgate.storage.records import Capability, InstrumentRecord, OfferRecord

DEFAULT_EXPECTED_OUTPUT_TOKENS = 1_000


@dataclass(frozen=True, slots=True)
class Needs:
    """What a request needs from an offer, independent of the surface it came through."""

    capabilities: frozenset[Capability]
    prompt_tokens: int  # realistic estimate, for fitting and ranking
    max_output_tokens: int | None  # what the caller asked for, per choice
    n: int = 1

    @property
    def expected_output_tokens(self) -> int:
        per_choice = self.max_output_tokens or DEFAULT_EXPECTED_OUTPUT_TOKENS
        return per_choice * self.n


def meets_spec(offer: PricedOffer, instrument: InstrumentRecord) -> bool:
    return declared_in_spec(offer.offer, instrument)


def declared_in_spec(o: OfferRecord, instrument: InstrumentRecord) -> bool:
    """Whether the offer's declarations meet the instrument's floors."""
    return (
        o.quality >= instrument.quality_floor
        and o.context >= instrument.context_floor
        and o.max_output >= instrument.max_output_floor
    )


def unmet_need(offer: PricedOffer, needs: Needs) -> str | None:
    """Why ``offer`` cannot serve ``needs`` (a short phrase), or None when it can."""
    o = offer.offer
    missing = needs.capabilities.difference(o.capabilities)
    if missing:
        return "supports " + " and ".join(sorted(missing))
    if needs.prompt_tokens > o.context:
        return f"fits a prompt of about {needs.prompt_tokens} tokens"
    if needs.max_output_tokens is not None and needs.max_output_tokens > o.max_output:
        return f"allows {needs.max_output_tokens} output tokens"
    return None


def rank(
    instrument: InstrumentRecord,
    offers: Sequence[PricedOffer],
    needs: Needs,
    preferences: Preferences | None = None,
    figures: Figures = no_figures,
) -> list[PricedOffer]:
    """The qualifying offers in failover order: cheapest first, unless ``preferences`` say
    otherwise. Raises NoCapacity when the instrument has no in-spec offer at all,
    NoQualifyingOffer when the preferences leave none (naming the preference) or none can serve
    this request's needs."""
    in_spec = [o for o in offers if meets_spec(o, instrument)]
    if not in_spec:
        raise NoCapacity(f"instrument {instrument.id!r} has no supplier offer available right now")
    if preferences is not None:
        in_spec = preferences.allow(instrument, in_spec)
    reasons: list[str] = []
    fit: list[PricedOffer] = []
    for offer in in_spec:
        why = unmet_need(offer, needs)
        if why is None:
            fit.append(offer)
        else:
            reasons.append(why)
    if not fit:
        allowed = " that the provider preferences allow" if preferences is not None else ""
        raise NoQualifyingOffer(
            f"no supplier offer of instrument {instrument.id!r}{allowed} {_summarise(reasons)}"
        )
    expected_out = needs.expected_output_tokens
    fit.sort(
        key=lambda o: (
            o.price.input_per_m * needs.prompt_tokens + o.price.output_per_m * expected_out,
            o.offer.id,
        )
    )
    return fit if preferences is None else preferences.arrange(fit, figures)


def _summarise(reasons: list[str]) -> str:
    # the most common blocker speaks for all; the caller learns what to drop or shrink
    return max(sorted(set(reasons)), key=reasons.count)
