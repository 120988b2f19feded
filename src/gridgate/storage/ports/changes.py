"""The change feed: how a change one process makes reaches what the others have cached."""

from __future__ import annotations

from typing import Protocol

from gridgate.storage.records import ChangeRecord


class ChangeStore(Protocol):
    async def changes_since(self, since_us: int) -> list[ChangeRecord]:
        """Change-feed entries created at or after ``since_us``, by id. Every change a process
        may have cached is announced in the transaction that makes it: revoked keys, limits,
        offers disabled or enabled, catalog seeding. (Read by time, not by id: ids of
        concurrent transactions may commit out of order.)"""

    async def prune_changes(self, before_us: int) -> int:
        """Delete feed entries created before ``before_us``; returns how many."""
