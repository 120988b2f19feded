"""A request's routing preferences (its ``provider`` object), applied to the offers.

``Preferences.of(request, dropped_fields)`` reads them once per request: supplier names
lower-cased, price ceilings in nano-dollars, and, when ``require_parameters`` is set, what each
wire format would drop of this request. It is ``None`` when the request has no ``provider``
object (or only defaults), and routing then does what it always did, at no extra cost.

Routing (``routing.rank``) calls two steps:

``allow`` keeps the in-spec offers the preferences allow. Filters, in this order; the first that
leaves no offer answers ``NoQualifyingOffer`` (422) naming itself in ``param`` and the message:

    provider.only                 only offers from these suppliers
    provider.ignore               no offer from these suppliers
    provider.data_collection      "deny": only suppliers with zero data retention
      / provider.zdr              true: the same
    provider.max_price.prompt     input price ≤ the ceiling (USD per 1M tokens, exact)
    provider.max_price.completion output price ≤ the ceiling
    provider.require_parameters   only offers whose wire format drops no parameter the request
                                  sets (a wire without a ``dropped_fields`` function cannot
                                  vouch for that and is left out)
    provider.order                with ``allow_fallbacks: false``: only the suppliers named

``arrange`` turns the qualifying offers (cheapest first, as routing ranks them) into the
failover order:

    sort           "price" keeps them; "latency" puts them by measured p50 time to first token,
                   lowest first, "throughput" by measured p50 tokens/s, highest first; offers
                   without that measurement follow the measured ones, cheapest first
    order          the offers of the named suppliers first, in the order named (a supplier's
                   offers in the sort order), then the rest in the sort order
    allow_fallbacks  false: only the suppliers in ``order`` (allow left only those); without
                   ``order``, only the first offer — no failover at all

Names match supplier names case-insensitively (surrounding blanks ignored); a name that is no
supplier of the exchange is ignored, as OpenRouter ignores unknown providers. The request's
top-level ``route: "fallback"`` (OpenRouter's legacy switch) means "fallbacks allowed", which is
the default: it is accepted and changes nothing; an explicit ``provider.allow_fallbacks: false``
decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from gridgate.core.catalog.catalog import PricedOffer
from gridgate.core.health.figures import OfferFigures
from gridgate.errors import NoQualifyingOffer
from gridgate.money import NANOS_PER_USD
from gridgate.protocol.openai_chat import ChatRequest, UnsetType
from gridgate.protocol.provider_preferences import MaxPrice, ProviderPreferences, Sort
from gridgate.storage.records import InstrumentRecord

__all__ = ["DroppedFields", "Figures", "Preferences", "no_figures"]

DroppedFields = Callable[[ChatRequest], frozenset[str]]
"""A wire format's ``dropped_fields``: the parameters a request sets that it would drop."""
Figures = Callable[[str], OfferFigures | None]
"""What is measured of an offer (by offer id); ``None`` = nothing yet."""

# a ceiling above this many USD per 1M tokens excludes nothing; one below 1e-10 is 0 nanos
_NO_CEILING_EXPONENT = 15
_ZERO_CEILING_EXPONENT = -10


def no_figures(offer_id: str) -> OfferFigures | None:
    """Nothing measured: the figures before the offer-health book is wired."""
    return None


