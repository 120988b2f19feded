"""Balance leases: per-process slices of an account's balance, so requests hold and settle in
memory while the no-overspend guarantee stays in the database.

A process takes a **lease** with one ordinary, atomic ledger hold (``place_hold``: the balance
must cover it and the key must be active, in one transaction). Requests then reserve their worst
case against the lease's free amount and settle their exact cost in memory — no database write
per request. The sum of all open leases never exceeds what the ledger had, so whatever the number
of processes, nothing can be spent that the balance did not cover.

Every request's usage record is written (batched) with the lease's hold id and its cost. A lease
is closed with ``settle_hold(lease, charged)`` when it is idle for ``billing.lease_idle_seconds``,
older than ``billing.lease_max_age_seconds``, too small for the next request, or at shutdown. While
the process lives it renews its leases' expiry; if it dies, the leases expire after
``billing.hold_ttl_seconds`` and ``expire_holds`` charges exactly the usage recorded against them.

What an account shows as spent is exact as soon as its usage records are written (~50 ms): see
``AccountBalance.effective``. With several processes, up to one lease per process may be open on
an account; a request that finds the rest of the balance leased elsewhere sees the smaller
balance until those leases go idle and close.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from gridgate.core.billing import cap_windows
from gridgate.core.clock import Clock
from gridgate.core.outage import Outage
from gridgate.settings import BillingSettings
from gridgate.storage.ports.errors import StorageError
from gridgate.storage.ports.ledger import LEASE_ID_PREFIX, HoldResult, LedgerStore
from gridgate.storage.records import CapPeriod, CapUse

log = logging.getLogger("gridgate.leases")

# a new lease covers at least this many requests like the one that asks for it
REQUESTS_PER_LEASE = 16


@dataclass(slots=True)
class Lease:
    hold_id: str
    account_id: str
    amount: int
    expires_us: int
    opened: float
    last_used: float
    reserved: int = 0  # worst cases of requests in flight
    charged: int = 0  # exact costs of requests settled
    inflight: int = 0
    closing: bool = False  # takes no new reservations; closes when nothing is in flight
    capped: bool = False  # a capped request's own hold: its close gives the cap windows back

    @property
    def free(self) -> int:
        return self.amount - self.reserved - self.charged


@dataclass(slots=True)
class Reservation:
    """One request's worst case, reserved on a lease."""

    lease: Lease
    amount: int
    done: bool = False
    caps: tuple[CapUse, ...] = ()  # a capped request: its caps' windows after its hold

    @property
    def hold_id(self) -> str:
        return self.lease.hold_id


