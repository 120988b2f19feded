"""Usage records (``UsageStore``): batch upserts, pages, daily sums, and each offer's latest
deliveries for offer health."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from msgspec.structs import astuple
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Row,
    Select,
    Text,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
)

from gridgate.storage.records import DailyUsage, DeliveryRow, UsageRecord
from gridgate.storage.schema import usage_records
from gridgate.storage.sql.base import SqlBase

# Offer status: every offer id the usage table names, found by one index seek each (a loose
# scan of ix_usage_records_offer_created, however many records there are)…
_OFFER_IDS = text(
    "WITH RECURSIVE seen (offer_id) AS ("
    " SELECT MIN(offer_id) FROM usage_records"
    " UNION ALL"
    " SELECT (SELECT MIN(u.offer_id) FROM usage_records u WHERE u.offer_id > seen.offer_id)"
    " FROM seen WHERE seen.offer_id IS NOT NULL"
    ") SELECT offer_id FROM seen WHERE offer_id IS NOT NULL"
)
# …then each offer's latest deliveries, read backwards along the same index.
_NOT_DELIVERIES = ("in_progress", "rejected")  # a stream's checkpoint; refused before dispatch
_OFFER_DELIVERIES = (
    select(
        usage_records.c.request_id,
        usage_records.c.offer_id,
        usage_records.c.instrument,
        usage_records.c.outcome,
        usage_records.c.status,
        usage_records.c.stream,
        usage_records.c.created_us,
        usage_records.c.output_tokens,
        usage_records.c.ttft_us,
        usage_records.c.generation_us,
        usage_records.c.in_spec,
    )
    .where(
        usage_records.c.offer_id == bindparam("p_offer", type_=Text),
        usage_records.c.created_us >= bindparam("p_since", type_=BigInteger),
        usage_records.c.outcome.not_in(_NOT_DELIVERIES),
    )
    .order_by(usage_records.c.created_us.desc(), usage_records.c.request_id.desc())
    .limit(bindparam("p_limit", type_=Integer))
)

_USAGE_FIELDS: tuple[str, ...] = UsageRecord.__struct_fields__
_UPSERT_USAGE = (
    f"INSERT INTO usage_records ({', '.join(_USAGE_FIELDS)}) VALUES ({{}}) "
    "ON CONFLICT (request_id) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in _USAGE_FIELDS if f != "request_id")
)
# PostgreSQL: one row per parameter set, through asyncpg's executemany
_POSTGRES_UPSERT_USAGE = _UPSERT_USAGE.format(
    ", ".join(f"${i}" for i in range(1, len(_USAGE_FIELDS) + 1))
)
# SQLite: many rows per statement. sqlite3's executemany binds each row holding the GIL and
# steps it without, so a batch of n rows passed the GIL between the writer thread and the
# event loop 2n times; as one statement of up to 64 rows it passes it twice per 64. Statements
# of 1, 2, 4 … 64 rows: a batch is written as a sum of them (few distinct statements to cache)
_SQLITE_ROW = "(" + ", ".join("?" for _ in _USAGE_FIELDS) + ")"
_SQLITE_UPSERT_ROWS = tuple(
    _UPSERT_USAGE.replace("({})", "{}").format(", ".join([_SQLITE_ROW] * (1 << i)))
    for i in range(7)
)


def _sqlite_chunks(rows: list[tuple[Any, ...]]) -> list[tuple[str, tuple[Any, ...]]]:
    """``rows`` as (statement, flat parameters) of 64, 32, … 1 rows each, in order."""
    chunks: list[tuple[str, tuple[Any, ...]]] = []
    start = 0
    for i in range(len(_SQLITE_UPSERT_ROWS) - 1, -1, -1):
        size = 1 << i
        while len(rows) - start >= size:
            flat = tuple(value for row in rows[start : start + size] for value in row)
            chunks.append((_SQLITE_UPSERT_ROWS[i], flat))
            start += size
    return chunks


def _usage(row: Row[Any]) -> UsageRecord:
    m = row._mapping
    return UsageRecord(
        request_id=m["request_id"],
        created_us=m["created_us"],
        account_id=m["account_id"],
        key_id=m["key_id"],
        instrument=m["instrument"],
        supplier=m["supplier"],
        offer_id=m["offer_id"],
        upstream_model=m["upstream_model"],
        stream=bool(m["stream"]),
        input_tokens=m["input_tokens"],
        output_tokens=m["output_tokens"],
        reasoning_tokens=m["reasoning_tokens"],
        cached_tokens=m["cached_tokens"],
        usage_estimated=bool(m["usage_estimated"]),
        price_input_per_m=m["price_input_per_m"],
        price_output_per_m=m["price_output_per_m"],
        cost=m["cost"],
        hold_id=m["hold_id"],
        ttft_us=m["ttft_us"],
        generation_us=m["generation_us"],
        duration_us=m["duration_us"],
        outcome=m["outcome"],
        status=m["status"],
        billed=bool(m["billed"]),
        in_spec=None if m["in_spec"] is None else bool(m["in_spec"]),
        spec_note=m["spec_note"],
        error=m["error"],
        endpoint=m["endpoint"],
        request_hash=m["request_hash"],
    )


def _delivery(row: Row[*tuple[Any, ...]]) -> DeliveryRow:
    """A row of ``_OFFER_DELIVERIES`` (positional: a row's attribute lookup costs several times
    more, and a report reads thousands)."""
    (request_id, offer_id, instrument, outcome, status, stream) = row[:6]
    (created_us, output_tokens, ttft_us, generation_us, in_spec) = row[6:]
    return DeliveryRow(
        request_id=request_id,
        offer_id=offer_id,
        instrument=instrument,
        outcome=outcome,
        status=status,
        stream=bool(stream),
        created_us=created_us,
        output_tokens=output_tokens,
        ttft_us=ttft_us,
        generation_us=generation_us,
        in_spec=None if in_spec is None else bool(in_spec),
    )


class SqlUsage(SqlBase):
    """``UsageStore`` in SQL."""

    async def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        # the last record of a request wins (a stream's checkpoints, then its final record)
        latest = list({r.request_id: r for r in records}.values())
        # plain tuples straight to the driver: no statement compiled and no parameter dict
        # per record
        tuples = [astuple(r) for r in latest]  # the fields in _USAGE_FIELDS' order
        if self._dialect != "sqlite":
            await self._write(lambda conn: conn.exec_driver_sql(_POSTGRES_UPSERT_USAGE, tuples))
            return
        chunks = _sqlite_chunks(tuples)

        def write(conn: Connection) -> None:
            for sql, flat in chunks:
                conn.exec_driver_sql(sql, flat)

        await self._write(write)

    async def list_usage(
        self,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = 100,
        key_id: str | None = None,
        instrument: str | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[UsageRecord]:
        """Newest first; ``since_us`` inclusive, ``until_us`` exclusive; ``limit=None``: all;
        ``before``: only records after this ``(created_us, request_id)`` in that order."""
        u = usage_records
        stmt = _usage_filter(
            select(u).order_by(u.c.created_us.desc(), u.c.request_id.desc()),
            account_id=account_id,
            since_us=since_us,
            until_us=until_us,
            key_id=key_id,
            instrument=instrument,
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        if before is not None:
            created, request_id = before
            stmt = stmt.where(
                or_(
                    u.c.created_us < created,
                    and_(u.c.created_us == created, u.c.request_id < request_id),
                )
            )
        return await self._read(lambda conn: [_usage(r) for r in conn.execute(stmt)])

    async def usage_daily(
        self,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        key_id: str | None = None,
        instrument: str | None = None,
    ) -> list[DailyUsage]:
        """Usage summed per UTC day and instrument, oldest day first. Streams' provisional
        checkpoints (outcome ``in_progress``) count like the final record they become."""
        u = usage_records
        day = (u.c.created_us // _DAY_US).label("day")
        stmt = _usage_filter(
            select(
                day,
                u.c.instrument,
                func.count().label("requests"),
                func.coalesce(func.sum(case((u.c.billed, 1), else_=0)), 0).label("billed"),
                func.coalesce(func.sum(u.c.input_tokens), 0).label("input_tokens"),
                func.coalesce(func.sum(u.c.output_tokens), 0).label("output_tokens"),
                func.coalesce(func.sum(u.c.cost), 0).label("cost"),
            )
            .group_by(day, u.c.instrument)
            .order_by(day, u.c.instrument),
            account_id=account_id,
            since_us=since_us,
            until_us=until_us,
            key_id=key_id,
            instrument=instrument,
        )

        def tx(conn: Connection) -> list[DailyUsage]:
            return [
                DailyUsage(
                    day=int(r.day),
                    instrument=r.instrument,
                    requests=int(r.requests),
                    billed_requests=int(r.billed),
                    input_tokens=int(r.input_tokens),
                    output_tokens=int(r.output_tokens),
                    cost=int(r.cost),
                )
                for r in conn.execute(stmt)
            ]

        return await self._read(tx)

    async def offer_deliveries(self, since_us: int, limit_per_offer: int) -> list[DeliveryRow]:
        """One read: the offer ids (a loose index scan), then each offer's latest deliveries (a
        backward range read of ``ix_usage_records_offer_created``, stopping at the limit). The
        cost follows offers × limit, not how many records the window holds."""
        if limit_per_offer < 1:
            raise ValueError(f"limit_per_offer must be at least 1 (got {limit_per_offer})")

        def tx(conn: Connection) -> list[DeliveryRow]:
            found: list[DeliveryRow] = []
            for offer_id in conn.execute(_OFFER_IDS).scalars().all():
                params = {"p_offer": offer_id, "p_since": since_us, "p_limit": limit_per_offer}
                found += [_delivery(r) for r in conn.execute(_OFFER_DELIVERIES, params)]
            return found

        return await self._read(tx)


_DAY_US = 86_400_000_000


def _usage_filter(
    stmt: Select[Any],
    *,
    account_id: str | None,
    since_us: int | None,
    until_us: int | None,
    key_id: str | None,
    instrument: str | None,
) -> Select[Any]:
    u = usage_records
    for column, value in (
        (u.c.account_id, account_id),
        (u.c.key_id, key_id),
        (u.c.instrument, instrument),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since_us is not None:
        stmt = stmt.where(u.c.created_us >= since_us)
    if until_us is not None:
        stmt = stmt.where(u.c.created_us < until_us)
    return stmt
