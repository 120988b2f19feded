"""Usage receipts as a consumer's API key reads them: one request's receipt, pages of them
filtered and ordered, and sums over a window (``GET /v1/usage/{id}``, ``GET /v1/usage``,
``GET /v1/usage/summary``).

Who sees what: a key reads the receipts of its account; a key made ``own_usage_only`` reads
its own requests' only. Anything else — another account's request, an unknown id — is the
same 404.

A receipt asked for right after its answer is found, whichever process asks:

- this process gave the request id (``ours``): its record is either still in this process's
  usage writer (``UsageWriter.latest``: a record leaves it only once its batch is committed)
  or in the database, so the answer is immediate and definitive;
- another process gave it: its record may still be in that process's batch (written every
  ``flush_seconds``, ~50 ms), so a miss is read again after one batch interval, twice at most,
  by the clock (~100 ms for an id that does not exist; nothing for one that does).

A list or a summary first flushes this process's usage writer (``UsageWriter.flush``: the
batch being gathered is written at once), so it holds every request this process answered;
another process's latest requests appear within its batch interval.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gridgate.core.accounts.receipt_view import CURRENCY, iso_time, receipt_json
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.clock import Clock
from gridgate.core.times import DAY_US, iso_day
from gridgate.echo import capped
from gridgate.errors import BadRequest, NotFound
from gridgate.money import format_usd_fixed
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.ports.receipts import (
    ReceiptFilter,
    ReceiptOrder,
    ReceiptStore,
    SummaryGroup,
    SummaryRow,
)
from gridgate.storage.records import KeyRecord, UsageRecord

MAX_PAGE = 100
DEFAULT_PAGE = 20
MAX_SUMMARY_DAYS = 31
DEFAULT_SUMMARY_DAYS = 30
MAX_BUCKETS = 100
LOOKUP_RETRIES = 2  # batch intervals a miss on another process's id is read again after
FLUSH_SECONDS = 1.0  # at most this long for this process's pending records before a list
_GRIDGATE_ID = re.compile(r"req_[0-9a-f]{12}[0-9a-f]{10,}")


class ReceiptBook(ReceiptStore, KeyStore, Protocol):
    """The usage records, and the keys a list may be narrowed to."""


def visible(caller: KeyRecord, record: UsageRecord) -> bool:
    if record.account_id != caller.account_id:
        return False
    return not caller.own_usage_only or record.key_id == caller.id


@dataclass(frozen=True, slots=True)
class ReceiptQuery:
    since_us: int | None = None  # inclusive
    until_us: int | None = None  # exclusive
    status: str | None = None
    cost_status: str | None = None
    model: str | None = None
    api_key_id: str | None = None
    order_by: ReceiptOrder = "created_us"
    descending: bool = True
    limit: int = DEFAULT_PAGE
    next: str | None = None
    prev: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptPage:
    records: list[UsageRecord]
    next_cursor: str | None
    prev_cursor: str | None

    def json(self) -> dict[str, Any]:
        return {
            "data": [receipt_json(r, with_breakdown=False) for r in self.records],
            "paging": {
                "next_cursor": self.next_cursor,
                "prev_cursor": self.prev_cursor,
                "has_more": self.next_cursor is not None,
            },
        }


def _sort_value(record: UsageRecord, order_by: ReceiptOrder) -> int:
    return record.created_us if order_by == "created_us" else record.cost


def encode_cursor(query: ReceiptQuery, record: UsageRecord) -> str:
    """Opaque: the order it belongs to, and the record's place in it."""
    order = f"{query.order_by}:{'d' if query.descending else 'a'}"
    raw = f"{order}:{_sort_value(record, query.order_by)}:{record.request_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: ReceiptQuery, cursor: str, param: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        order_by, direction, value, request_id = raw.split(":", 3)
        if not request_id:
            raise ValueError("no request id")
        place = int(value), request_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest(f"{param}: not a cursor this API returned", param=param) from exc
    if (order_by, direction) != (query.order_by, "d" if query.descending else "a"):
        raise BadRequest(
            f"{param}: the cursor belongs to another order_by or order_direction", param=param
        )
    return place


