"""Waiting on purpose (``hang`` faults): until a deadline, or until the client goes away."""

from __future__ import annotations

import asyncio

from aiohttp import web

_POLL = 0.05
"""How often a stall checks whether its client is still there (seconds)."""


async def stall(request: web.Request, seconds: float | None) -> None:
    """Sleep ``seconds`` (``None``: forever); raise ``ConnectionResetError`` if the client leaves.

    The server also cancels the handler when the client disconnects (handler cancellation);
    the polling covers applications run without it.
    """
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client went away during a hang")
        left = _POLL if deadline is None else min(_POLL, deadline - loop.time())
        if left <= 0:
            return
        await asyncio.sleep(left)
