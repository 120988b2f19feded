"""POST /v1/chat/completions: authenticate, parse, hand to the exchange, relay."""

from __future__ import annotations

from aiohttp import web

from gridgate.api.consumption.rate_headers import on_errors_too
from gridgate.api.consumption.streaming import relay
from gridgate.api.errors import REQUEST_ID, request_id_headers
from gridgate.core.accounts.auth import presented_key
from gridgate.core.exchange.exchange import Served
from gridgate.errors import GridgateError
from gridgate.protocol.openai_chat import decode_chat_request
from gridgate.state import STATE, AppState
from gridgate.web.request_body import read_body


def _served_headers(state: AppState, request: web.Request, served: Served | None) -> dict[str, str]:
    headers = request_id_headers(request)
    if served is not None and state.settings.server.expose_supplier:
        headers["x-gridgate-supplier"] = served.supplier
    return headers


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = request[REQUEST_ID]
    headers = request.headers
    key = await state.auth.authenticate(
        presented_key(headers.get("Authorization"), headers.get("x-api-key"), native="bearer")
    )
    chat = decode_chat_request(await read_body(request, state.settings.server.max_body_bytes))
    limits: dict[str, str] = {}  # the rate-limit headers, filled in at admission
    with on_errors_too(limits):
        if not chat.is_stream:
            completion, served = await state.exchange.complete(key, chat, request_id, limits)
            return web.Response(
                body=completion.body,
                content_type="application/json",
                headers={**limits, **_served_headers(state, request, served)},
            )
        return await relay(
            request,
            state.exchange.open_stream(key, chat, request_id, limits),
            keepalive_seconds=state.settings.upstream.keepalive_seconds,
            headers=lambda served: {**limits, **_served_headers(state, request, served)},
            encoder=None,
            error_event=_error_event,
        )


def _error_event(error: GridgateError) -> bytes:
    return b"data: " + error.render() + b"\n\n"