class Receipts:
    def __init__(
        self,
        store: ReceiptBook,
        writer: UsageWriter,
        clock: Clock,
        *,
        ours: Callable[[str], bool],
    ) -> None:
        """``ours(request_id)``: whether this process gave that id."""
        self._store = store
        self._writer = writer
        self._clock = clock
        self._ours = ours

    async def find(self, caller: KeyRecord, request_id: str) -> UsageRecord:
        record = await self._lookup(request_id)
        if record is None or not visible(caller, record):
            raise NotFound(f"no usage record for request {capped(request_id)!r}")
        return record

    async def _lookup(self, request_id: str) -> UsageRecord | None:
        record = self._writer.latest(request_id)
        if record is not None:
            return record
        record = await self._store.get_usage(request_id)
        if record is not None or self._ours(request_id) or not _GRIDGATE_ID.fullmatch(request_id):
            return record
        for _ in range(LOOKUP_RETRIES):  # another process's batch may not be written yet
            await asyncio.sleep(self._writer.flush_seconds)
            record = await self._store.get_usage(request_id)
            if record is not None:
                break
        return record

    async def page(self, caller: KeyRecord, query: ReceiptQuery) -> ReceiptPage:
        if query.next is not None and query.prev is not None:
            raise BadRequest("next: give either next or prev, not both", param="next")
        where = ReceiptFilter(
            account_id=caller.account_id,
            key_id=await self._key_filter(caller, query.api_key_id),
            since_us=query.since_us,
            until_us=query.until_us,
            instrument=None if query.model is None else query.model.lower(),
            status=query.status,
            cost_status=query.cost_status,
        )
        await self._writer.flush(FLUSH_SECONDS)  # this process's answers are in the list
        backwards = query.prev is not None
        cursor = query.prev if backwards else query.next
        after = (
            None
            if cursor is None
            else decode_cursor(query, cursor, "prev" if backwards else "next")
        )
        found = await self._store.receipt_page(
            where,
            order_by=query.order_by,
            descending=query.descending != backwards,
            after=after,
            limit=query.limit + 1,
        )
        more = len(found) > query.limit
        records = found[: query.limit]
        if backwards:
            records.reverse()
            before, beyond = more, True  # the page we came back from follows
        else:
            before, beyond = cursor is not None, more
        return ReceiptPage(
            records,
            encode_cursor(query, records[-1]) if beyond and records else None,
            encode_cursor(query, records[0]) if before and records else None,
        )

    async def _key_filter(self, caller: KeyRecord, api_key_id: str | None) -> str | None:
        """An own-usage key reads its own requests whatever it asks; a filter naming a key of
        another account (or another key, for an own-usage key) is answered like an unknown one."""
        if api_key_id is None:
            return caller.id if caller.own_usage_only else None
        if api_key_id == caller.id:
            return api_key_id
        key = None if caller.own_usage_only else await self._store.get_key(api_key_id)
        if key is None or key.account_id != caller.account_id:
            raise NotFound(f"no key {capped(api_key_id)!r}", param="api_key_id")
        return api_key_id

    async def summary(
        self,
        caller: KeyRecord,
        *,
        since_us: int | None,
        until_us: int | None,
        group_by: SummaryGroup | None,
        api_key_id: str | None,
    ) -> dict[str, Any]:
        """Totals (and buckets) over ``[since, until)``: by default the 30 days before now; at
        most 31 days and 100 buckets. ``cost.amount`` sums every record's charge, exactly what
        the ledger's statement calls ``usage_cost`` for the window."""
        until = until_us if until_us is not None else self._clock.now_us()
        since = since_us if since_us is not None else until - DEFAULT_SUMMARY_DAYS * DAY_US
        if until < since:
            raise BadRequest("to: must not be before from", param="to")
        if until - since > MAX_SUMMARY_DAYS * DAY_US:
            raise BadRequest(f"from: at most {MAX_SUMMARY_DAYS} days before to", param="from")
        where = ReceiptFilter(
            account_id=caller.account_id,
            key_id=await self._key_filter(caller, api_key_id),
            since_us=since,
            until_us=until,
        )
        await self._writer.flush(FLUSH_SECONDS)
        rows = await self._store.usage_summary(where, group_by)
        answer: dict[str, Any] = {
            "totals": _aggregate(rows),
            "group_by": group_by,
            "from": iso_time(since),
            "to": iso_time(until),
        }
        if group_by is not None:
            answer["buckets"] = _buckets(rows, group_by)
        return answer


def _aggregate(rows: list[SummaryRow]) -> dict[str, Any]:
    counts = dict.fromkeys(("pending", "reconciled", "cancelled", "waived"), 0)
    amounts = dict.fromkeys(counts, 0)
    for row in rows:
        counts[row.cost_status] += row.requests
        amounts[row.cost_status] += row.cost
    input_tokens = sum(r.input_tokens for r in rows)
    output_tokens = sum(r.output_tokens for r in rows)
    return {
        "request_count": sum(counts.values()),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost": {
            "amount": format_usd_fixed(sum(amounts.values())),
            "reconciled_amount": format_usd_fixed(amounts["reconciled"]),
            "pending_amount": format_usd_fixed(amounts["pending"]),
            "currency": CURRENCY,
            "reconciled_requests": counts["reconciled"],
            "pending_requests": counts["pending"],
            "cancelled_requests": counts["cancelled"],
            "waived_requests": counts["waived"],
            "unpriced_requests": 0,  # every offer has a price: nothing is unpriced
            "unpriced_tokens": 0,
        },
    }


def _buckets(rows: list[SummaryRow], group_by: SummaryGroup) -> list[dict[str, Any]]:
    grouped: dict[str | int | None, list[SummaryRow]] = {}
    for row in rows:
        grouped.setdefault(row.bucket, []).append(row)
    if len(grouped) > MAX_BUCKETS:
        raise BadRequest(
            f"group_by: {len(grouped)} buckets, at most {MAX_BUCKETS}; narrow the window or "
            "filter by api_key_id",
            param="group_by",
        )
    made = []
    for bucket, members in grouped.items():
        key = iso_day(bucket) if isinstance(bucket, int) else bucket
        made.append((sum(r.cost for r in members), str(key), {"key": key, **_aggregate(members)}))
    if group_by == "day":
        made.sort(key=lambda m: m[1])
    else:  # the most spent first
        made.sort(key=lambda m: (-m[0], m[1]))
    return [m[2] for m in made]
