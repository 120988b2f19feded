"""Spend caps (``CapStore``): hard limits on what an account or one of its keys may spend per
UTC calendar period. Enforcement is in the ledger's capped holds (``LedgerStore.place_hold``
with ``windows``); this port manages the caps and reports what each has spent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gridgate.storage.records import AuditNote, CapPeriod, CapScope, CapUse, SpendCap


class CapStore(Protocol):
    async def set_cap(
        self,
        *,
        account_id: str,
        scope: CapScope,
        subject: str,
        period: CapPeriod,
        limit: int,
        window_start_us: int,
        now_us: int,
        audit: AuditNote | None = None,
    ) -> SpendCap:
        """Create the cap of (``scope``, ``subject``, ``period``), or change its limit. A new
        cap starts its current window (``window_start_us``) at what the subject's usage records
        already cost in it. Every key it applies to is announced on the change feed (and, on
        SQLite, marked changed), so every process's next request holds against it."""

    async def remove_cap(self, cap_id: str, *, audit: AuditNote | None = None) -> SpendCap:
        """Delete a cap and its windows; unknown → NotFoundInStore."""

    async def get_cap(self, cap_id: str) -> SpendCap | None: ...

    async def caps_of(self, account_id: str, windows: Mapping[CapPeriod, int]) -> list[CapUse]:
        """The account's caps and its keys' caps, each with what it has committed in its
        current window (``windows``: each period's window start)."""
