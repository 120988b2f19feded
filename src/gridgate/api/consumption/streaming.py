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
    caller who has seen the end of the stream finds it stored)."""
    opening = asyncio.ensure_future(session_opening)
    response: web.StreamResponse | None = None
    session: StreamSession | None = None
    try:
        if keepalive_seconds > 0:
            done, _ = await asyncio.wait({opening}, timeout=keepalive_seconds)
            if not done:
                response = web.StreamResponse(headers={**SSE_HEADERS, **headers(None)})
                await response.prepare(request)
                while not done:
                    await response.write(KEEPALIVE)
                    done, _ = await asyncio.wait({opening}, timeout=keepalive_seconds)
        if response is None:
            session = await opening  # a failure before any byte: the error middleware's JSON
            response = web.StreamResponse(headers={**SSE_HEADERS, **headers(session.served)})
            await response.prepare(request)
        else:
            try:
                session = opening.result()
            except GridgateError as exc:  # the 200 is gone: the failure is an event
                await response.write_eof(error_event(exc))
                return response
        encode = encoder(session) if encoder else None
        await _relay(response, session, encode, error_event, finish)
    except ConnectionError:
        # the client went away; the session (if any) settles for what was delivered
        if response is None:
            raise
    finally:
        if not opening.done():
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
        if (
            session is None
            and opening.done()
            and not opening.cancelled()
            and opening.exception() is None
        ):
            session = opening.result()  # opened as the caller left
        if session is not None:
            await session.close()  # never relayed to its end (the client left first): settle
    return response


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
