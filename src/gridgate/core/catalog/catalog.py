"""The catalog: instruments, suppliers and offers, as one immutable snapshot per process.

The config file seeds the store; the running processes load the snapshot from the store, so an
operator's change made at run time (later: the management API) is the same kind of change as an
edit of the file. A snapshot is immutable; a reload replaces it whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gridgate.core.catalog.reference import default_instruments
from gridgate.money import Price, usd_to_nanos
from gridgate.settings import Settings, offer_id
from gridgate.storage.records import InstrumentRecord, OfferRecord, SupplierRecord


@dataclass(frozen=True, slots=True)
class PricedOffer:
    """An offer with its supplier and price resolved once, for the hot path."""

    offer: OfferRecord
    supplier: SupplierRecord
    price: Price


@dataclass(frozen=True)
class Catalog:
    instruments: dict[str, InstrumentRecord]  # by lower-case id
    suppliers: dict[str, SupplierRecord]
    offers: dict[str, tuple[PricedOffer, ...]]  # by instrument id, enabled only, sorted by id
    all_offers: tuple[OfferRecord, ...] = ()  # every offer, disabled ones too, sorted by id

    @classmethod
    def build(
        cls,
        instruments: Iterable[InstrumentRecord],
        suppliers: Iterable[SupplierRecord],
        offers: Iterable[OfferRecord],
    ) -> Catalog:
        inst = {i.id.lower(): i for i in instruments}
        sups = {s.name: s for s in suppliers}
        all_offers = tuple(sorted(offers, key=lambda o: o.id))
        by_instrument: dict[str, list[PricedOffer]] = {}
        for offer in all_offers:
            supplier = sups.get(offer.supplier)
            instrument = inst.get(offer.instrument.lower())
            if (
                not offer.enabled
                or offer.disabled_us is not None  # an operator's disable
                or supplier is None
                or not supplier.enabled
                or instrument is None
            ):
                continue
            by_instrument.setdefault(instrument.id, []).append(
                PricedOffer(offer, supplier, Price(offer.input_per_m, offer.output_per_m))
            )
        return cls(
            instruments=inst,
            suppliers=sups,
            offers={k: tuple(v) for k, v in by_instrument.items()},
            all_offers=all_offers,
        )

    def instrument(self, name: str) -> InstrumentRecord | None:
        """Case-insensitive lookup of an enabled instrument."""
        found = self.instruments.get(name.lower())
        return found if found is not None and found.enabled else None

    def offers_for(self, instrument_id: str) -> tuple[PricedOffer, ...]:
        return self.offers.get(instrument_id, ())


def records_from_settings(
    settings: Settings,
) -> tuple[list[InstrumentRecord], list[SupplierRecord], list[OfferRecord]]:
    """The config file's catalog (defaults overridden by id) as store records."""
    merged = {i.id.lower(): i for i in default_instruments()}
    merged.update({i.id.lower(): i for i in settings.instruments})
    instruments = [
        InstrumentRecord(
            id=key,
            display_name=i.display_name or key,
            quality_floor=i.quality_floor,
            ttft_ceiling_ms=i.ttft_ceiling_ms,
            throughput_floor_tps=i.throughput_floor_tps,
            context_floor=i.context_floor,
            max_output_floor=i.max_output_floor,
            context_length=i.context_length,
            max_input_tokens=i.max_input_tokens,
            max_completion_tokens=i.max_completion_tokens,
            image_input=i.image_input,
            reasoning_efforts=tuple(i.reasoning_efforts),
            default_reasoning_effort=i.default_reasoning_effort,
            enabled=i.enabled,
            bill_out_of_spec=i.bill_out_of_spec,
        )
        for key, i in merged.items()
    ]
    suppliers = [
        SupplierRecord(
            name=s.name,
            wire=s.wire,
            base_url=s.base_url.rstrip("/"),
            api_key_env=s.api_key_env,
            zero_retention=s.zero_retention,
            enabled=s.enabled,
        )
        for s in settings.suppliers
    ]
    offers = [
        OfferRecord(
            id=offer_id(o),
            supplier=o.supplier,
            instrument=o.instrument.lower(),
            model=o.model,
            input_per_m=usd_to_nanos(o.input_usd_per_m),
            output_per_m=usd_to_nanos(o.output_usd_per_m),
            quality=o.quality,
            context=o.context,
            max_output=o.max_output,
            capabilities=tuple(o.capabilities),
            enabled=o.enabled,
        )
        for o in settings.offers
    ]
    return instruments, suppliers, offers
