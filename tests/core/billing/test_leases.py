"""Balance leases over a real SQLite store: requests reserve in memory, leases never overspend,
and every lease closes charging exactly what its requests cost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Accounts
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.billing.leases import LeaseBook
from gridgate.core.clock import SystemClock
from gridgate.settings import BillingSettings
from gridgate.storage.ports.ledger import VerifyReport
from gridgate.storage.sql import SqlStore


class ManualClock:
    """Wall and monotonic time that move only when told to."""

    def __init__(self) -> None:
        self.seconds = 1_000_000.0

    def now_us(self) -> int:
        return int(self.seconds * 1_000_000)

    def monotonic(self) -> float:
        return self.seconds


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with SqlStore(f"sqlite:///{tmp_path / 'g.db'}") as opened:
        yield opened


async def funded(store: SqlStore, nanos: int) -> tuple[str, str]:
    accounts = Accounts(store, SystemClock())
    account = await accounts.create(CLI, "a")
    if nanos:
        await store.credit(account.id, nanos)
    key = await ApiKeys(store, SystemClock()).create(CLI, account.id, "k")
    return account.id, key.record.id


def ledger_balances_ok(report: VerifyReport) -> bool:
    """Every balance is the sum of its entries and none is negative. (These leases serve no
    requests, so no usage record stands behind their charges: ``report.holds`` lists them.)"""
    return not report.mismatches and not report.negative


def settings(**overrides: object) -> BillingSettings:
    base = {"lease_usd": Decimal("0.000001"), "lease_idle_seconds": 2.0, "hold_ttl_seconds": 60}
    base.update(overrides)
    return BillingSettings(**base)  # type: ignore[arg-type]


async def test_many_requests_share_one_lease_and_it_closes_exactly(store: SqlStore) -> None:
    account, key = await funded(store, 1_000_000)
    clock = ManualClock()
    book = LeaseBook(store, clock, settings())
    charged = 0
    for _ in range(10):
        reservation, _ = await book.reserve(account, key, 100)
        assert reservation is not None
        charged += book.settle(reservation, 37)
    assert charged == 370
    balance = await store.account_balance(account)
    assert balance is not None
    assert balance.held == 1_600  # one lease of 16 worst cases, taken once
    clock.seconds += 3  # idle past lease_idle_seconds
    await book.tick()
    await book.close()
    balance = await store.account_balance(account)
    assert balance is not None
    assert (balance.ledger, balance.held) == (1_000_000 - 370, 0)
    assert ledger_balances_ok(await store.verify_ledger())


async def test_concurrent_reservations_never_exceed_the_balance(store: SqlStore) -> None:
    worst, k = 1_000, 7
    account, key = await funded(store, worst * k)
    book = LeaseBook(store, ManualClock(), settings())
    results = await asyncio.gather(*(book.reserve(account, key, worst) for _ in range(20 * k)))
    granted = [r for r, _ in results if r is not None]
    assert len(granted) <= k
    balance = await store.account_balance(account)
    assert balance is not None and balance.ledger >= 0
    for reservation in granted:
        book.settle(reservation, worst)
    await book.close()
    final = await store.account_balance(account)
    assert final is not None
    assert final.ledger == worst * (k - len(granted)) >= 0
    assert final.held == 0
    assert ledger_balances_ok(await store.verify_ledger())


async def test_a_lease_too_small_for_the_next_request_is_replaced(store: SqlStore) -> None:
    account, key = await funded(store, 1_000_000)
    book = LeaseBook(store, ManualClock(), settings())
    small, _ = await book.reserve(account, key, 10)  # a lease of lease_usd = 1,000
    assert small is not None and small.lease.amount == 1_000
    big, _ = await book.reserve(account, key, 995)  # 990 free: a new lease; the first retires
    assert big is not None and big.hold_id != small.hold_id
    book.settle(small, 10)
    book.settle(big, 400)
    await book.close()
    balance = await store.account_balance(account)
    assert balance is not None and balance.ledger == 1_000_000 - 410
    first = await store.get_hold(small.hold_id)
    assert first is not None and first.status == "settled" and first.charged == 10


async def test_a_balance_too_small_to_slice_is_held_exactly_per_request(store: SqlStore) -> None:
    account, key = await funded(store, 1_000)
    book = LeaseBook(store, ManualClock(), settings(lease_usd=Decimal("1")))
    reservation, _ = await book.reserve(account, key, 300)
    assert reservation is not None and reservation.lease.amount == 300  # exactly its worst case
    assert book.try_reserve(account, 1) is None  # a single-use hold is nobody else's
    refused, refusal = await book.reserve(account, key, 800)
    assert refused is None and refusal is not None
    assert refusal.refused == "insufficient_balance"
    book.settle(reservation, 250)
    await book.close()
    balance = await store.account_balance(account)
    assert balance is not None and (balance.ledger, balance.held) == (750, 0)


async def test_a_large_balance_is_leased_by_halves(store: SqlStore) -> None:
    account, key = await funded(store, 100_000)
    book = LeaseBook(store, ManualClock(), settings(lease_usd=Decimal("1")))
    reservation, _ = await book.reserve(account, key, 1_000)  # 32 worst cases fit: a half lease
    assert reservation is not None and reservation.lease.amount == 50_000
    book.settle(reservation, 10)
    await book.close()


async def test_k_worst_cases_serve_exactly_k_requests_under_contention(store: SqlStore) -> None:
    """Funded for exactly K worst cases, each costing its worst case: 20 × K concurrent requests
    on two lease books (two processes) are served exactly K times, never more."""
    worst, k = 1_000, 8
    account, key = await funded(store, worst * k)
    books = [LeaseBook(store, ManualClock(), settings(lease_usd=Decimal("1"))) for _ in range(2)]

    async def request(book: LeaseBook) -> bool:
        reservation, _ = await book.reserve(account, key, worst)
        if reservation is None:
            return False
        await asyncio.sleep(0)  # in flight while others ask
        book.settle(reservation, worst)
        return True

    served = await asyncio.gather(*(request(books[i % 2]) for i in range(20 * k)))
    for book in books:
        await book.close()
    assert sum(served) == k
    balance = await store.account_balance(account)
    assert balance is not None and (balance.ledger, balance.held) == (0, 0)
    assert ledger_balances_ok(await store.verify_ledger())


async def test_a_revoked_key_cannot_take_a_lease(store: SqlStore) -> None:
    account, key = await funded(store, 1_000_000)
    await store.revoke_key(key)
    reservation, refusal = await LeaseBook(store, ManualClock(), settings()).reserve(
        account, key, 10
    )
    assert reservation is None and refusal is not None and refusal.refused == "key_inactive"


async def test_leases_in_use_are_renewed_and_a_stale_lease_is_not_leaned_on(
    store: SqlStore,
) -> None:
    account, key = await funded(store, 1_000_000)
    clock = ManualClock()
    book = LeaseBook(store, clock, settings(hold_ttl_seconds=60, lease_max_age_seconds=600))
    first, _ = await book.reserve(account, key, 10)
    assert first is not None
    clock.seconds += 40  # past half the TTL: the tick renews it
    await book.tick()
    hold = await store.get_hold(first.hold_id)
    assert hold is not None and hold.expires_us == clock.now_us() + 60_000_000
    clock.seconds += 50  # renewal missed: less than a quarter of the TTL is left
    assert book.try_reserve(account, 10) is None
    book.settle(first, 1)
    await book.close()


class GatedStore:
    """The store, with lease writes held at a gate the test opens."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.writing = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def place_hold(self, **kwargs: object) -> object:
        self.writing.set()
        await self.gate.wait()
        return await self._store.place_hold(**kwargs)  # type: ignore[arg-type]


async def test_a_cancelled_caller_does_not_strand_a_lease(store: SqlStore) -> None:
    account, key = await funded(store, 1_000_000)
    gated = GatedStore(store)
    book = LeaseBook(gated, ManualClock(), settings())  # type: ignore[arg-type]
    task = asyncio.ensure_future(book.reserve(account, key, 10))
    await gated.writing.wait()  # the lease write is under way …
    task.cancel()  # … when its caller goes away
    with pytest.raises(asyncio.CancelledError):
        await task
    gated.gate.set()
    await book.close()  # the lease lands, is registered, and is closed with nothing charged
    assert len(await store.entries(account)) == 3  # credit, lease hold, its settle
    balance = await store.account_balance(account)
    assert balance is not None and (balance.ledger, balance.held) == (1_000_000, 0)
