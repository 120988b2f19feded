"""Spend caps in the store (``CapStore`` and the capped holds of ``LedgerStore``), on SQLite and
PostgreSQL: a capped hold counts against every cap of its account and key in the same
transaction as the balance, is refused whole when one cannot take it, gives back what it did
not charge when it closes or expires, and never lets concurrent holds past a cap."""

from __future__ import annotations

import asyncio

import pytest

from gridgate.core.billing import cap_windows
from gridgate.storage.ports.ledger import HoldResult
from gridgate.storage.records import CapPeriod, KeyRecord, UsageRecord
from gridgate.storage.sql import SqlStore
from tests.storage.helpers import NOW, _balance, _funded, _key, _ledger_sum

DAY = 86_400_000_000


def windows(now_us: int = NOW) -> dict[CapPeriod, int]:
    return cap_windows.windows(now_us)


async def capped_hold(
    store: SqlStore, hold_id: str, account_id: str, key_id: str, amount: int, now_us: int = NOW
) -> HoldResult:
    return await store.place_hold(
        hold_id=hold_id,
        account_id=account_id,
        key_id=key_id,
        amount=amount,
        expires_us=now_us + 60_000_000,
        now_us=now_us,
        windows=windows(now_us),
    )


async def set_cap(
    store: SqlStore, account_id: str, scope: str, subject: str, period: CapPeriod, limit: int
) -> str:
    cap = await store.set_cap(
        account_id=account_id,
        scope="key" if scope == "key" else "account",
        subject=subject,
        period=period,
        limit=limit,
        window_start_us=cap_windows.window_start(period, NOW),
        now_us=NOW,
    )
    return cap.id


async def test_a_capped_hold_counts_against_every_cap_and_is_refused_whole(
    store: SqlStore,
) -> None:
    a = await _funded(store, 10_000)
    k = await _key(store, a.id)
    key_cap = await set_cap(store, a.id, "key", k.id, "daily", 500)
    account_cap = await set_cap(store, a.id, "account", a.id, "monthly", 800)
    first = await capped_hold(store, "lease_1", a.id, k.id, 400)
    assert first.hold is not None
    assert {(u.cap.id, u.spent) for u in first.caps} == {(key_cap, 400), (account_cap, 400)}
    # the key's cap has 100 left: refused, and nothing of it was written (balance, account cap)
    second = await capped_hold(store, "lease_2", a.id, k.id, 200)
    assert (second.hold, second.refused) == (None, "cap_reached")
    (use,) = second.caps
    assert (use.cap.id, use.spent, use.remaining) == (key_cap, 400, 100)
    assert await _balance(store, a.id) == 9_600 == await _ledger_sum(store, a.id)
    spent = {u.cap.id: u.spent for u in await store.caps_of(a.id, windows())}
    assert spent == {key_cap: 400, account_cap: 400}
    assert await store.get_hold("lease_2") is None


async def test_closing_a_capped_hold_gives_back_what_it_did_not_charge(store: SqlStore) -> None:
    a = await _funded(store, 10_000)
    k = await _key(store, a.id)
    cap = await set_cap(store, a.id, "key", k.id, "daily", 1_000)
    assert (await capped_hold(store, "lease_1", a.id, k.id, 600)).hold is not None
    settled = await store.settle_hold("lease_1", 250, now_us=NOW, capped=True)
    assert settled.charged == 250
    assert [(u.cap.id, u.spent) for u in await store.caps_of(a.id, windows())] == [(cap, 250)]
    # settling again changes nothing, in the ledger or the cap
    again = await store.settle_hold("lease_1", 250, now_us=NOW, capped=True)
    assert again.already_settled
    assert [u.spent for u in await store.caps_of(a.id, windows())] == [250]
    assert (await capped_hold(store, "lease_2", a.id, k.id, 750)).hold is not None
    assert await store.release_hold("lease_2", now_us=NOW, capped=True)
    assert [u.spent for u in await store.caps_of(a.id, windows())] == [250]
    assert await _balance(store, a.id) == 9_750 == await _ledger_sum(store, a.id)


async def test_an_expired_capped_hold_keeps_only_its_recorded_cost(store: SqlStore) -> None:
    a = await _funded(store, 10_000)
    k = await _key(store, a.id)
    await set_cap(store, a.id, "account", a.id, "lifetime", 1_000)
    assert (await capped_hold(store, "lease_1", a.id, k.id, 600)).hold is not None
    await store.insert_usage([_record("r1", a.id, k.id, "lease_1", 90)])
    expired = await store.expire_holds(NOW + 61_000_000)
    assert [(e.hold_id, e.charged) for e in expired] == [("lease_1", 90)]
    assert [u.spent for u in await store.caps_of(a.id, windows())] == [90]
    assert (await store.verify_ledger()).ok


