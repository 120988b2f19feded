"""What a consumer sees of the exchange: each instrument's spec and limits, its best price now,
and its price over the last 30 days with their average (``core/catalog/price_history.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridgate.core.catalog.catalog import Catalog, PricedOffer
from gridgate.core.catalog.price_history import DailyPrice, average, daily_prices
from gridgate.core.clock import Clock
from gridgate.core.exchange.routing import Needs, declared_in_spec, meets_spec, rank
from gridgate.core.times import day_of
from gridgate.echo import capped
from gridgate.errors import GridgateError, UnknownInstrument
from gridgate.storage.ports.catalog import CatalogStore
from gridgate.storage.records import InstrumentRecord

HISTORY_DAYS = 30
# the token mix "best price" is ranked for: 1,000 tokens in, 1,000 out
TYPICAL = Needs(capabilities=frozenset(), prompt_tokens=1_000, max_output_tokens=None)


def best_offer(catalog: Catalog, instrument: InstrumentRecord) -> PricedOffer | None:
    """The cheapest in-spec offer for a typical request, or None when none can serve."""
    try:
        return rank(instrument, catalog.offers_for(instrument.id), TYPICAL)[0]
    except GridgateError:
        return None


@dataclass(frozen=True, slots=True)
class InstrumentView:
    instrument: InstrumentRecord
    best: PricedOffer | None
    offers: int  # in-spec offers able to serve now
    history: list[DailyPrice]  # the last HISTORY_DAYS days, oldest first
    average: tuple[int, int] | None  # mean (input, output) nano-dollars per 1M over them


class Market:
    def __init__(self, store: CatalogStore, catalog: Callable[[], Catalog], clock: Clock) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock

    async def instruments(self) -> list[InstrumentView]:
        catalog = self._catalog()
        ordered = sorted((i for i in catalog.instruments.values() if i.enabled), key=lambda i: i.id)
        return [await self._view(catalog, i) for i in ordered]

    async def instrument(
        self, instrument_id: str, *, include_disabled: bool = False
    ) -> InstrumentView:
        catalog = self._catalog()
        found = catalog.instrument(instrument_id)
        if found is None and include_disabled:
            found = catalog.instruments.get(instrument_id.lower())
        if found is None:
            raise UnknownInstrument(
                f"no instrument {capped(instrument_id)!r}", param="instrument_id"
            )
        return await self._view(catalog, found)

    async def _view(self, catalog: Catalog, instrument: InstrumentRecord) -> InstrumentView:
        now = self._clock.now_us()
        today = day_of(now)
        in_spec = [o for o in catalog.offers_for(instrument.id) if meets_spec(o, instrument)]
        qualifying = {
            o.id
            for o in catalog.all_offers
            if o.instrument == instrument.id and declared_in_spec(o, instrument)
        }
        history = daily_prices(
            await self._store.price_history(instrument.id),
            first_day=today - HISTORY_DAYS + 1,
            last_day=today,
            now_us=now,
            qualifying=qualifying,
        )
        return InstrumentView(
            instrument=instrument,
            best=best_offer(catalog, instrument),
            offers=len(in_spec),
            history=history,
            average=average(history),
        )