class LeaseBook:
    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        settings: BillingSettings,
        outage: Outage | None = None,
    ) -> None:
        self._store = store
        self._outage = outage
        self._clock = clock
        self._settings = settings
        self._target = settings.lease_nanos
        self._ttl_us = settings.hold_ttl_seconds * 1_000_000
        self._open: dict[str, Lease] = {}  # account id → the lease new requests use
        self._closing: dict[str, Lease] = {}  # hold id → retired, waiting for its requests
        self._unsettled: dict[str, Lease] = {}  # hold id → done, its settle refused: retried
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._placing: set[asyncio.Future[HoldResult]] = set()

    @property
    def inflight(self) -> int:
        """Requests holding a reservation right now, on every lease."""
        return sum(lease.inflight for lease in self._open.values()) + sum(
            lease.inflight for lease in self._closing.values()
        )

    @property
    def open_count(self) -> int:
        """Leases (ledger holds) this process has open, closing ones included."""
        return len(self._open) + len(self._closing) + len(self._unsettled)

    # -- the hot path ----------------------------------------------------------------------
    def try_reserve(self, account_id: str, amount: int) -> Reservation | None:
        """Reserve in memory on the open lease, or None when it cannot cover ``amount``."""
        lease = self._open.get(account_id)
        if lease is None or lease.free < amount:
            return None
        if lease.expires_us - self._clock.now_us() < self._ttl_us // 4:
            return None  # renewal is overdue: do not lean on a lease that may be expired
        lease.reserved += amount
        lease.inflight += 1
        lease.last_used = self._clock.monotonic()
        return Reservation(lease, amount)

    def settle(self, reservation: Reservation, cost: int) -> int:
        """Charge ``cost`` (at most the reservation) and free the rest. Idempotent."""
        if reservation.done:
            return 0
        reservation.done = True
        lease = reservation.lease
        charged = min(max(cost, 0), reservation.amount)
        lease.reserved -= reservation.amount
        lease.charged += charged
        lease.inflight -= 1
        if lease.closing and lease.inflight == 0:
            self._spawn(self._close(lease))
        return charged

    # -- taking a lease ----------------------------------------------------------------------
    async def reserve(
        self, account_id: str, key_id: str, amount: int
    ) -> tuple[Reservation | None, HoldResult | None]:
        """Reserve ``amount``, taking a new lease when needed. Returns the reservation, or None
        with the store's refusal (its ``balance`` is the ledger balance after this process gave
        back what it could)."""
        fast = self.try_reserve(account_id, amount)
        if fast is not None:
            return fast, None
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            fast = self.try_reserve(account_id, amount)
            if fast is not None:
                return fast, None
            # the lease in use cannot cover this request: retire it (its unused part goes back
            # to the ledger now, if nothing is in flight on it) and take a bigger one
            await self._retire(account_id)
            size = max(amount * REQUESTS_PER_LEASE, self._target)
            result = await self._place(account_id, key_id, size)
            if result.refused == "insufficient_balance" and result.balance >= amount:
                if result.balance >= 2 * REQUESTS_PER_LEASE * amount:
                    # lease half and leave the rest to the account's other processes
                    result = await self._place(account_id, key_id, result.balance // 2)
                else:
                    # too small a balance to slice: this request holds exactly its worst case
                    return await self._reserve_exactly(account_id, key_id, amount)
            if result.hold is None:
                return None, result
            reservation = self.try_reserve(account_id, amount)
            if reservation is None:
                # requests that arrived meanwhile used the new lease up: as good as refused
                refused = HoldResult(
                    hold=None, refused="insufficient_balance", balance=result.balance
                )
                return None, refused
            return reservation, result

    async def reserve_capped(
        self, account_id: str, key_id: str, amount: int
    ) -> tuple[Reservation | None, HoldResult]:
        """A request under a spend cap holds exactly its worst case in the ledger, against the
        balance and every cap of its account and key in one transaction (never on a lease:
        a lease is the account's, shared by all its keys)."""
        windows = cap_windows.windows(self._clock.now_us())
        return await self._reserve_exactly(account_id, key_id, amount, windows)

    async def _reserve_exactly(
        self,
        account_id: str,
        key_id: str,
        amount: int,
        windows: Mapping[CapPeriod, int] | None = None,
    ) -> tuple[Reservation | None, HoldResult]:
        """A single-use hold of exactly ``amount``: closed when its one request settles, so a
        small balance is never parked in one process while another refuses for lack of it."""
        result = await self._place(account_id, key_id, amount, single_use=True, windows=windows)
        if result.hold is None:
            return None, result
        lease = self._closing[result.hold.id]
        lease.reserved += amount
        lease.inflight += 1
        return Reservation(lease, amount, caps=result.caps), result

    async def _place(
        self,
        account_id: str,
        key_id: str,
        amount: int,
        *,
        single_use: bool = False,
        windows: Mapping[CapPeriod, int] | None = None,
    ) -> HoldResult:
        now = self._clock.now_us()
        hold_id = LEASE_ID_PREFIX + secrets.token_hex(12)
        placing = asyncio.ensure_future(
            self._store.place_hold(
                hold_id=hold_id,
                account_id=account_id,
                key_id=key_id,
                amount=amount,
                expires_us=now + self._ttl_us,
                now_us=now,
                windows=windows,
            )
        )
        # a caller that goes away while the lease is being written must not strand it: the
        # write completes and the lease is registered, to be closed when idle
        self._placing.add(placing)
        placing.add_done_callback(self._placing.discard)
        placing.add_done_callback(self._register_single if single_use else self._register)
        return await asyncio.shield(placing)

    def _landed(self, placing: asyncio.Future[HoldResult]) -> Lease | None:
        """The lease a finished placement granted, if it granted one."""
        if placing.cancelled() or placing.exception() is not None:
            return None
        result = placing.result()
        hold = result.hold
        if hold is None:
            return None
        now = self._clock.monotonic()
        lease = Lease(hold.id, hold.account_id, hold.amount, hold.expires_us, now, now)
        lease.capped = bool(result.caps)
        return lease

    def _register(self, placing: asyncio.Future[HoldResult]) -> None:
        lease = self._landed(placing)
        if lease is None:
            return
        previous = self._open.get(lease.account_id)
        if previous is not None:
            self._retire_now(previous)
        self._open[lease.account_id] = lease

    def _register_single(self, placing: asyncio.Future[HoldResult]) -> None:
        """A single-use hold is never offered to other requests: it waits, closing, for the one
        that asked for it (or for the tick to close it, should that request be gone)."""
        lease = self._landed(placing)
        if lease is None:
            return
        lease.closing = True
        self._closing[lease.hold_id] = lease

    # -- closing ------------------------------------------------------------------------------
    async def _retire(self, account_id: str) -> None:
        lease = self._open.pop(account_id, None)
        if lease is None:
            return
        lease.closing = True
        if lease.inflight == 0:
            await self._close(lease)
        else:
            self._closing[lease.hold_id] = lease

    def _retire_now(self, lease: Lease) -> None:
        if self._open.get(lease.account_id) is lease:
            del self._open[lease.account_id]
        lease.closing = True
        if lease.inflight == 0:
            self._spawn(self._close(lease))
        else:
            self._closing[lease.hold_id] = lease

    async def _close(self, lease: Lease) -> None:
        self._closing.pop(lease.hold_id, None)
        self._unsettled.pop(lease.hold_id, None)
        try:
            result = await self._store.settle_hold(
                lease.hold_id, lease.charged, now_us=self._clock.now_us(), capped=lease.capped
            )
        except StorageError as exc:
            # kept (and renewed) to settle at the next tick: its charge is known here, and an
            # expiry would charge only the usage records written by then
            self._unsettled[lease.hold_id] = lease
            if self._outage is None or not self._outage.noted(exc, "closing a lease"):
                log.exception("closing a lease failed; retrying", extra={"hold": lease.hold_id})
            return
        if result.already_settled and result.charged != lease.charged:
            # it expired first (its renewals failed): expiry charged the usage recorded by then
            log.warning(
                "lease %s expired before it was closed: charged %d of %d",
                lease.hold_id,
                result.charged,
                lease.charged,
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- upkeep ---------------------------------------------------------------------------------
    async def tick(self) -> None:
        """Close idle and old leases; renew the expiry of the ones in use."""
        now = self._clock.monotonic()
        for lease in list(self._open.values()):
            idle = (
                lease.inflight == 0 and now - lease.last_used >= self._settings.lease_idle_seconds
            )
            old = now - lease.opened >= self._settings.lease_max_age_seconds
            if idle or old:
                self._retire_now(lease)
        for lease in list(self._closing.values()):
            if lease.inflight == 0 and now - lease.last_used >= self._settings.lease_idle_seconds:
                self._spawn(self._close(lease))  # a single-use hold whose request went away
        for lease in list(self._unsettled.values()):
            self._spawn(self._close(lease))
        live = [*self._open.values(), *self._closing.values(), *self._unsettled.values()]
        now_us = self._clock.now_us()
        due = [lease for lease in live if lease.expires_us - now_us < self._ttl_us // 2]
        if due:
            expires = now_us + self._ttl_us
            try:
                await self._store.extend_holds([lease.hold_id for lease in due], expires)
            except StorageError as exc:
                if self._outage is None or not self._outage.noted(exc, "renewing leases"):
                    log.exception("renewing leases failed")
            else:
                for lease in due:
                    lease.expires_us = expires

    async def close(self) -> None:
        """Close every lease (at shutdown, after in-flight requests have drained)."""
        if self._placing:  # leases still being written land first, then close with the rest
            await asyncio.gather(*list(self._placing), return_exceptions=True)
        for lease in list(self._open.values()):
            self._retire_now(lease)
        for lease in [*self._closing.values(), *self._unsettled.values()]:
            self._spawn(self._close(lease))
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for lease in self._unsettled.values():
            log.warning(
                "lease %s could not be settled before stopping: it expires in under %d s and is "
                "then charged the usage recorded against it",
                lease.hold_id,
                self._settings.hold_ttl_seconds,
            )
