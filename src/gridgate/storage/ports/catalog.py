"""The catalog: instruments, suppliers and offers, seeded from config or edited by an operator,
and the offers' price history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gridgate.storage.records import (
    AuditNote,
    InstrumentRecord,
    OfferRecord,
    PricePoint,
    SupplierRecord,
)


class CatalogStore(Protocol):
    async def upsert_catalog(
        self,
        instruments: Sequence[InstrumentRecord],
        suppliers: Sequence[SupplierRecord],
        offers: Sequence[OfferRecord],
    ) -> None:
        """Insert or replace by primary key (instrument id, supplier name, offer id)."""

    async def load_catalog(
        self,
    ) -> tuple[list[InstrumentRecord], list[SupplierRecord], list[OfferRecord]]: ...

    async def set_offer_disabled(
        self, offer_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> OfferRecord:
        """An operator's disable (keeps the first time) or re-enable of an offer; seeding the
        catalog from config never undoes it. Announced (kind ``offer``). Unknown →
        NotFoundInStore."""

    async def save_instrument(
        self, record: InstrumentRecord, *, create: bool, audit: AuditNote | None = None
    ) -> InstrumentRecord:
        """An operator's run-time create (an id taken → Conflict) or replacement (unknown →
        NotFoundInStore), stamped ``edited_us``: seeding from config leaves it alone from then
        on. Announced (kind ``catalog``)."""

    async def save_supplier(
        self, record: SupplierRecord, *, create: bool, audit: AuditNote | None = None
    ) -> SupplierRecord:
        """As ``save_instrument``, by name."""

    async def save_offer(
        self, record: OfferRecord, *, create: bool, audit: AuditNote | None = None
    ) -> OfferRecord:
        """As ``save_instrument``; the record's ``disabled_us`` is ignored (only
        ``set_offer_disabled`` moves it). Announced (kind ``offer``)."""

    async def price_history(self, instrument: str) -> list[PricePoint]:
        """Every price-history row of the instrument's offers, oldest first. Every write to the
        catalog (seeding included) appends a row for each offer whose price or availability
        changed, in its own transaction."""
