"""BackgroundTasks: the loops a process runs beside serving requests, started by name and
stopped together at shutdown.

Each loop handles its own errors and runs until cancelled. One that ends with an exception
anyway is logged at once, by name; ``drain`` cancels every task and waits for them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("gridgate")


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def names(self) -> list[str]:
        return [task.get_name() for task in self._tasks]

    def start(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(loop, name=name)
        task.add_done_callback(_log_failure)
        self._tasks.append(task)

    async def drain(self) -> None:
        """Cancel every task, then wait until each has ended."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # their failures were logged as they ended: only their ending is awaited here
        await asyncio.gather(*tasks, return_exceptions=True)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task %s stopped", task.get_name(), exc_info=exc)
