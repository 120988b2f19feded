"""A streamed answer over HTTP, for every surface: open the session, keep the line alive while
the first token is awaited, relay, and never leave the session unsettled.

While the exchange waits for a first token (failing over between offers), nothing is sent for
``upstream.keepalive_seconds``: a failure in that time is still a plain JSON error with its real
status. After that, the 200 and the SSE headers go out with an SSE comment (``: keep-alive``),
repeated at that interval, so idle proxies and load balancers keep the connection; a failure
from then on can only arrive as the surface's error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from gridgate.core.exchange.session import StreamSession
from gridgate.core.exchange.tab import Served
from gridgate.errors import GridgateError

log = logging.getLogger("gridgate.api")

KEEPALIVE = b": keep-alive\n\n"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}

Encoder = Callable[[bytes], bytes]  # canonical SSE bytes → the surface's bytes


async def relay(
    request: web.Request,
    session_opening: Coroutine[Any, Any, StreamSession],
    *,
    keepalive_seconds: float,
    headers: Callable[[Served | None], dict[str, str]],
    encoder: Callable[[StreamSession], Encoder] | None,
    error_event: Callable[[GridgateError], bytes],
    finish: Callable[[], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    """Serve one streamed answer. ``headers(served)`` are the response headers (``served`` is
    None when they leave before a supplier has answered); ``encoder`` re-encodes the canonical
    stream for the surface (None: relay it as it is); ``finish`` is awaited once the last piece
    is encoded, before it is sent (the Responses surface stores the answer there, so that a
    caller who has seen the end of the stream finds it stored).

    The session is opened in this task; only a first token slower than ``keepalive_seconds``
    starts the keep-alive task (``_KeepAlive``), so a prompt answer costs one timer handle."""
    keepalive = _KeepAlive(request, keepalive_seconds, headers) if keepalive_seconds > 0 else None
    response: web.StreamResponse | None = None
    session: StreamSession | None = None
    try:
        try:
            session = await session_opening
        except GridgateError as exc:
            response = await keepalive.stop() if keepalive is not None else None
            if response is None:
                raise  # nothing sent yet: the error middleware's JSON, with its real status
            await response.write_eof(error_event(exc))  # the 200 is gone: the failure is an event
            return response
        response = await keepalive.stop() if keepalive is not None else None
        if response is None:
            response = web.StreamResponse(headers={**SSE_HEADERS, **headers(session.served)})
            await response.prepare(request)
        encode = encoder(session) if encoder else None
        await _relay(response, session, encode, error_event, finish)
    except ConnectionError:
        # the client went away; the session (if any) settles for what was delivered
        if response is None:
            raise
    finally:
        if keepalive is not None:
            await keepalive.stop()
        if session is not None:
            await session.close()  # never relayed to its end (the client left first): settle
    return response


class _KeepAlive:
    """The 200, the SSE headers and ``: keep-alive`` comments, every ``seconds`` from the
    first ``seconds`` without a session on. If the client has gone when one is written, the
    request's task is cancelled: the exchange then releases whatever it held."""

    def __init__(
        self,
        request: web.Request,
        seconds: float,
        headers: Callable[[Served | None], dict[str, str]],
    ) -> None:
        self._request = request
        self._seconds = seconds
        self._headers = headers
        self._owner = asyncio.current_task()
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            seconds, self._start
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.response: web.StreamResponse | None = None

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            self.response = response = web.StreamResponse(
                headers={**SSE_HEADERS, **self._headers(None)}
            )
            await response.prepare(self._request)
            while True:
                await response.write(KEEPALIVE)
                await asyncio.sleep(self._seconds)
        except ConnectionError:
            if not self._stopping and self._owner is not None:
                self._owner.cancel()  # nobody is listening any more: stop waiting for a token

    async def stop(self) -> web.StreamResponse | None:
        """Stop the comments (idempotent); the response they began, if its headers went (or
        are going) out: the answer goes on in it."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        response = self.response
        return response if response is not None and response.prepared else None


async def _relay(
    response: web.StreamResponse,
    session: StreamSession,
    encode: Encoder | None,
    error_event: Callable[[GridgateError], bytes],
    finish: Callable[[], Awaitable[None]] | None,
) -> None:
    chunks = session.chunks()
    try:
        async for piece in chunks:
            out = piece
            if encode is not None:
                try:
                    out = encode(piece)
                except GridgateError as exc:  # an answer gridgate cannot re-encode: say so
                    log.exception("cannot encode a stream event")
                    await response.write_eof(error_event(exc))
                    return
            if session.ended:  # the last piece and the end of the body in one write
                if finish is not None:
                    await finish()
                await response.write_eof(out)
            elif out:
                await response.write(out)
        await response.write_eof()  # a no-op once the last piece has ended the body
    finally:
        with contextlib.suppress(Exception):
            await chunks.aclose()
