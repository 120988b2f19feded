"""The ``ReceiptStore`` contract, run against SQLite and PostgreSQL (see conftest.py): a
receipt's status words in SQL equal ``core/accounts/receipt_view.py``'s for every kind of
record, pages are keyset-ordered both ways, sums per bucket add up, new columns round-trip, and
two stores creating the first signing key at once end with one."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from gridgate.core.accounts.receipt_signing import ReceiptSigner
from gridgate.core.accounts.receipt_view import COST_STATUSES, STATUSES, cost_status_of, status_of
from gridgate.core.clock import SystemClock
from gridgate.storage.ports.receipts import ReceiptFilter
from gridgate.storage.records import UsageRecord
from gridgate.storage.sql import SqlStore
from tests.storage.helpers import NOW, _usage

KINDS = [
    {"outcome": "in_progress", "cost": 7},  # a running stream's checkpoint
    {"outcome": "ok", "cost": 120, "in_spec": True},
    {"outcome": "ok", "cost": 0},  # answered free (no tokens)
    {"outcome": "ok", "cost": 0, "in_spec": False},  # out of spec: waived
    {"outcome": "ok", "cost": 90, "in_spec": False},  # out of spec, billed by its instrument
    {"outcome": "cut_at_hold", "cost": 55},
    {"outcome": "stream_error", "cost": 30},  # partly delivered, then failed
    {"outcome": "upstream_error", "cost": 0, "status": 502},
    {"outcome": "cancelled", "cost": 0, "status": 499},
    {"outcome": "rejected", "cost": 0, "status": 400},
]


def _records() -> list[UsageRecord]:
    return [
        _usage(f"r{i}", NOW + i, "acct_a", key_id=f"key_{i % 2}", **kind)  # type: ignore[arg-type]
        for i, kind in enumerate(KINDS)
    ]


async def test_the_status_words_in_sql_are_the_receipts(store: SqlStore) -> None:
    records = _records()
    await store.insert_usage(records)
    everything = ReceiptFilter(account_id="acct_a")
    for word in STATUSES:
        where = ReceiptFilter(account_id="acct_a", status=word)
        found = await store.receipt_page(
            where, order_by="created_us", descending=False, after=None, limit=100
        )
        assert [r.request_id for r in found] == [
            r.request_id for r in records if status_of(r) == word
        ]
    for word in COST_STATUSES:
        where = ReceiptFilter(account_id="acct_a", cost_status=word)
        found = await store.receipt_page(
            where, order_by="created_us", descending=False, after=None, limit=100
        )
        assert [r.request_id for r in found] == [
            r.request_id for r in records if cost_status_of(r) == word
        ], word
    # every word is used, and the sums per cost status add up to every record
    rows = await store.usage_summary(everything, None)
    assert {r.cost_status for r in rows} == set(COST_STATUSES)
    assert sum(r.cost for r in rows) == sum(r.cost for r in records)
    assert sum(r.requests for r in rows) == len(records)


async def test_pages_follow_the_order_both_ways_and_by_cost(store: SqlStore) -> None:
    records = _records()
    await store.insert_usage(records)
    where = ReceiptFilter(account_id="acct_a")
    for descending, order_by in itertools.product((True, False), ("created_us", "cost")):
        key = (
            (lambda r: (r.created_us, r.request_id))
            if order_by == "created_us"
            else (lambda r: (r.cost, r.request_id))
        )
        expected = sorted(records, key=key, reverse=descending)
        seen: list[UsageRecord] = []
        after = None
        while True:
            page = await store.receipt_page(
                where, order_by=order_by, descending=descending, after=after, limit=3
            )
            if not page:
                break
            seen += page
            last = page[-1]
            after = (last.created_us if order_by == "created_us" else last.cost, last.request_id)
        assert [r.request_id for r in seen] == [r.request_id for r in expected]


async def test_summary_buckets_and_new_columns(store: SqlStore) -> None:
    day = 86_400_000_000
    records = [
        _usage("a", NOW, "acct_a", cost=10, endpoint="/v1/messages", request_hash="ab" * 32),
        _usage("b", NOW + day, "acct_a", cost=20, instrument="text-max", key_id="key_y"),
        _usage("c", NOW + day, "acct_b", cost=40),
    ]
    await store.insert_usage(records)
    got = await store.get_usage("a")
    assert got == records[0]
    assert await store.get_usage("nope") is None
    where = ReceiptFilter(account_id="acct_a")
    by_day = await store.usage_summary(where, "day")
    assert sorted((r.bucket, r.cost) for r in by_day) == [
        (NOW // day, 10),
        (NOW // day + 1, 20),
    ]
    by_model = await store.usage_summary(where, "model")
    assert sorted((str(r.bucket), r.cost) for r in by_model) == [
        ("text-max", 20),
        ("text-prime", 10),
    ]
    by_key = await store.usage_summary(
        ReceiptFilter(account_id="acct_a", key_id="key_y"), "api_key"
    )
    assert [(r.bucket, r.cost) for r in by_key] == [("key_y", 20)]


@pytest.mark.parametrize("stores", [2])
async def test_two_processes_making_the_first_signing_key_share_one(
    db_url: str, stores: int
) -> None:
    opened = [SqlStore(db_url) for _ in range(stores)]
    for store in opened:
        await store.open()
    try:
        signers = [ReceiptSigner(s, SystemClock()) for s in opened]
        published = await asyncio.gather(*(s.public_keys() for s in signers))
        assert published[0] == published[1]
        assert len(published[0]["keys"]) == 1
        [keys] = {tuple(sorted(k.kid for k in await s.receipt_keys())) for s in opened}
        assert len(keys) == 1
    finally:
        for store in opened:
            await store.close()
