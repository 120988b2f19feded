"""Spend caps (the service the CLI, the management API and the dashboard call): at most so many
dollars per UTC day, week (from Monday), month or lifetime, for an account or one of its keys.

A cap is enforced where money is held: every request of a capped key or account holds its worst
case in the ledger, in the same transaction as the balance and every applicable cap window
(``LedgerStore.place_hold`` with windows; ``leases.reserve_capped``), so no number of processes
or concurrent requests can take a cap past its limit. A request the cap cannot cover is 402
``spend_cap_reached`` naming the cap and when it resets; answers carry what is left
(``x-gridgate-spend-cap-remaining``).

What a window shows as spent is what its requests committed: the charges of the finished ones
and the worst cases of those in flight (given back as they settle). A new cap starts at what its
subject's usage records already cost in the current window. A change applies from every
process's next request on SQLite, within ``changes.poll_seconds`` on PostgreSQL.

An operator or the account's owner sets and removes caps; the account's people read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gridgate.core.access import Actor, may_act_on, require_owner
from gridgate.core.audit_log import note
from gridgate.core.billing import cap_windows
from gridgate.core.clock import Clock
from gridgate.echo import capped
from gridgate.errors import NotFound, ValidationFailed
from gridgate.money import MoneyError, format_usd, usd_to_nanos
from gridgate.storage.ports.accounts import AccountStore
from gridgate.storage.ports.caps import CapStore
from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.records import CapPeriod, CapScope, CapUse, SpendCap

MAX_CAP_NANOS = 10**18  # a billion dollars


class CapsStore(CapStore, KeyStore, AccountStore, Protocol):
    """The caps, and the keys and accounts they are set on."""


def parse_period(text: str, *, param: str = "period") -> CapPeriod:
    for period in cap_windows.PERIODS:
        if text == period:
            return period
    raise ValidationFailed(
        f"{param}: one of {', '.join(cap_windows.PERIODS)} (got {capped(text)!r})", param=param
    )


def parse_limit(text: str, *, param: str = "limit_usd") -> int:
    try:
        nanos = usd_to_nanos(text)
    except MoneyError as exc:
        raise ValidationFailed(f"{param}: {exc}", param=param) from exc
    if not 0 <= nanos <= MAX_CAP_NANOS:
        raise ValidationFailed(f"{param}: from 0 to 1000000000 dollars", param=param)
    return nanos


class SpendCaps:
    def __init__(
        self,
        store: CapsStore,
        clock: Clock,
        *,
        on_change: Callable[[list[str]], None] | None = None,
    ) -> None:
        """``on_change``: drop the keys a cap covers from this process's cache at once (other
        processes follow the marker file or the change feed)."""
        self._store = store
        self._clock = clock
        self._on_change = on_change

    async def set(
        self,
        actor: Actor,
        *,
        scope: CapScope,
        subject: str,
        period: CapPeriod,
        limit: int,
    ) -> CapUse:
        """Create the cap of (``scope``, ``subject``, ``period``) or change its limit."""
        account_id = await self._account_of(actor, scope, subject)
        require_owner(actor, account_id)
        now = self._clock.now_us()
        cap = await self._store.set_cap(
            account_id=account_id,
            scope=scope,
            subject=subject,
            period=period,
            limit=limit,
            window_start_us=cap_windows.window_start(period, now),
            now_us=now,
            audit=note(
                actor,
                "spend_cap.set",
                scope=scope,
                subject=subject,
                period=period,
                limit_usd=format_usd(limit),
            ),
        )
        await self._changed(cap)
        return await self._use(cap)

    async def remove(self, actor: Actor, cap_id: str) -> SpendCap:
        cap = await self._store.get_cap(cap_id)
        if cap is None or not may_act_on(actor, cap.account_id):
            raise NotFound(f"no spend cap {capped(cap_id)!r}")
        require_owner(actor, cap.account_id)
        try:
            removed = await self._store.remove_cap(
                cap_id, audit=note(actor, "spend_cap.remove", period=cap.period)
            )
        except NotFoundInStore as exc:
            raise NotFound(f"no spend cap {capped(cap_id)!r}") from exc
        await self._changed(removed)
        return removed

    async def of_account(self, actor: Actor, account_id: str) -> list[CapUse]:
        """The caps of the account and of its keys, with what each window has committed."""
        if not may_act_on(actor, account_id):
            raise NotFound(f"no account {capped(account_id)!r}")
        return await self._store.caps_of(account_id, cap_windows.windows(self._clock.now_us()))

    async def _use(self, cap: SpendCap) -> CapUse:
        uses = await self._store.caps_of(cap.account_id, cap_windows.windows(self._clock.now_us()))
        return next(use for use in uses if use.cap.id == cap.id)

    async def _account_of(self, actor: Actor, scope: CapScope, subject: str) -> str:
        """The account a cap on ``subject`` belongs to (NotFound when it is not the actor's)."""
        if scope == "key":
            key = await self._store.get_key(subject)
            if key is None or not may_act_on(actor, key.account_id):
                raise NotFound(f"no API key {capped(subject)!r}")
            return key.account_id
        if not may_act_on(actor, subject) or await self._store.get_account(subject) is None:
            raise NotFound(f"no account {capped(subject)!r}")
        return subject

    async def _changed(self, cap: SpendCap) -> None:
        if self._on_change is None:
            return
        if cap.scope == "key":
            self._on_change([cap.subject])
        else:
            self._on_change([key.id for key in await self._store.list_keys(cap.account_id)])
