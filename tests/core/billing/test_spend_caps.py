"""Spend caps through billing, over a real SQLite store and a clock that moves only when told:
a capped request holds its worst case against its caps, is clamped to what a cap has left or
refused with a 402 naming the cap and its reset, and a new window starts empty at its UTC
boundary. Also the rules of setting caps (who may, what is valid)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gridgate.core.access import CLI, Actor
from gridgate.core.accounts.accounts import Accounts
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.billing.billing import Billing, Quote
from gridgate.core.billing.spend_caps import SpendCaps, parse_limit, parse_period
from gridgate.core.clock import SystemClock
from gridgate.core.outage import Outage
from gridgate.core.webhooks.outbox import WebhookOutbox
from gridgate.errors import NotFound, PermissionDenied, SpendCapReached, ValidationFailed
from gridgate.money import Price
from gridgate.settings import BillingSettings
from gridgate.storage.sql import SqlStore

PRICE = Price(0, 1_000_000_000)  # $1 per 1M output tokens: a token costs 1,000 nano-dollars


class ManualClock:
    def __init__(self, moment: datetime) -> None:
        self.seconds = moment.timestamp()

    def now_us(self) -> int:
        return int(self.seconds * 1_000_000)

    def monotonic(self) -> float:
        return self.seconds


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with SqlStore(f"sqlite:///{tmp_path / 'g.db'}") as opened:
        yield opened


async def funded(store: SqlStore) -> tuple[str, str]:
    account = await Accounts(store, SystemClock()).create(CLI, "a")
    await store.credit(account.id, 1_000_000_000)
    key = await ApiKeys(store, SystemClock()).create(CLI, account.id, "k")
    return account.id, key.record.id


def quote(max_output: int) -> Quote:
    return Quote(PRICE, 0, max_output, 1)


async def test_a_daily_cap_refuses_until_midnight_utc_then_serves_again(store: SqlStore) -> None:
    clock = ManualClock(datetime(2026, 12, 9, 23, 59, 30, tzinfo=UTC))
    account_id, key_id = await funded(store)
    caps = SpendCaps(store, clock)
    use = await caps.set(CLI, scope="key", subject=key_id, period="daily", limit=1_000_000)
    billing = Billing(store, clock, BillingSettings(min_output_tokens=256))
    # $0.001 a day: one request of 1,000 output tokens spends it all
    reservation, _ = await billing.reserve(
        account_id=account_id, key_id=key_id, quote=quote(1_000), requested=1_000, capped=True
    )
    assert [c.remaining for c in reservation.caps] == [0]
    billing.settle(reservation, 1_000_000)
    with pytest.raises(SpendCapReached) as refused:
        await billing.reserve(
            account_id=account_id, key_id=key_id, quote=quote(1_000), requested=None, capped=True
        )
    message = refused.value.message
    assert use.cap.id in message and "daily" in message
    assert "resets at 2026-12-10T00:00:00Z" in message
    assert refused.value.headers["x-gridgate-spend-cap-remaining"] == "0"
    assert refused.value.headers["x-gridgate-spend-cap-reset"] == "2026-12-10T00:00:00Z"
    assert refused.value.code == "spend_cap_reached" and refused.value.status == 402
    clock.seconds += 30  # midnight UTC: a new window
    reservation, granted = await billing.reserve(
        account_id=account_id, key_id=key_id, quote=quote(1_000), requested=None, capped=True
    )
    assert granted.max_output_tokens == 1_000
    billing.settle(reservation, 400_000)
    await billing.leases.close()
    (today,) = await caps.of_account(CLI, account_id)
    assert (today.spent, today.remaining) == (400_000, 600_000)
    assert (await store.verify_ledger()).mismatches == ()


async def test_a_request_is_clamped_to_what_the_cap_has_left(store: SqlStore) -> None:
    clock = ManualClock(datetime(2026, 12, 9, 12, tzinfo=UTC))
    account_id, key_id = await funded(store)
    await SpendCaps(store, clock).set(
        CLI, scope="account", subject=account_id, period="monthly", limit=500_000
    )
    billing = Billing(store, clock, BillingSettings(min_output_tokens=256))
    reservation, granted = await billing.reserve(
        account_id=account_id, key_id=key_id, quote=quote(4_096), requested=None, capped=True
    )
    assert granted.max_output_tokens == 500  # what $0.0005 buys at $1 per 1M
    assert reservation.amount == 500_000
    billing.release(reservation)
    await billing.leases.close()


async def test_only_an_owner_or_an_operator_sets_caps_and_bad_values_are_refused(
    store: SqlStore,
) -> None:
    clock = ManualClock(datetime(2026, 12, 9, 12, tzinfo=UTC))
    account_id, key_id = await funded(store)
    other_account, other_key = await funded(store)
    caps = SpendCaps(store, clock)
    owner = Actor("u1", "owner", account_id)
    member = Actor("u2", "member", account_id)
    use = await caps.set(owner, scope="key", subject=key_id, period="weekly", limit=10)
    assert [u.cap.id for u in await caps.of_account(member, account_id)] == [use.cap.id]
    with pytest.raises(PermissionDenied):
        await caps.set(member, scope="key", subject=key_id, period="weekly", limit=20)
    with pytest.raises(NotFound):  # another account's key is not there, for them
        await caps.set(owner, scope="key", subject=other_key, period="daily", limit=1)
    with pytest.raises(NotFound):
        await caps.of_account(owner, other_account)
    with pytest.raises(NotFound):
        await caps.remove(Actor("u3", "owner", other_account), use.cap.id)
    with pytest.raises(ValidationFailed, match="period"):
        parse_period("hourly")
    for bad in ("-1", "abc", "1e3", "0.0000000001"):
        with pytest.raises(ValidationFailed, match="limit_usd"):
            parse_limit(bad)
    assert parse_limit("2.5") == 2_500_000_000
    await caps.remove(owner, use.cap.id)
    assert await caps.of_account(owner, account_id) == []


async def test_a_cap_that_refuses_writes_one_cap_reached_event_per_window(
    store: SqlStore,
) -> None:
    clock = ManualClock(datetime(2026, 12, 9, 12, tzinfo=UTC))
    account_id, key_id = await funded(store)
    use = await SpendCaps(store, clock).set(
        CLI, scope="key", subject=key_id, period="daily", limit=0
    )
    outbox = WebhookOutbox(store, clock, Outage(clock), ejection_window_s=300)
    billing = Billing(store, clock, BillingSettings(min_output_tokens=256))
    billing.on_cap_reached = outbox.cap_reached
    # two processes' worth of refusals: one in this outbox, one in another's
    other = WebhookOutbox(store, clock, Outage(clock), ejection_window_s=300)
    for hook in (outbox.cap_reached, outbox.cap_reached, other.cap_reached):
        billing.on_cap_reached = hook
        with pytest.raises(SpendCapReached):
            await billing.reserve(
                account_id=account_id, key_id=key_id, quote=quote(10), requested=None, capped=True
            )
    await outbox.close()
    await other.close()
    (event,) = [e.event for e in await store.list_events(account_id, event_type="cap.reached")]
    assert event.id == f"evt_cap_{use.cap.id}_{use.window_start_us}"
    data = json.loads(event.payload)
    assert (data["cap_id"], data["scope"], data["subject"], data["period"]) == (
        use.cap.id,
        "key",
        key_id,
        "daily",
    )
    assert (data["limit_nanos"], data["resets_at"]) == (0, "2026-12-10T00:00:00Z")
