"""The catalog's rows in SQL: instruments, suppliers, offers and the offers' price history.

``CatalogStore`` in SQL, and its transaction functions over a ``Connection``, written once for
SQLite and PostgreSQL. Two sources write the catalog: seeding from the config file (every process start)
and an operator's run-time edit (the management API, the dashboard, the CLI). An edit stamps the
row's ``edited_us``, and seeding never overwrites a stamped row, so what an operator set survives
restarts. Every write of either kind brings ``offer_prices`` up to date in its own transaction:
a row is appended for each offer whose price or availability differs from its latest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import msgspec
from sqlalchemy import Connection, Insert, Row, Table, and_, func, insert, select, update

from gridgate.storage.ports.errors import Conflict, NotFoundInStore
from gridgate.storage.records import (
    AuditNote,
    Capability,
    ChangeKind,
    InstrumentRecord,
    OfferRecord,
    PricePoint,
    SupplierRecord,
    WireFormat,
)
from gridgate.storage.schema import instruments as instruments_t
from gridgate.storage.schema import offer_prices
from gridgate.storage.schema import offers as offers_t
from gridgate.storage.schema import suppliers as suppliers_t
from gridgate.storage.sql.audit import _note
from gridgate.storage.sql.base import SqlBase, _now_us
from gridgate.storage.sql.changes import _announce

CatalogRecord = InstrumentRecord | SupplierRecord | OfferRecord


def instrument_values(r: InstrumentRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "display_name": r.display_name,
        "quality_floor": r.quality_floor,
        "ttft_ceiling_ms": r.ttft_ceiling_ms,
        "throughput_floor_tps": r.throughput_floor_tps,
        "context_floor": r.context_floor,
        "max_output_floor": r.max_output_floor,
        "context_length": r.context_length,
        "max_input_tokens": r.max_input_tokens,
        "max_completion_tokens": r.max_completion_tokens,
        "image_input": r.image_input,
        "reasoning_efforts": msgspec.json.encode(list(r.reasoning_efforts)).decode(),
        "default_reasoning_effort": r.default_reasoning_effort,
        "enabled": r.enabled,
        "bill_out_of_spec": r.bill_out_of_spec,
        "edited_us": r.edited_us,
    }


def instrument_of(row: Row[Any]) -> InstrumentRecord:
    return InstrumentRecord(
        id=row.id,
        display_name=row.display_name,
        quality_floor=float(row.quality_floor),
        ttft_ceiling_ms=row.ttft_ceiling_ms,
        throughput_floor_tps=(
            None if row.throughput_floor_tps is None else float(row.throughput_floor_tps)
        ),
        context_floor=row.context_floor,
        max_output_floor=row.max_output_floor,
        context_length=row.context_length,
        max_input_tokens=row.max_input_tokens,
        max_completion_tokens=row.max_completion_tokens,
        image_input=bool(row.image_input),
        reasoning_efforts=msgspec.json.decode(row.reasoning_efforts, type=tuple[str, ...]),
        default_reasoning_effort=row.default_reasoning_effort,
        enabled=bool(row.enabled),
        bill_out_of_spec=bool(row.bill_out_of_spec),
        edited_us=row.edited_us,
    )


def supplier_values(r: SupplierRecord) -> dict[str, Any]:
    return {
        "name": r.name,
        "wire": r.wire,
        "base_url": r.base_url,
        "api_key_env": r.api_key_env,
        "zero_retention": r.zero_retention,
        "enabled": r.enabled,
        "edited_us": r.edited_us,
    }


def supplier_of(row: Row[Any]) -> SupplierRecord:
    return SupplierRecord(
        name=row.name,
        wire=cast(WireFormat, row.wire),
        base_url=row.base_url,
        api_key_env=row.api_key_env,
        zero_retention=bool(row.zero_retention),
        enabled=bool(row.enabled),
        edited_us=row.edited_us,
    )


def offer_values(r: OfferRecord) -> dict[str, Any]:
    """Every column but ``disabled_us``, which only an operator's disable or enable moves."""
    return {
        "id": r.id,
        "supplier": r.supplier,
        "instrument": r.instrument,
        "model": r.model,
        "input_per_m": r.input_per_m,
        "output_per_m": r.output_per_m,
        "quality": r.quality,
        "context": r.context,
        "max_output": r.max_output,
        "capabilities": msgspec.json.encode(list(r.capabilities)).decode(),
        "enabled": r.enabled,
        "edited_us": r.edited_us,
    }


