"""Usage records a page at a time, newest first, filtered by time, key and instrument.

A page's ``next`` is an opaque cursor naming the last record returned (its time and request id,
the store's order); the next page starts just after it. The store filters and pages in one
indexed read (it is asked for one record more than the page, to know whether another follows).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from gridgate.errors import ValidationFailed
from gridgate.storage.ports.usage import UsageStore
from gridgate.storage.records import UsageRecord

MAX_PAGE = 100


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


def check_window(since_us: int | None, until_us: int | None) -> None:
    if since_us is not None and until_us is not None and until_us < since_us:
        raise ValidationFailed("until: must not be before since", param="until")


async def usage_page(store: UsageStore, query: UsageQuery) -> UsagePage:
    limit = check_limit(query.limit)
    check_window(query.since_us, query.until_us)
    before = None if query.cursor is None else decode_cursor(query.cursor)
    found = await store.list_usage(
        account_id=query.account_id,
        since_us=query.since_us,
        until_us=query.until_us,
        limit=limit + 1,
        key_id=query.key_id,
        instrument=None if query.instrument is None else query.instrument.lower(),
        before=before,
    )
    if len(found) > limit:
        return UsagePage(found[:limit], encode_cursor(found[limit - 1]))
    return UsagePage(found, None)
