"""The usage writer: usage records and key last-used times, written in batches off the hot path.

One tracked background task per process writes what requests submit, a batch at a time: after
the first record of a batch arrives it waits ``flush_seconds`` for more (or until it has
``batch_size``). A served request always ends with its record in the database, whatever the
database does meanwhile:

- a failed write is retried, with backoff, for as long as the process lives; records wait in
  memory, in the order they were made (a stream's checkpoints, then its final record: the last
  written wins);
- past ``memory_records`` waiting, they are **spilled** to the spool on local disk
  (``storage/usage_spool.py``), fsynced, and written from there, oldest first, once the database
  is back — before anything newer;
- ``close`` (at shutdown) keeps trying for ``shutdown_seconds``, then spills what is left; the
  spool file outlives the process, and the next process of the same data directory (or a sibling
  worker, within ``orphan_check_seconds``) writes it.

Records are idempotent by request id, so writing one twice (a process that died while writing
its spool) changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from gridgate.core.outage import Outage
from gridgate.storage.ports.errors import StorageError, StoreUnavailable
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.ports.usage import UsageSpool, UsageStore
from gridgate.storage.records import UsageRecord

log = logging.getLogger("gridgate.usage")

FIRST_RETRY_SECONDS = 0.05


class UsageSink(UsageStore, KeyStore, Protocol):
    """Where the writer's batches go: the usage records, and the keys' last use."""


class UsageWriter:
    def __init__(
        self,
        store: UsageSink,
        *,
        spool: UsageSpool | None = None,
        outage: Outage | None = None,
        batch_size: int = 500,
        flush_seconds: float = 0.05,
        memory_records: int = 50_000,
        retry_max_seconds: float = 1.0,
        shutdown_seconds: float = 10.0,
        orphan_check_seconds: float = 10.0,
        observe: Callable[[UsageRecord], None] | None = None,
    ) -> None:
        """``observe`` sees every record as it is submitted (the metrics hook). Without a
        ``spool``, records that cannot be written wait in memory however many they are."""
        self._store = store
        self._spool = spool
        self._outage = outage
        self._observe = observe
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._memory_records = memory_records
        self._retry_max = retry_max_seconds
        self._shutdown_seconds = shutdown_seconds
        self._orphan_seconds = orphan_check_seconds
        self._pending: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._give_up_at = 0.0
        self._written = 0
        self._spooled = 0  # spilled by this process and not yet written
        self._failing_since: float | None = None
        self._orphan: tuple[str, int] | None = None  # a claimed orphan file and where we are in it
        self._orphans_due = 0.0  # when to look for one next
        self._submitted = 0  # records submitted, ever
        self._left = 0  # of those, records that left memory (written, or spilled to disk)
        self._progress = asyncio.Condition()  # notified whenever records leave memory
        self._hurry = False  # a flush() waits: write what is pending without gathering more

    @property
    def pending(self) -> int:
        """Records waiting in memory."""
        return len(self._pending)

    @property
    def spooled(self) -> int:
        """Records this process spilled to disk and has not written yet."""
        return self._spooled

    @property
    def written(self) -> int:
        return self._written

    @property
    def flush_seconds(self) -> float:
        """How long a batch gathers before it is written."""
        return self._flush_seconds

    def latest(self, request_id: str) -> UsageRecord | None:
        """The newest record of ``request_id`` submitted here and not yet written (None: none
        waits in memory; a record leaves memory only once its batch is committed, or spilled).
        Newest first: a request's latest record is near the right end."""
        for record in reversed(self._pending):
            if record.request_id == request_id:
                return record
        return None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gridgate-usage-writer")

    def submit(self, record: UsageRecord) -> None:
        self._pending.append(record)
        self._submitted += 1
        if not self._wake.is_set():
            self._wake.set()
        if self._observe is not None:
            try:
                self._observe(record)
            except Exception:  # metrics must never fail a request
                log.exception("observing a usage record failed")

    async def flush(self, within: float) -> bool:
        """Wait until every record submitted before the call has left memory (written, or
        spilled to the spool while the database refuses), at most ``within`` seconds; True
        when it has. The batch being gathered is written at once."""
        target = self._submitted
        if self._left >= target or self._task is None:
            return self._left >= target
        self._hurry = True
        self._wake.set()
        try:
            async with self._progress:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._left >= target), within
                )
        except TimeoutError:
            return False
        return True

    async def _moved(self, count: int) -> None:
        self._left += count
        async with self._progress:
            self._progress.notify_all()

    async def close(self) -> None:
        """Write everything submitted (for at most ``shutdown_seconds`` while the database
        refuses, then spill the rest to disk), then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._give_up_at = asyncio.get_running_loop().time() + self._shutdown_seconds
        self._wake.set()
        try:
            await self._task
        finally:
            self._task = None
            if self._spool is not None:
                await asyncio.to_thread(self._spool.close)

    # -- the task ---------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = FIRST_RETRY_SECONDS
        self._orphans_due = loop.time()  # look for a stopped process's spool at once
        while True:
            if self._pending or self._holding():
                if self._gathering():
                    await asyncio.sleep(self._flush_seconds)  # let the batch fill
                self._hurry = False
                try:
                    await self._write_backlog()
                except StorageError as exc:
                    self._failed(exc)
                    if self._stopping and loop.time() >= self._give_up_at:
                        await self._spill(give_up=True)
                        return
                    await self._keep_within_memory()
                    await self._pause(delay)
                    delay = min(delay * 2, self._retry_max)
                else:
                    delay = FIRST_RETRY_SECONDS
                    self._recovered()
                    await self._orphans_if_due()  # between batches: steady load never starves it
                continue
            if self._stopping:
                return
            if await self._orphans_if_due():
                continue  # more of that file: but what requests submit goes first
            if self._stopping or self._pending:
                continue  # close() or a record came while that look awaited: not slept through
            self._wake.clear()
            if self._spool is None:
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), max(self._orphans_due - loop.time(), 0.01)
                )

    async def _orphans_if_due(self) -> bool:
        """One batch of a spool file a stopped process left, when one is being written or it is
        time to look for one; True when that file has more and the database took this batch."""
        if self._spool is None or self._stopping:
            return False
        now = asyncio.get_running_loop().time()
        if now < self._orphans_due:
            return False
        try:
            more = await self._write_orphan_chunk()
        except StorageError as exc:
            self._failed(exc)
            more = False
        if not more:
            self._orphans_due = now + self._orphan_seconds
        return more

    def _holding(self) -> bool:
        return self._spool is not None and self._spool.holding

    def _gathering(self) -> bool:
        """Whether to wait ``flush_seconds`` for a fuller batch before writing: not when one is
        full, not while retrying (the backoff waited), not when stopping."""
        return (
            len(self._pending) < self._batch_size
            and self._failing_since is None
            and not self._stopping
            and not self._holding()
            and not self._hurry
        )

    async def _write_backlog(self) -> None:
        """This process's spilled records (the oldest), then those in memory when it was
        called, a batch at a time; raises ``StorageError`` at the first batch the database
        refuses. What is submitted meanwhile waits for the next call (and its fuller batch):
        chasing it would write one record per transaction under steady load."""
        spool = self._spool
        while spool is not None and spool.holding:
            chunk = await asyncio.to_thread(spool.read_own, self._batch_size)
            if chunk is None:
                break
            await self._insert(chunk.records)
            await asyncio.to_thread(spool.written, chunk)
            self._spooled = max(self._spooled - len(chunk.records), 0)
        left = len(self._pending)
        while left > 0:
            batch = list(itertools.islice(self._pending, min(left, self._batch_size)))
            await self._insert(batch)
            for _ in batch:  # submissions made meanwhile were appended on the right
                self._pending.popleft()
            left -= len(batch)
            await self._moved(len(batch))

    async def _insert(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        last_used: dict[str, int] = {}
        for record in records:
            if record.created_us > last_used.get(record.key_id, 0):
                last_used[record.key_id] = record.created_us
        await self._store.insert_usage(records)
        self._written += len(records)
        with contextlib.suppress(StorageError):  # a last-used time may lag; a record may not
            await self._store.touch_keys(last_used)

    async def _write_orphan_chunk(self) -> bool:
        """One batch of a spool file a stopped process left; True while that file has more."""
        spool = self._spool
        assert spool is not None
        if self._orphan is None:
            path = await asyncio.to_thread(spool.claim_orphan)
            if path is None:
                return False
            self._orphan = (path, 0)
        path, offset = self._orphan
        chunk = await asyncio.to_thread(spool.read_orphan, path, offset, self._batch_size)
        await self._insert(chunk.records)
        await asyncio.to_thread(spool.written, chunk)
        if chunk.last:
            self._orphan = None
            log.info("wrote the usage records a stopped process left in %s", path)
            return False
        self._orphan = (path, chunk.end)
        return True

    async def _keep_within_memory(self) -> None:
        if self._spool is not None and len(self._pending) > self._memory_records:
            await self._spill(give_up=False)

    async def _spill(self, *, give_up: bool) -> None:
        """Move every record in memory to the spool (durably), oldest first."""
        if self._spool is None or not self._pending:
            if give_up and self._pending:
                log.error(
                    "%d usage records could not be written and there is no spool: lost: %s",
                    len(self._pending),
                    ",".join(r.request_id for r in self._pending),
                )
            return
        batch = list(self._pending)
        try:
            await asyncio.to_thread(self._spool.spill, batch)
        except OSError:
            log.exception(
                "spilling %d usage records to disk failed; they stay in memory", len(batch)
            )
            return
        for _ in batch:
            self._pending.popleft()
        self._spooled += len(batch)
        await self._moved(len(batch))
        if give_up:
            log.warning(
                "stopping with the database unreachable: %d usage records kept on disk for the "
                "next process to write",
                self._spooled,
            )

    async def _pause(self, seconds: float) -> None:
        """Wait before the next try: ``seconds``, or until ``close`` when that comes first."""
        loop = asyncio.get_running_loop()
        if self._stopping:
            await asyncio.sleep(min(seconds, max(self._give_up_at - loop.time(), 0.0)))
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._until_stopping(), seconds)

    async def _until_stopping(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()

    def _failed(self, exc: StorageError) -> None:
        loop = asyncio.get_running_loop()
        if self._failing_since is None:
            self._failing_since = loop.time()
            if not (self._outage is not None and isinstance(exc, StoreUnavailable)):
                log.warning("writing usage records failed; retrying until it works: %s", exc)
        if self._outage is not None and isinstance(exc, StoreUnavailable):
            self._outage.failed(exc, "the usage writer")

    def _recovered(self) -> None:
        if self._outage is not None:
            self._outage.recovered()
        since = self._failing_since
        if since is None:
            return
        self._failing_since = None
        log.info(
            "usage records written again after %.1f s of failures",
            asyncio.get_running_loop().time() - since,
        )
