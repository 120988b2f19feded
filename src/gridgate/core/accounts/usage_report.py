"""What an account used and spent, as its people (and operators) read it: pages of usage
records, sums per UTC day and instrument, a CSV-ready export, and the overview of spend today,
this month and per day. An account's user reads their own account only; an operator names one
(or reads every account). A ``key_id`` filter of a key outside the account read is 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gridgate.core.access import Actor, account_in_scope
from gridgate.core.accounts.usage_pages import UsagePage, UsageQuery, check_window, usage_page
from gridgate.core.clock import Clock
from gridgate.core.times import DAY_US, day_of, day_start
from gridgate.echo import capped
from gridgate.errors import NotFound, ValidationFailed
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.ports.usage import UsageStore
from gridgate.storage.records import DailyUsage, UsageRecord

MAX_DAYS = 366
DEFAULT_DAYS = 30
EXPORT_BATCH = 1_000
MAX_EXPORT = 100_000  # rows in one CSV export; narrow the window for more


@dataclass(frozen=True, slots=True)
class Overview:
    """An account's spend at a glance (UTC days)."""

    today: int  # nano-dollars
    this_month: int
    requests_today: int
    days: list[DailyUsage]  # the last ``DEFAULT_DAYS`` days, per instrument
    first_day: int  # the first day of ``days``' range (days since 1970-01-01)
    last_day: int  # today


class ReportStore(UsageStore, KeyStore, Protocol):
    """The usage records, and the keys a report may be narrowed to."""


class UsageReports:
    def __init__(self, store: ReportStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def page(
        self,
        actor: Actor,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int = 100,
        key_id: str | None = None,
        instrument: str | None = None,
        cursor: str | None = None,
    ) -> UsagePage:
        account = account_in_scope(actor, account_id, required=False)
        await self._check_key(account, key_id)
        query = UsageQuery(
            account_id=account,
            since_us=since_us,
            until_us=until_us,
            limit=limit,
            key_id=key_id,
            instrument=instrument,
            cursor=cursor,
        )
        return await usage_page(self._store, query)

    async def daily(
        self,
        actor: Actor,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        key_id: str | None = None,
        instrument: str | None = None,
    ) -> tuple[int, int, list[DailyUsage]]:
        """``(since_us, until_us, sums)``: by default the last 30 days through today; at most
        366 days."""
        until = until_us if until_us is not None else day_start(day_of(self._clock.now_us()) + 1)
        since = since_us if since_us is not None else until - DEFAULT_DAYS * DAY_US
        check_window(since, until)
        if until - since > MAX_DAYS * DAY_US:
            raise ValidationFailed(f"since: at most {MAX_DAYS} days before until", param="since")
        account = account_in_scope(actor, account_id, required=False)
        await self._check_key(account, key_id)
        sums = await self._store.usage_daily(
            account_id=account,
            since_us=since,
            until_us=until,
            key_id=key_id,
            instrument=None if instrument is None else instrument.lower(),
        )
        return since, until, sums

    async def export(
        self,
        actor: Actor,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        key_id: str | None = None,
        instrument: str | None = None,
    ) -> AsyncIterator[list[UsageRecord]]:
        """Every matching record, newest first, in batches (at most ``MAX_EXPORT``)."""
        account = account_in_scope(actor, account_id, required=False)
        await self._check_key(account, key_id)
        check_window(since_us, until_us)
        before: tuple[int, str] | None = None
        sent = 0
        while sent < MAX_EXPORT:
            batch = await self._store.list_usage(
                account_id=account,
                since_us=since_us,
                until_us=until_us,
                limit=min(EXPORT_BATCH, MAX_EXPORT - sent),
                key_id=key_id,
                instrument=None if instrument is None else instrument.lower(),
                before=before,
            )
            if not batch:
                return
            yield batch
            sent += len(batch)
            before = (batch[-1].created_us, batch[-1].request_id)

    async def _check_key(self, account_id: str | None, key_id: str | None) -> None:
        """A ``key_id`` filter names a key of the account read (any key, for an operator reading
        every account): another account's key is answered like one that does not exist."""
        if key_id is None:
            return
        key = await self._store.get_key(key_id)
        if key is None or (account_id is not None and key.account_id != account_id):
            raise NotFound(f"no key {capped(key_id)!r}", param="key_id")

    async def overview(self, actor: Actor, account_id: str | None = None) -> Overview:
        now = self._clock.now_us()
        today = day_of(now)
        moment = datetime.fromtimestamp(now / 1_000_000, tz=UTC)
        month_start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        month_day = int(month_start.timestamp()) // 86_400
        first = min(today - DEFAULT_DAYS + 1, month_day)
        _, _, sums = await self.daily(
            actor,
            account_id=account_id,
            since_us=day_start(first),
            until_us=day_start(today + 1),
        )
        return Overview(
            today=sum(d.cost for d in sums if d.day == today),
            this_month=sum(d.cost for d in sums if d.day >= month_day),
            requests_today=sum(d.requests for d in sums if d.day == today),
            days=[d for d in sums if d.day > today - DEFAULT_DAYS],
            first_day=today - DEFAULT_DAYS + 1,
            last_day=today,
        )