async def test_each_window_starts_empty_and_a_new_cap_counts_what_was_spent(
    store: SqlStore,
) -> None:
    a = await _funded(store, 10_000)
    k = await _key(store, a.id)
    # spent before the cap existed, today: the new daily cap starts there
    await store.insert_usage([_record("r0", a.id, k.id, None, 300)])
    cap = await set_cap(store, a.id, "key", k.id, "daily", 500)
    assert [u.spent for u in await store.caps_of(a.id, windows())] == [300]
    refused = await capped_hold(store, "lease_1", a.id, k.id, 300)
    assert refused.refused == "cap_reached"
    # tomorrow is a new window
    tomorrow = NOW + DAY
    granted = await capped_hold(store, "lease_2", a.id, k.id, 500, now_us=tomorrow)
    assert granted.hold is not None
    assert [(u.cap.id, u.spent) for u in await store.caps_of(a.id, windows(tomorrow))] == [
        (cap, 500)
    ]
    assert [u.spent for u in await store.caps_of(a.id, windows())] == [300]


async def test_a_key_knows_whether_a_cap_applies_and_removing_it_frees_the_key(
    store: SqlStore,
) -> None:
    a = await _funded(store, 10_000)
    k = await _key(store, a.id)
    other = await _key(store, a.id)
    assert not (await _found(store, k)).capped
    cap = await set_cap(store, a.id, "key", k.id, "weekly", 100)
    assert (await _found(store, k)).capped
    assert not (await _found(store, other)).capped
    account_cap = await set_cap(store, a.id, "account", a.id, "daily", 100)
    assert (await _found(store, other)).capped
    # changing a limit keeps the cap (and its id)
    assert await set_cap(store, a.id, "key", k.id, "weekly", 200) == cap
    await store.remove_cap(cap)
    await store.remove_cap(account_cap)
    assert not (await _found(store, k)).capped
    assert await store.caps_of(a.id, windows()) == []


async def test_concurrent_capped_holds_never_pass_the_cap(store: SqlStore) -> None:
    k_holds, hold = 10, 7_777
    a = await _funded(store, 1_000 * hold)
    k = await _key(store, a.id)
    await set_cap(store, a.id, "key", k.id, "monthly", k_holds * hold)
    results = await asyncio.gather(
        *(capped_hold(store, f"lease_{i}", a.id, k.id, hold) for i in range(20 * k_holds))
    )
    granted = [r for r in results if r.hold is not None]
    assert len(granted) == k_holds
    assert {r.refused for r in results if r.hold is None} == {"cap_reached"}
    assert [u.spent for u in await store.caps_of(a.id, windows())] == [k_holds * hold]
    assert await _balance(store, a.id) == (1_000 - k_holds) * hold


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly", "lifetime"])
def test_windows_are_utc_calendar_periods(period: CapPeriod) -> None:
    # 2026-12-09 (a Wednesday) 13:45 UTC
    now = 1_796_823_900_000_000
    start = cap_windows.window_start(period, now)
    resets = cap_windows.resets_at(period, start)
    expected = {
        "daily": ("2026-12-09T00:00:00Z", "2026-12-10T00:00:00Z"),
        "weekly": ("2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"),
        "monthly": ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        "lifetime": ("1970-01-01T00:00:00Z", None),
    }[period]
    assert (cap_windows.iso(start), None if resets is None else cap_windows.iso(resets)) == expected


async def _found(store: SqlStore, key: KeyRecord) -> KeyRecord:
    found = await store.get_key_by_hash(key.secret_hash)
    assert found is not None
    return found


def _record(
    request_id: str, account_id: str, key_id: str, hold_id: str | None, cost: int
) -> UsageRecord:
    return UsageRecord(
        request_id=request_id,
        created_us=NOW,
        account_id=account_id,
        key_id=key_id,
        instrument="text-prime",
        supplier="s",
        offer_id="o",
        upstream_model="m",
        stream=False,
        input_tokens=1,
        output_tokens=1,
        reasoning_tokens=0,
        cached_tokens=0,
        usage_estimated=False,
        price_input_per_m=0,
        price_output_per_m=0,
        cost=cost,
        hold_id=hold_id,
        ttft_us=None,
        duration_us=1,
        outcome="ok",
        status=200,
        billed=cost > 0,
        error=None,
    )
