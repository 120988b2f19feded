"""Usage records: written in batches by every process, read back for reports and offer health;
and the local spool that keeps them while the database cannot take them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from gridgate.storage.records import DailyUsage, DeliveryRow, UsageRecord


class UsageStore(Protocol):
    async def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        """Batch write: a record replaces an earlier one of the same request_id (the last one
        wins, so a stream's provisional checkpoints give way to its final record); writing the
        same batch twice changes nothing."""

    async def list_usage(
        self,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = 100,
        key_id: str | None = None,
        instrument: str | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[UsageRecord]:
        """Newest first (by ``created_us``, then ``request_id``); ``since_us`` inclusive,
        ``until_us`` exclusive; ``limit=None`` returns every matching record; ``before`` keeps
        only the records that come after that ``(created_us, request_id)`` in this order (a
        page's cursor)."""

    async def usage_daily(
        self,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        key_id: str | None = None,
        instrument: str | None = None,
    ) -> list[DailyUsage]:
        """The matching usage records summed per UTC day and instrument, oldest first."""

    async def offer_deliveries(self, since_us: int, limit_per_offer: int) -> list[DeliveryRow]:
        """Every offer's latest deliveries as the usage records of all processes have them: at
        most ``limit_per_offer`` per offer, none created before ``since_us`` (inclusive). A
        delivery is a record with an offer and an outcome other than ``in_progress`` (a
        stream's checkpoint) or ``rejected``. Ordered by offer id, each offer's newest first.
        ``limit_per_offer`` < 1 → ValueError."""


class SpoolChunk(msgspec.Struct, frozen=True):
    """Usage records read back from the spool, and where the next read starts."""

    path: str
    records: list[UsageRecord]
    end: int  # byte offset after the last line read
    last: bool  # nothing after ``end``: once written, the file is done


class UsageSpool(Protocol):
    """Local, durable room for usage records the database cannot take right now
    (``storage/usage_spool.py``). Every method does blocking file I/O: call it off the loop."""

    @property
    def holding(self) -> bool:
        """Whether this process's own spilled records are not all written yet."""

    def spill(self, records: Sequence[UsageRecord]) -> None:
        """Append durably, after everything spilled before."""

    def read_own(self, limit: int) -> SpoolChunk | None:
        """The oldest of this process's spilled records not yet written, at most ``limit``."""

    def claim_orphan(self) -> str | None:
        """A spool file that no living process holds, now ours to write; None if none."""

    def read_orphan(self, path: str, offset: int, limit: int) -> SpoolChunk: ...

    def written(self, chunk: SpoolChunk) -> None:
        """``chunk`` is in the database: move past it (and finish its file when it is the last)."""

    def close(self) -> None:
        """Release the files; what is still unwritten stays for the next process."""
