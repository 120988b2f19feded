"""Request options that would cost a supplier more than an offer's token price, or keep the
caller's data: which are honoured where, and which are refused (pure).

An offer prices tokens at its supplier's standard tier, and nothing else. So:

    option                              decision
    ─────────────────────────────────── ─────────────────────────────────────────────────────
    service_tier auto, default, null    forwarded as sent: the standard tier offers price
    service_tier flex, scale, priority  400, ``param`` service_tier: no offer prices another
                                        tier (flex is cheaper but may be refused or slow)
    web_search_options                  400, ``param`` web_search_options: search is billed per
                                        call, which no offer prices
    store: true                         served only by suppliers that keep data (declared
                                        ``zero_retention = false``); none: 422, ``param`` store
    metadata                            never sent to a zero-retention supplier (it labels
                                        stored completions; the OpenAI adapter drops it there)

The Messages surface has no counterpart to let through: its ``service_tier`` (auto,
standard_only) never asks for a dearer tier and is ignored, and server tools such as
``web_search`` are refused (422) when the request is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from msgspec import UNSET

from gridgate.core.catalog.catalog import PricedOffer
from gridgate.echo import capped
from gridgate.errors import BadRequest, NoQualifyingOffer
from gridgate.protocol.openai_chat import ChatRequest
from gridgate.storage.records import InstrumentRecord

# the tiers an offer's price is for (null or absent: the supplier's default, the same)
PRICED_TIERS: Final = frozenset(("auto", "default"))


def refuse_unpriced(request: ChatRequest) -> None:
    """Raise ``BadRequest`` (400, as OpenAI answers a parameter it does not support) naming the
    first option of ``request`` no offer prices."""
    tier = request.service_tier
    if isinstance(tier, str) and tier not in PRICED_TIERS:
        raise BadRequest(
            f"service_tier: {capped(tier)!r} is not offered by this exchange: offers are priced at "
            "their suppliers' standard tier (send 'auto' or 'default', or omit it)",
            param="service_tier",
        )
    options = request.web_search_options
    if options is not None and options is not UNSET:
        raise BadRequest(
            "web_search_options: web search is not offered by this exchange (its suppliers "
            "bill it per search, which no offer prices); omit it",
            param="web_search_options",
        )


def keeping_data(
    request: ChatRequest, instrument: InstrumentRecord, offers: Sequence[PricedOffer]
) -> Sequence[PricedOffer]:
    """The offers that may serve ``request``: all of them, unless it asks the supplier to store
    the completion (``store: true``), which only a supplier that keeps data may be sent. Raises
    ``NoQualifyingOffer`` naming ``store`` when the instrument has offers but none keeps data."""
    if request.store is not True or not offers:
        return offers
    kept = [o for o in offers if not o.supplier.zero_retention]
    if not kept:
        raise NoQualifyingOffer(
            f"store: every supplier of instrument {instrument.id!r} keeps no data (zero "
            "retention), so none may be asked to store the completion; omit store or send false",
            param="store",
        )
    return kept
