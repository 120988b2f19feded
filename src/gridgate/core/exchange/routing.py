"""Routing: which offers may serve a request, and in which order they are tried.

Candidate selection, in the order a request meets it (``rank``, then ``eligible``):

1. **spec** — an offer qualifies when it meets the instrument's spec (quality, context and
   max-output floors); none at all: ``NoCapacity`` (503).
2. **provider preferences** (``provider``; ``core/exchange/preferences.py``), when the request
   states any, narrow the in-spec offers (only, ignore, data collection, max price, require
   parameters); the first that leaves none answers ``NoQualifyingOffer`` naming itself.
3. **request needs** — capabilities; the prompt fits the offer's context; the requested max
   tokens fit its max output. None left: ``NoQualifyingOffer``, naming the commonest blocker.
4. **order** — cheapest first by the cost of this request's expected token mix (prompt
   estimate × input price + expected output × output price, where the expected output is
   ``n × max tokens`` when the request sets max tokens and ``n × 1,000`` otherwise), ties broken
   by offer id so the choice is deterministic; then the preferences arrange them (sort, order,
   allow_fallbacks). Without preferences steps 2 and 4's arrangement do no work.
5. **health** (``eligible``) — offer health drops ejected offers and gives an offer on
   probation to a request only with a probe slot. This step is taken later than 1–4, at the
   request's first attempt: after its rate-limit pass (sized from the candidates of 1–4), so a
   refused request holds no probe slot; the slots are given back when the request ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridgate.core.catalog.catalog import PricedOffer
from gridgate.core.exchange.preferences import Figures, Preferences, no_figures
from gridgate.core.health.offer_health import Eligibility, OfferHealth
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
    """Steps 1–4: the qualifying offers in failover order (cheapest first, unless
    ``preferences`` say otherwise). Raises NoCapacity when the instrument has no in-spec offer
    at all, NoQualifyingOffer when the preferences leave none (naming the preference) or none
    can serve this request's needs."""
    # 1. the instrument's spec
    candidates = [o for o in offers if meets_spec(o, instrument)]
    if not candidates:
        raise NoCapacity(f"instrument {instrument.id!r} has no supplier offer available right now")
    # 2. the suppliers and prices the caller allows
    if preferences is not None:
        candidates = preferences.allow(instrument, candidates)
    # 3. what this request needs of an offer
    candidates = _fitting(instrument, candidates, needs, preferences is not None)
    # 4. cheapest first, then as the caller arranged them
    expected_out = needs.expected_output_tokens
    candidates.sort(
        key=lambda o: (
            o.price.input_per_m * needs.prompt_tokens + o.price.output_per_m * expected_out,
            o.offer.id,
        )
    )
    return candidates if preferences is None else preferences.arrange(candidates, figures)


def eligible(
    ranked: list[PricedOffer], health: OfferHealth | None, limit: int
) -> tuple[list[PricedOffer], Eligibility | None]:
    """Step 5: the first ``limit`` offers of ``ranked`` that offer health lets this request try
    (all of them when health is off), and the eligibility that holds its probe slots (close it
    when the request ends)."""
    if health is None:
        return ranked[:limit], None
    chosen = health.eligible(ranked, limit=limit)
    return chosen.offers[:limit], chosen


def _fitting(
    instrument: InstrumentRecord, offers: list[PricedOffer], needs: Needs, preferred: bool
) -> list[PricedOffer]:
    reasons: list[str] = []
    fit: list[PricedOffer] = []
    for offer in offers:
        why = unmet_need(offer, needs)
        if why is None:
            fit.append(offer)
        else:
            reasons.append(why)
    if not fit:
        allowed = " that the provider preferences allow" if preferred else ""
        raise NoQualifyingOffer(
            f"no supplier offer of instrument {instrument.id!r}{allowed} {_summarise(reasons)}"
        )
    return fit


def _summarise(reasons: list[str]) -> str:
    # the most common blocker speaks for all; the caller learns what to drop or shrink
    return max(sorted(set(reasons)), key=reasons.count)
