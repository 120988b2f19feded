"""POST /v1/chat/completions: authenticate, parse, hand to the exchange, relay."""

from __future__ import annotations

from aiohttp import web

from gridgate.api.consumption.headers import answer_headers
from gridgate.api.consumption.idempotency import IDEMPOTENCY_KEY, Streamed, Whole, served_once
from gridgate.api.consumption.streaming import relay
from gridgate.api.errors import REQUEST_ID
from gridgate.core.accounts.auth import presented_key
from gridgate.core.exchange.tab import Tab
from gridgate.protocol.openai_chat import decode_chat_request
from gridgate.protocol.openai_stream import error_event
from gridgate.state import STATE, AppState
from gridgate.web.request_body import read_body


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = request[REQUEST_ID]
    headers = request.headers
    key = await state.auth.authenticate(
        presented_key(headers.get("Authorization"), headers.get("x-api-key"), native="bearer")
    )
    body = await read_body(request, state.settings.server.max_body_bytes)
    chat = decode_chat_request(body)
    tab = state.exchange.open_tab(key, chat, request_id)
    tab.mark("/v1/chat/completions", body)
    once = headers.get(IDEMPOTENCY_KEY)
    if once is not None:
        work = (
            _streamed(state, request, tab)
            if chat.is_stream
            else Whole(lambda: _whole(state, request, tab))
        )
        return await served_once(request, state.idempotency, key, once, body, work)
    if not chat.is_stream:
        return await _whole(state, request, tab)
    return await relay(
        request,
        state.exchange.open_stream(tab),
        keepalive_seconds=state.settings.upstream.keepalive_seconds,
        headers=lambda served: answer_headers(state, request, served, tab.limits),
        encoder=None,
        error_event=error_event,
    )


async def _whole(state: AppState, request: web.Request, tab: Tab) -> web.Response:
    completion, served = await state.exchange.complete(tab)
    return web.Response(
        body=completion.body,
        content_type="application/json",
        headers=answer_headers(state, request, served, tab.limits),
    )


def _streamed(state: AppState, request: web.Request, tab: Tab) -> Streamed:
    return Streamed(
        opening=lambda: state.exchange.open_stream(tab),
        headers=lambda served: answer_headers(state, request, served, tab.limits),
        encoder=None,
        error_event=error_event,
        keepalive_seconds=state.settings.upstream.keepalive_seconds,
    )
