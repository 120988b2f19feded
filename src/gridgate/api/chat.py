"""POST /v1/chat/completions: authenticate, parse, hand to the exchange, relay."""

from __future__ import annotations

import contextlib

from aiohttp import web

from gridgate.api.errors import REQUEST_ID
from gridgate.api.state import STATE, AppState
from gridgate.core.exchange import Served
from gridgate.core.keys import bearer_token
from gridgate.protocol.openai_chat import decode_chat_request

_SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def _served_headers(state: AppState, request_id: str, served: Served) -> dict[str, str]:
    headers = {"x-request-id": request_id}
    if state.settings.server.expose_supplier:
        headers["x-gridgate-supplier"] = served.supplier
    return headers


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = request[REQUEST_ID]
    key = await state.auth.authenticate(bearer_token(request.headers.get("Authorization")))
    chat = decode_chat_request(await request.read())
    if not chat.is_stream:
        completion, served = await state.exchange.complete(key, chat, request_id)
        return web.Response(
            body=completion.body,
            content_type="application/json",
            headers=_served_headers(state, request_id, served),
        )
    session = await state.exchange.open_stream(key, chat, request_id)
    response = web.StreamResponse(
        headers={**_SSE_HEADERS, **_served_headers(state, request_id, session.served)}
    )
    chunks = session.chunks()
    try:
        await response.prepare(request)  # the headers leave with the first piece
        async for piece in chunks:
            if session.ended:  # the last piece and the end of the body in one write
                await response.write_eof(piece)
            else:
                await response.write(piece)
        await response.write_eof()  # a no-op once the last piece has ended the body
    except ConnectionError:
        pass  # the client went away; the session settles for what was delivered
    finally:
        with contextlib.suppress(Exception):
            await chunks.aclose()
    return response
