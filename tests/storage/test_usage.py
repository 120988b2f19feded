"""The ``UsageStore`` contract, run against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import pytest

from gridgate.storage.records import DeliveryRow, UsageRecord
from gridgate.storage.sql import SqlStore
from tests.storage.helpers import NOW, _usage

# -- usage ------------------------------------------------------------------------------------


async def test_usage_batch_insert_replaces_by_request_id_and_lists_newest_first(
    store: SqlStore,
) -> None:
    full = UsageRecord(
        request_id="r-full",
        created_us=NOW + 5,
        account_id="acct_a",
        key_id="key_a",
        instrument="text-prime",
        supplier="sim-a",
        offer_id="sim-a/text-prime",
        upstream_model="sim-large",
        stream=True,
        input_tokens=1_234,
        output_tokens=567,
        reasoning_tokens=89,
        cached_tokens=10,
        usage_estimated=True,
        price_input_per_m=30_200_000,
        price_output_per_m=2**40,
        cost=987_654_321,
        hold_id="h-full",
        ttft_us=12_345,
        generation_us=2**40,
        duration_us=678_901,
        outcome="cancelled",
        status=499,
        billed=False,
        in_spec=False,
        spec_note='first token after 4620.1 ms > ceiling 4620 ms; "quoted" — ünïcode',
        error="client went away",
    )
    await store.insert_usage([])
    await store.insert_usage(
        [_usage("r1", NOW + 1, "acct_a"), full, _usage("r2", NOW + 2, "acct_b")]
    )
    changed = _usage("r1", NOW + 100, "acct_a", cost=1)
    await store.insert_usage([changed, _usage("r3", NOW + 3, "acct_a"), _usage("r3", NOW + 3)])

    everything = await store.list_usage()
    assert [u.request_id for u in everything] == ["r1", "r-full", "r3", "r2"]
    assert everything[0] == changed  # the later record of r1 replaced the earlier one
    assert everything[1] == full
    assert everything[2] == _usage("r3", NOW + 3)  # within a batch, the last one wins
    await store.insert_usage([changed, full])  # the same records again: nothing changes
    assert await store.list_usage() == everything
    # r3's last record belongs to acct_x
    assert [u.request_id for u in await store.list_usage(account_id="acct_a")] == ["r1", "r-full"]
    assert [u.request_id for u in await store.list_usage(limit=2)] == ["r1", "r-full"]


async def test_list_usage_time_window_and_no_limit(store: SqlStore) -> None:
    await store.insert_usage(
        [_usage(f"r{i}", NOW + i * 10, "acct_a" if i % 2 == 0 else "acct_b") for i in range(6)]
    )

    def ids(records: list[UsageRecord]) -> list[str]:
        return [u.request_id for u in records]

    # since inclusive, until exclusive, newest first
    assert ids(await store.list_usage(since_us=NOW + 10, until_us=NOW + 40)) == ["r3", "r2", "r1"]
    assert ids(await store.list_usage(account_id="acct_a", since_us=NOW + 20)) == ["r4", "r2"]
    assert ids(await store.list_usage(account_id="acct_b", until_us=NOW + 30)) == ["r1"]
    assert ids(await store.list_usage(since_us=NOW + 60)) == []
    assert ids(await store.list_usage(since_us=NOW, limit=2)) == ["r5", "r4"]
    assert len(await store.list_usage(limit=None)) == 6


async def test_usage_spec_verdict_round_trips_and_the_last_record_wins(store: SqlStore) -> None:
    """A stream's checkpoint (not judged yet) gives way to its final record, which carries the
    measurements and the verdict; each of in / out of spec / not judged reads back as written."""
    checkpoint = _usage(
        "r-stream", NOW, stream=True, offer_id="sim-a/text-prime", outcome="in_progress"
    )
    await store.insert_usage([checkpoint])
    assert await store.list_usage() == [checkpoint]
    final = _usage(
        "r-stream",
        NOW,
        stream=True,
        offer_id="sim-a/text-prime",
        output_tokens=500,
        ttft_us=4_620_100,
        generation_us=9_000_000,
        billed=False,
        in_spec=False,
        spec_note="first token after 4620.1 ms > ceiling 4620 ms",
    )
    judged_ok = _usage("r-fast", NOW + 1, ttft_us=100, generation_us=1, in_spec=True)
    failed = _usage("r-failed", NOW + 2, outcome="upstream_error", status=502)
    await store.insert_usage([final, judged_ok, failed])
    assert await store.list_usage() == [failed, judged_ok, final]
    assert [(u.in_spec, u.spec_note) for u in await store.list_usage()] == [
        (None, None),
        (True, None),
        (False, "first token after 4620.1 ms > ceiling 4620 ms"),
    ]


# -- offer deliveries -------------------------------------------------------------------------


def _delivery(request_id: str, created_us: int, offer_id: str | None, **kw: object) -> UsageRecord:
    return _usage(request_id, created_us, offer_id=offer_id, supplier="sim", **kw)


async def test_offer_deliveries_are_each_offers_latest_in_the_window(store: SqlStore) -> None:
    assert await store.offer_deliveries(0, 10) == []
    a, b, c = "sim-a/text-prime", "sim-b/text-prime", "sim-c/text-lite"
    await store.insert_usage(
        [
            _delivery("a-old", NOW - 1, a),  # before the window
            *(_delivery(f"a{i}", NOW + i, a) for i in range(5)),
            _delivery("a-tie", NOW + 4, a),  # same time as a4: request id breaks the tie
            _delivery("a-checkpoint", NOW + 9, a, outcome="in_progress"),
            _delivery("a-rejected", NOW + 9, a, outcome="rejected", status=400),
            _delivery("no-offer", NOW + 9, None, outcome="upstream_error", status=502),
            _delivery(
                "b1",
                NOW + 3,
                b,
                instrument="text-prime",
                stream=True,
                output_tokens=321,
                ttft_us=1_500,
                generation_us=6_400_000,
                outcome="stream_error",
                status=502,
                in_spec=False,
                spec_note="throughput 50 tok/s < floor 60 tok/s over 321 tokens",
            ),
            _delivery("b0", NOW + 2, b, outcome="cancelled", status=499, in_spec=True),
            _delivery("c-old", NOW - 5, c),  # an offer with nothing in the window
        ]
    )
    found = await store.offer_deliveries(NOW, 3)
    assert [(d.offer_id, d.request_id) for d in found] == [
        (a, "a4"),
        (a, "a-tie"),
        (a, "a3"),
        (b, "b1"),
        (b, "b0"),
    ]
    assert found[3] == DeliveryRow(
        request_id="b1",
        offer_id=b,
        instrument="text-prime",
        outcome="stream_error",
        status=502,
        stream=True,
        created_us=NOW + 3,
        output_tokens=321,
        ttft_us=1_500,
        generation_us=6_400_000,
        in_spec=False,
    )
    assert (found[4].in_spec, found[0].in_spec, found[0].stream) == (True, None, False)
    # since is inclusive; a large limit returns everything in the window
    everything = await store.offer_deliveries(NOW - 5, 1_000)
    assert [d.request_id for d in everything] == [
        "a4",
        "a-tie",
        "a3",
        "a2",
        "a1",
        "a0",
        "a-old",
        "b1",
        "b0",
        "c-old",
    ]
    assert await store.offer_deliveries(NOW + 10, 5) == []
    # the final record of a checkpointed stream is a delivery
    await store.insert_usage([_delivery("a-checkpoint", NOW + 9, a, outcome="ok")])
    assert [d.request_id for d in await store.offer_deliveries(NOW + 9, 5)] == ["a-checkpoint"]
    with pytest.raises(ValueError, match="limit_per_offer"):
        await store.offer_deliveries(NOW, 0)


async def test_usage_pages_walk_records_that_share_a_microsecond(store: SqlStore) -> None:
    """Pages of one record over five that share their time, then two older ones: each record
    once, newest first, whatever the page's reads look like (core/accounts/usage_pages.py)."""
    from gridgate.core.accounts.usage_pages import UsageQuery, usage_page

    same = [_usage(f"r{i}", NOW + 9) for i in range(5)]
    older = [_usage("o1", NOW + 2), _usage("o0", NOW + 1)]
    await store.insert_usage([*same, *older])
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await usage_page(store, UsageQuery("acct_x", limit=1, cursor=cursor))
        seen += [r.request_id for r in page.records]
        cursor = page.next
        if cursor is None:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0", "o1", "o0"]


@pytest.mark.parametrize("count", [1, 63, 64, 65, 127, 200])
async def test_a_batch_of_any_size_is_written_whole_and_replaces_by_request_id(
    store: SqlStore, count: int
) -> None:
    """SQLite writes a batch as statements of 64, 32 … 1 rows: every row lands, whatever the
    batch's size, and a later batch still replaces by request id."""
    first = [_usage(f"r{i:03d}", NOW + i, "acct_a") for i in range(count)]
    await store.insert_usage(first)
    again = [_usage(f"r{i:03d}", NOW + i, "acct_a", cost=7) for i in range(0, count, 2)]
    await store.insert_usage(again)
    written = {u.request_id: u for u in await store.list_usage(limit=None)}
    assert len(written) == count
    for i in range(count):
        assert written[f"r{i:03d}"] == (again[i // 2] if i % 2 == 0 else first[i])
