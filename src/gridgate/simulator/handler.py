"""What every answering endpoint does around its answer, whatever the wire.

It counts the request, tracks its task (so shutdown can cancel a request that hangs on
purpose), renders a refusal in the wire's error shape, and tells a client that went away
(``client_disconnects``) from a server that is shutting down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from gridgate.simulator.errors import SimulatorError
from gridgate.simulator.state import STATE

Answer = Callable[[], Awaitable[web.StreamResponse]]
Render = Callable[[SimulatorError], web.StreamResponse]


async def handle(request: web.Request, answer: Answer, render: Render) -> web.StreamResponse:
    """Run ``answer`` for ``request``; a :class:`SimulatorError` is answered by ``render``."""
    state = request.app[STATE]
    task = asyncio.current_task()
    if task is not None:
        state.active.add(task)
    stats = state.stats
    stats.record_request(None, request.headers, endpoint=request.path)
    stats.begin()
    try:
        return await answer()
    except SimulatorError as exc:
        stats.record_outcome(exc.status)
        return render(exc)
    except ConnectionResetError:
        stats.client_disconnects += 1
        return web.Response(status=499)  # nobody reads it: the connection is gone
    except asyncio.CancelledError:
        if not state.closing:
            stats.client_disconnects += 1
        raise
    finally:
        stats.end()
        if task is not None:
            state.active.discard(task)


def drop_connection(request: web.Request) -> web.Response:
    """Cut the connection without an answer (the ``drop`` fault on a plain request)."""
    request.app[STATE].stats.record_outcome("dropped")
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)  # never sent: the connection is gone


async def read_body(request: web.Request) -> bytes:
    """The raw body; one too large for the server is a 413 in the wire's error shape."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise SimulatorError(413, "Request exceeds the maximum allowed number of bytes.") from exc
