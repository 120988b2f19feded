"""The usage writer: usage records and key last-used times, written in batches off the hot path.

One tracked background task per process drains a queue and writes a batch whenever it has
``batch_size`` records or ``flush_seconds`` have passed since the first unwritten one. ``close``
drains everything still queued, so a graceful shutdown loses nothing. A failed write is retried
with backoff (records are idempotent by request id); records are dropped only if the store keeps
failing past shutdown, and then they are logged by request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gridgate.storage.ports import StorageError, Store
from gridgate.storage.records import UsageRecord

log = logging.getLogger("gridgate.usage")


class UsageWriter:
    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 500,
        flush_seconds: float = 0.05,
        max_retries: int = 5,
        observe: Callable[[UsageRecord], None] | None = None,
    ) -> None:
        """``observe`` sees every record as it is queued (the metrics hook)."""
        self._store = store
        self._observe = observe
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._max_retries = max_retries
        self._queue: asyncio.Queue[UsageRecord | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._written = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def written(self) -> int:
        return self._written

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gridgate-usage-writer")

    def submit(self, record: UsageRecord) -> None:
        self._queue.put_nowait(record)
        if self._observe is not None:
            try:
                self._observe(record)
            except Exception:  # metrics must never fail a request
                log.exception("observing a usage record failed")

    async def close(self) -> None:
        """Write everything queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._flush_seconds
            while len(batch) < self._batch_size:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._write(batch)
        # drain whatever arrived after the stop marker
        rest: list[UsageRecord] = []
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                item = self._queue.get_nowait()
                if item is not None:
                    rest.append(item)
        if rest:
            await self._write(rest)

    async def _write(self, batch: list[UsageRecord]) -> None:
        last_used: dict[str, int] = {}
        for record in batch:
            if record.created_us > last_used.get(record.key_id, 0):
                last_used[record.key_id] = record.created_us
        delay = 0.05
        for attempt in range(self._max_retries + 1):
            try:
                await self._store.insert_usage(batch)
                await self._store.touch_keys(last_used)
            except StorageError:
                if attempt == self._max_retries:
                    log.error(
                        "usage records lost after retries: %s",
                        ",".join(r.request_id for r in batch),
                    )
                    return
                log.warning("usage write failed; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                self._written += len(batch)
                return