def offer_of(row: Row[Any]) -> OfferRecord:
    return OfferRecord(
        id=row.id,
        supplier=row.supplier,
        instrument=row.instrument,
        model=row.model,
        input_per_m=int(row.input_per_m),
        output_per_m=int(row.output_per_m),
        quality=float(row.quality),
        context=row.context,
        max_output=row.max_output,
        capabilities=msgspec.json.decode(row.capabilities, type=tuple[Capability, ...]),
        enabled=bool(row.enabled),
        disabled_us=row.disabled_us,
        edited_us=row.edited_us,
    )


def price_point_of(row: Row[Any]) -> PricePoint:
    return PricePoint(
        offer_id=row.offer_id,
        instrument=row.instrument,
        input_per_m=int(row.input_per_m),
        output_per_m=int(row.output_per_m),
        available=bool(row.available),
        created_us=int(row.created_us),
    )


# -- run-time edits -----------------------------------------------------------------------------


def _table_of(record: CatalogRecord) -> tuple[Table, str, str, dict[str, Any]]:
    """The record's table, key column, key value and column values."""
    if isinstance(record, InstrumentRecord):
        return instruments_t, "id", record.id, instrument_values(record)
    if isinstance(record, SupplierRecord):
        return suppliers_t, "name", record.name, supplier_values(record)
    return offers_t, "id", record.id, offer_values(record)


def _row_of(table: Table, row: Row[Any]) -> CatalogRecord:
    if table is instruments_t:
        return instrument_of(row)
    if table is suppliers_t:
        return supplier_of(row)
    return offer_of(row)


def save(conn: Connection, record: CatalogRecord, *, create: bool, now_us: int) -> CatalogRecord:
    """Insert (``create``; an existing key → ``Conflict``) or replace (a missing key →
    ``NotFoundInStore``) one catalog row as an operator's edit, stamped ``edited_us``."""
    table, key, value, values = _table_of(record)
    values["edited_us"] = now_us
    column = table.c[key]
    exists = conn.execute(select(column).where(column == value)).first() is not None
    what = {"instruments": "instrument", "suppliers": "supplier", "offers": "offer"}[table.name]
    if create:
        if exists:
            raise Conflict(f"a {what} {value!r} exists already")
        conn.execute(insert(table), values)
    else:
        if not exists:
            raise NotFoundInStore(f"no {what} {value!r}")
        conn.execute(update(table).where(column == value).values(values))
    row = conn.execute(select(table).where(column == value)).one()
    sync_prices(conn, now_us)
    return _row_of(table, row)


# -- the price history --------------------------------------------------------------------------

_LATEST = offer_prices.alias("latest")
_NEWEST_ID = (
    select(func.max(offer_prices.c.id))
    .where(offer_prices.c.offer_id == _LATEST.c.offer_id)
    .scalar_subquery()
)
_LATEST_PRICES = select(
    _LATEST.c.offer_id, _LATEST.c.input_per_m, _LATEST.c.output_per_m, _LATEST.c.available
).where(_LATEST.c.id == _NEWEST_ID)
_CURRENT = select(
    offers_t.c.id,
    offers_t.c.instrument,
    offers_t.c.input_per_m,
    offers_t.c.output_per_m,
    and_(
        offers_t.c.enabled,
        offers_t.c.disabled_us.is_(None),
        func.coalesce(suppliers_t.c.enabled, False),
    ).label("available"),
).select_from(offers_t.outerjoin(suppliers_t, suppliers_t.c.name == offers_t.c.supplier))


def sync_prices(conn: Connection, now_us: int) -> int:
    """Append a price-history row for every offer whose price or availability is not what its
    latest row says; returns how many were appended. The catalog is small (offers number in
    the hundreds at most), so reading all of it is cheaper than tracking what a write touched."""
    latest = {
        r.offer_id: (int(r.input_per_m), int(r.output_per_m), bool(r.available))
        for r in conn.execute(_LATEST_PRICES)
    }
    rows = [
        {
            "offer_id": r.id,
            "instrument": r.instrument,
            "input_per_m": int(r.input_per_m),
            "output_per_m": int(r.output_per_m),
            "available": bool(r.available),
            "created_us": now_us,
        }
        for r in conn.execute(_CURRENT)
        if latest.get(r.id) != (int(r.input_per_m), int(r.output_per_m), bool(r.available))
    ]
    if rows:
        conn.execute(insert(offer_prices), rows)
    return len(rows)


