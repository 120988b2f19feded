"""BackgroundTasks: named tasks, stopped together; one that fails is logged by its name."""

from __future__ import annotations

import asyncio

import pytest

from gridgate.tasks import BackgroundTasks


async def forever() -> None:
    await asyncio.Event().wait()


async def fails() -> None:
    raise RuntimeError("boom")


async def test_drain_cancels_every_task_and_waits_for_it() -> None:
    tasks = BackgroundTasks()
    tasks.start("gridgate-a", forever())
    tasks.start("gridgate-b", forever())
    assert tasks.names == ["gridgate-a", "gridgate-b"]
    running = [t for t in asyncio.all_tasks() if t.get_name().startswith("gridgate-")]
    await tasks.drain()
    assert all(t.cancelled() for t in running)
    assert tasks.names == []


async def test_a_task_that_fails_is_logged_by_name_and_drain_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    tasks.start("gridgate-broken", fails())
    tasks.start("gridgate-fine", forever())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert "background task gridgate-broken stopped" in caplog.text
    await tasks.drain()
