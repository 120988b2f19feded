"""Usage records a page at a time, newest first, filtered by time, key and instrument.

A page's ``next`` is an opaque cursor naming the last record returned (its time and request id,
the store's order); the next page starts just after it. The store filters by account and time;
the key and instrument filters are applied here, scanning at most ``MAX_SCAN`` records for one
page — a page may then be short, with a ``next`` cursor to go on from.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from gridgate.errors import ValidationFailed
from gridgate.storage.ports import Store
from gridgate.storage.records import UsageRecord

MAX_PAGE = 100
MAX_SCAN = 5_000
_BATCH = 500


@dataclass(frozen=True, slots=True)
class UsagePage:
    records: list[UsageRecord]
    next: str | None


@dataclass(frozen=True, slots=True)
class UsageQuery:
    account_id: str | None  # None: every account
    since_us: int | None = None  # inclusive
    until_us: int | None = None  # exclusive
    limit: int = MAX_PAGE
    key_id: str | None = None
    instrument: str | None = None
    cursor: str | None = None


def encode_cursor(record: UsageRecord) -> str:
    raw = f"{record.created_us}:{record.request_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, request_id = raw.partition(":")
        if not request_id:
            raise ValueError("no request id")
        return int(created), request_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("cursor: not a cursor this API returned", param="cursor") from exc


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit: must be 1 to {MAX_PAGE}", param="limit")
    return limit


def _wanted(record: UsageRecord, query: UsageQuery) -> bool:
    if query.key_id is not None and record.key_id != query.key_id:
        return False
    return query.instrument is None or record.instrument == query.instrument.lower()


async def usage_page(store: Store, query: UsageQuery) -> UsagePage:
    limit = check_limit(query.limit)
    if (
        query.since_us is not None
        and query.until_us is not None
        and query.until_us < query.since_us
    ):
        raise ValidationFailed("until: must not be before since", param="until")
    until = query.until_us
    after: tuple[int, str] | None = None  # skip records at or before this position
    if query.cursor is not None:
        after = decode_cursor(query.cursor)
        until = after[0] + 1 if until is None else min(until, after[0] + 1)
    # with no filter applied here, a batch of one more than the page says whether one follows
    filtered = query.key_id is not None or query.instrument is not None
    size = _BATCH if filtered else limit + 1
    found: list[UsageRecord] = []
    last: UsageRecord | None = None
    scanned = 0
    while scanned < MAX_SCAN:
        batch = await store.list_usage(
            account_id=query.account_id, since_us=query.since_us, until_us=until, limit=size
        )
        scanned += len(batch)
        moved = False
        for record in batch:
            if after is not None and (record.created_us, record.request_id) >= after:
                continue  # at or before the cursor (the batch may repeat its first microsecond)
            last, moved = record, True
            if _wanted(record, query):
                if len(found) == limit:
                    return UsagePage(found, encode_cursor(found[-1]))
                found.append(record)
        if len(batch) < size:
            return UsagePage(found, None)
        if not moved:  # the whole batch shares the cursor's microsecond: read further
            size = min(size * 2, MAX_SCAN)
            continue
        assert last is not None
        after = (last.created_us, last.request_id)
        until = last.created_us + 1
    return UsagePage(found, None if last is None else encode_cursor(last))