def price_history(conn: Connection, instrument: str) -> list[PricePoint]:
    stmt = (
        select(offer_prices)
        .where(offer_prices.c.instrument == instrument)
        .order_by(offer_prices.c.created_us, offer_prices.c.id)
    )
    return [price_point_of(r) for r in conn.execute(stmt)]


class SqlCatalog(SqlBase):
    """``CatalogStore`` in SQL."""

    # built for the dialect by ``SqlStore``: seeding from config never overwrites an edit
    _seed_instrument: Insert
    _seed_supplier: Insert
    _seed_offer: Insert

    async def upsert_catalog(
        self,
        instruments: Sequence[InstrumentRecord],
        suppliers: Sequence[SupplierRecord],
        offers: Sequence[OfferRecord],
    ) -> None:
        batches = [
            (self._seed_instrument, [instrument_values(r) for r in instruments]),
            (self._seed_supplier, [supplier_values(r) for r in suppliers]),
            (self._seed_offer, [offer_values(r) for r in offers]),
        ]

        def tx(conn: Connection) -> None:
            now = _now_us()
            for stmt, rows in batches:
                for row in rows:
                    row["edited_us"] = None  # seeding is not an edit
                if rows:
                    conn.execute(stmt, rows)
            sync_prices(conn, now)
            _announce(conn, "catalog", "*", now)

        await self._write(tx)

    async def load_catalog(
        self,
    ) -> tuple[list[InstrumentRecord], list[SupplierRecord], list[OfferRecord]]:
        def tx(
            conn: Connection,
        ) -> tuple[list[InstrumentRecord], list[SupplierRecord], list[OfferRecord]]:
            by_id = select(instruments_t).order_by(instruments_t.c.id)
            by_name = select(suppliers_t).order_by(suppliers_t.c.name)
            offers = select(offers_t).order_by(offers_t.c.id)
            return (
                [instrument_of(r) for r in conn.execute(by_id)],
                [supplier_of(r) for r in conn.execute(by_name)],
                [offer_of(r) for r in conn.execute(offers)],
            )

        return await self._read(tx, snapshot=True)

    async def set_offer_disabled(
        self, offer_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> OfferRecord:
        now = _now_us()
        stmt = (
            update(offers_t)
            .where(offers_t.c.id == offer_id)
            .values(disabled_us=func.coalesce(offers_t.c.disabled_us, now) if disabled else None)
            .returning(*offers_t.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None:
                sync_prices(conn, now)
                _announce(conn, "offer", offer_id, now)
                _note(conn, audit, offer_id, now)
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no offer {offer_id!r}")
        return offer_of(row)

    async def save_instrument(
        self, record: InstrumentRecord, *, create: bool, audit: AuditNote | None = None
    ) -> InstrumentRecord:
        saved = await self._save_catalog(record, create=create, audit=audit, subject=record.id)
        assert isinstance(saved, InstrumentRecord)
        return saved

    async def save_supplier(
        self, record: SupplierRecord, *, create: bool, audit: AuditNote | None = None
    ) -> SupplierRecord:
        saved = await self._save_catalog(record, create=create, audit=audit, subject=record.name)
        assert isinstance(saved, SupplierRecord)
        return saved

    async def save_offer(
        self, record: OfferRecord, *, create: bool, audit: AuditNote | None = None
    ) -> OfferRecord:
        saved = await self._save_catalog(record, create=create, audit=audit, subject=record.id)
        assert isinstance(saved, OfferRecord)
        return saved

    async def _save_catalog(
        self,
        record: CatalogRecord,
        *,
        create: bool,
        audit: AuditNote | None,
        subject: str,
    ) -> CatalogRecord:
        def tx(conn: Connection) -> CatalogRecord:
            now = _now_us()
            saved = save(conn, record, create=create, now_us=now)
            kind: ChangeKind = "offer" if isinstance(record, OfferRecord) else "catalog"
            _announce(conn, kind, subject, now)
            _note(conn, audit, subject, now)
            return saved

        return await self._write(tx)

    async def price_history(self, instrument: str) -> list[PricePoint]:
        return await self._read(lambda conn: price_history(conn, instrument))
