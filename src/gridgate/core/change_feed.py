"""Cross-process state: every process follows the store's change feed and drops what it cached.

What a process caches — verified keys (``auth.cache_seconds``), limit overrides, the catalog —
can be changed by any other process or by the CLI. Each such change appends an entry to the
``changes`` table in the transaction that makes it, so no change goes unannounced, with or
without Redis. Every ``changes.poll_seconds`` (0.25 s) a process reads the entries of the last
``LOOKBACK_SECONDS`` and acts on the ones it has not seen: a revoked key leaves the key cache,
changed limits and catalog are reread. Reading by time rather than by id is deliberate: ids of
concurrent PostgreSQL transactions may commit out of order, and a reader that only asked for ids
above the last one seen could skip one. As the fallback, limits and the catalog are reread every
``changes.refresh_seconds`` whatever the feed says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gridgate.core.clock import Clock
from gridgate.core.outage import Outage
from gridgate.storage.ports.changes import ChangeStore

log = logging.getLogger("gridgate.changes")

LOOKBACK_SECONDS = 10.0  # covers clock skew between hosts and slow commits
KEEP_SECONDS = 3600.0  # entries older than this are pruned
PRUNE_EVERY_SECONDS = 600.0


class ChangeFeed:
    def __init__(
        self,
        store: ChangeStore,
        clock: Clock,
        *,
        poll_seconds: float,
        refresh_seconds: float,
        forget_keys: Callable[[list[str]], None],
        reload_limits: Callable[[], Awaitable[None]],
        reload_catalog: Callable[[], Awaitable[None]],
        outage: Outage | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._poll = poll_seconds
        self._refresh = refresh_seconds
        self._forget_keys = forget_keys
        self._reload_limits = reload_limits
        self._reload_catalog = reload_catalog
        self._seen: dict[int, int] = {}  # change id → created_us, for the lookback window
        self._next_refresh = clock.monotonic() + refresh_seconds
        self._next_prune = clock.monotonic()
        self._outage = outage
        self._last_read_us: int | None = None  # when the last successful poll read the feed

    async def poll(self) -> None:
        """Act on the changes not yet seen (and on the refresh, when due)."""
        now_us = self._clock.now_us()
        lookback = int(LOOKBACK_SECONDS * 1_000_000)
        horizon = now_us - lookback
        # after polls that failed (the database was down), from the last one that read the feed
        since = (
            horizon if self._last_read_us is None else min(horizon, self._last_read_us - lookback)
        )
        fresh = [c for c in await self._store.changes_since(since) if c.id not in self._seen]
        self._last_read_us = now_us
        for change in fresh:
            self._seen[change.id] = change.created_us
        self._seen = {i: t for i, t in self._seen.items() if t >= horizon}
        keys = [c.subject for c in fresh if c.kind == "key"]
        if keys:
            self._forget_keys(keys)
        now = self._clock.monotonic()
        refresh = now >= self._next_refresh
        if refresh:
            self._next_refresh = now + self._refresh
        if refresh or any(c.kind == "limits" for c in fresh):
            await self._reload_limits()
        if refresh or any(c.kind in ("offer", "catalog") for c in fresh):
            await self._reload_catalog()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_SECONDS
            await self._store.prune_changes(now_us - int(KEEP_SECONDS * 1_000_000))

    async def run(self) -> None:
        """Poll until cancelled; a failed round is logged and the next one tries again."""
        while True:
            try:
                await self.poll()
            except Exception as exc:
                if self._outage is None or not self._outage.noted(exc, "the change feed"):
                    log.exception("reading the change feed failed")
            await asyncio.sleep(self._poll)
