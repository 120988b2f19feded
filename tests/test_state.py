"""build_state: a process's state is taken apart in the order its parts depend on — the
background tasks stop first, the usage writer drains before the leases and the store close,
and the store closes last."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from gridgate.core.billing.leases import LeaseBook
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.clock import SystemClock
from gridgate.core.limits.guard import RateGuard
from gridgate.metrics import Metrics
from gridgate.settings import Settings
from gridgate.state import build_state
from gridgate.storage.limiter.memory import MemoryLimiter
from gridgate.storage.sql import SqlStore
from gridgate.tasks import BackgroundTasks


async def test_the_state_closes_in_reverse_dependency_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def record(cls: type, method: str, label: str) -> None:
        original = getattr(cls, method)
        if asyncio.iscoroutinefunction(original):

            async def traced(self: object) -> None:
                closed.append(label)
                await original(self)

            monkeypatch.setattr(cls, method, traced)
        else:
            monkeypatch.setattr(cls, method, lambda self: (closed.append(label), original(self)))

    record(BackgroundTasks, "drain", "tasks")
    record(UsageWriter, "close", "usage")
    record(RateGuard, "close", "guard")
    record(MemoryLimiter, "close", "limiter")
    record(Metrics, "flush", "metrics")
    record(LeaseBook, "close", "leases")
    record(aiohttp.ClientSession, "close", "http")
    record(SqlStore, "close", "store")
    settings = Settings(data_dir=str(tmp_path))
    async with build_state(settings, SystemClock(), {}, openapi=b"{}") as state:
        assert state.openapi == b"{}"
        closed.clear()
    assert closed == [
        "tasks",
        "usage",
        "guard",
        "limiter",  # the requests' limiter, closed by the guard
        "limiter",  # the login limiter
        "metrics",
        "leases",
        "http",
        "store",
    ]
