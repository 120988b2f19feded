"""Fixtures: simulators on 127.0.0.1 (in the test's loop or in a thread), spec validators."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest

from gridgate.simulator import RunningSimulator, SimulatorOptions, start_simulator

StartSim = Callable[..., Awaitable[RunningSimulator]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Start simulators in the test's event loop: ``await start_sim(ttft_ms=...)``."""
    running: list[RunningSimulator] = []

    async def start(**options: Any) -> RunningSimulator:
        sim = await start_simulator(SimulatorOptions(**options))
        running.append(sim)
        return sim

    yield start
    for sim in running:
        await sim.close()


@pytest.fixture
async def sim(start_sim: StartSim) -> RunningSimulator:
    return await start_sim()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@contextmanager
def simulator_in_thread(**options: Any) -> Iterator[RunningSimulator]:
    """A simulator on its own event loop in a background thread (for the sync SDK)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="simulator", daemon=True)
    thread.start()
    try:
        sim = asyncio.run_coroutine_threadsafe(
            start_simulator(SimulatorOptions(**options)), loop
        ).result(10)
        try:
            yield sim
        finally:
            asyncio.run_coroutine_threadsafe(sim.close(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def threaded_sim() -> Iterator[RunningSimulator]:
    with simulator_in_thread() as sim:
        yield sim