@dataclass(frozen=True, slots=True)
class Preferences:
    order: tuple[str, ...] = ()  # as ``_key``s, first occurrence of each
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    allow_fallbacks: bool = True
    sort: Sort = "price"
    max_input_per_m: int | None = None  # nano-dollars per 1M tokens
    max_output_per_m: int | None = None
    dropped: Mapping[str, frozenset[str]] | None = None  # by wire; set: require_parameters
    zero_retention: str | None = None  # the field that asked for it, when one did
    # the names as the caller wrote them, for messages
    only_given: tuple[str, ...] = ()
    order_given: tuple[str, ...] = ()
    max_input_given: Decimal | None = None
    max_output_given: Decimal | None = None

    @classmethod
    def of(
        cls, request: ChatRequest, dropped_fields: Mapping[str, DroppedFields]
    ) -> Preferences | None:
        """The preferences of ``request``; None when it states none (or only defaults)."""
        given = request.provider
        if not isinstance(given, ProviderPreferences):
            return None
        order_given = _names(given.order)
        only_given = _names(given.only)  # empty: no restriction
        ceiling = given.max_price if isinstance(given.max_price, MaxPrice) else MaxPrice()
        prompt = ceiling.prompt if isinstance(ceiling.prompt, Decimal) else None
        completion = ceiling.completion if isinstance(ceiling.completion, Decimal) else None
        zero_retention = (
            "provider.data_collection"
            if given.data_collection == "deny"
            else "provider.zdr"
            if given.zdr is True
            else None
        )
        prefs = cls(
            order=_unique(_key(name) for name in order_given),
            only=frozenset(_key(name) for name in only_given) if only_given else None,
            ignore=frozenset(_key(name) for name in _names(given.ignore)),
            allow_fallbacks=given.allow_fallbacks is not False,
            sort=given.sort if isinstance(given.sort, str) else "price",
            max_input_per_m=_ceiling_nanos(prompt),
            max_output_per_m=_ceiling_nanos(completion),
            dropped=(
                {wire: dropped(request) for wire, dropped in dropped_fields.items()}
                if given.require_parameters is True
                else None
            ),
            zero_retention=zero_retention,
            only_given=only_given,
            order_given=order_given,
            max_input_given=prompt,
            max_output_given=completion,
        )
        return None if prefs == _DEFAULT else prefs

    # -- filtering -----------------------------------------------------------------------------
    def allow(self, instrument: InstrumentRecord, offers: list[PricedOffer]) -> list[PricedOffer]:
        """The offers these preferences allow (see the module docstring for the order)."""
        of = f"of instrument {instrument.id!r}"
        if self.only is not None:
            only = self.only
            offers = _keep(
                offers,
                lambda o: o.supplier.name.lower() in only,
                "provider.only",
                f"no offer {of} is from {_either(self.only_given)}",
            )
        if self.ignore:
            ignore = self.ignore
            offers = _keep(
                offers,
                lambda o: o.supplier.name.lower() not in ignore,
                "provider.ignore",
                f"every offer {of} is from an ignored supplier",
            )
        if self.zero_retention is not None:
            offers = _keep(
                offers,
                lambda o: o.supplier.zero_retention,
                self.zero_retention,
                f"no offer {of} is from a supplier with zero data retention",
            )
        if self.max_input_per_m is not None:
            cap = self.max_input_per_m
            offers = _keep(
                offers,
                lambda o: o.price.input_per_m <= cap,
                "provider.max_price.prompt",
                f"no offer {of} costs at most {_usd(self.max_input_given)} USD per 1M prompt tokens",
            )
        if self.max_output_per_m is not None:
            cap = self.max_output_per_m
            offers = _keep(
                offers,
                lambda o: o.price.output_per_m <= cap,
                "provider.max_price.completion",
                f"no offer {of} costs at most {_usd(self.max_output_given)} USD per 1M "
                "completion tokens",
            )
        if self.dropped is not None:
            offers = _keep(
                offers,
                lambda o: self._carries_everything(o.supplier.wire),
                "provider.require_parameters",
                f"no offer {of} can carry every parameter of the request "
                f"({self._what_is_dropped(offers)})",
            )
        if self.order and not self.allow_fallbacks:
            named = frozenset(self.order)
            offers = _keep(
                offers,
                lambda o: o.supplier.name.lower() in named,
                "provider.order",
                f"no offer {of} left by the other preferences is from "
                f"{_either(self.order_given)}, and provider.allow_fallbacks is false",
            )
        return offers

    def _carries_everything(self, wire: str) -> bool:
        assert self.dropped is not None
        dropped = self.dropped.get(wire)
        return dropped is not None and not dropped

    def _what_is_dropped(self, offers: list[PricedOffer]) -> str:
        assert self.dropped is not None
        parts = []
        for wire in sorted({o.supplier.wire for o in offers}):
            dropped = self.dropped.get(wire)
            if dropped is None:
                parts.append(f"the {wire} wire format is not known to carry them")
            else:
                parts.append(f"the {wire} wire format drops {', '.join(sorted(dropped))}")
        return "; ".join(parts)

    # -- ordering ------------------------------------------------------------------------------
    def arrange(self, ranked: list[PricedOffer], figures: Figures) -> list[PricedOffer]:
        """The failover order of ``ranked`` (qualifying offers, cheapest first)."""
        offers = ranked
        if self.sort == "latency":
            offers = sorted(offers, key=lambda o: _latency_key(figures(o.offer.id)))
        elif self.sort == "throughput":
            offers = sorted(offers, key=lambda o: _throughput_key(figures(o.offer.id)))
        if self.order:
            position = {name: i for i, name in enumerate(self.order)}
            rest = len(self.order)
            # stable: the offers of one supplier, and the rest, keep the sort order
            offers = sorted(offers, key=lambda o: position.get(o.supplier.name.lower(), rest))
        elif not self.allow_fallbacks:
            offers = offers[:1]
        return offers


_DEFAULT = Preferences()


def _names(given: list[str] | UnsetType | None) -> tuple[str, ...]:
    return tuple(given) if isinstance(given, list) else ()


def _key(name: str) -> str:
    """A supplier name as preferences match it: case and surrounding blanks do not count."""
    return name.strip().lower()


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _either(names: tuple[str, ...]) -> str:
    return " or ".join(names) if names else "no supplier"


def _keep(
    offers: list[PricedOffer],
    allowed: Callable[[PricedOffer], bool],
    param: str,
    problem: str,
) -> list[PricedOffer]:
    kept = [o for o in offers if allowed(o)]
    if not kept:
        raise NoQualifyingOffer(f"{param}: {problem}", param=param)
    return kept


def _usd(amount: Decimal | None, limit: int = 32) -> str:
    text = str(amount)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ceiling_nanos(usd: Decimal | None) -> int | None:
    """A ceiling in USD per 1M tokens as nano-dollars per 1M, rounded down: an integer price is
    at most the ceiling exactly when it is at most this. None: no ceiling."""
    if usd is None or usd.adjusted() > _NO_CEILING_EXPONENT:
        return None
    if usd.adjusted() < _ZERO_CEILING_EXPONENT:
        return 0
    numerator, denominator = usd.as_integer_ratio()
    return numerator * NANOS_PER_USD // denominator


def _latency_key(figures: OfferFigures | None) -> tuple[int, float]:
    ttft = figures.ttft_p50_ms if figures is not None else None
    return (1, 0.0) if ttft is None else (0, ttft)


def _throughput_key(figures: OfferFigures | None) -> tuple[int, float]:
    tps = figures.throughput_p50_tps if figures is not None else None
    return (1, 0.0) if tps is None else (0, -tps)
