"""Small HTTP helpers shared by the simulator tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from multidict import CIMultiDict

from gridgate.simulator import RunningSimulator


async def post(
    http: aiohttp.ClientSession,
    sim: RunningSimulator,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, CIMultiDict[str], bytes]:
    """POST a chat completion; (status, headers, raw body)."""
    async with http.post(f"{sim.base_url}/chat/completions", json=body, headers=headers) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def post_messages(
    http: aiohttp.ClientSession,
    sim: RunningSimulator,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, CIMultiDict[str], bytes]:
    """POST to the Anthropic wire (``/v1/messages``); (status, headers, raw body)."""
    async with http.post(f"{sim.base_url}/messages", json=body, headers=headers) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def stats(http: aiohttp.ClientSession, sim: RunningSimulator) -> dict[str, Any]:
    async with http.get(f"{sim.root_url}/sim/stats") as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 5.0, interval: float = 0.02
) -> None:
    """Poll ``check`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)
