"""Opening and closing a store, and asking whether its database answers."""

from __future__ import annotations

from typing import Protocol


class StoreLifecycle(Protocol):
    async def open(self) -> None:
        """Connect and apply pending migrations (idempotent)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """One trivial round trip to the database (readiness); raises ``StorageError``."""
