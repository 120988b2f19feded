"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages surface.

The same exchange as the OpenAI surface underneath: the body is validated against Anthropic's
schema, translated into the canonical request, served (routing, hold, settle, usage record), and
the canonical answer translated back into Anthropic's ``message`` or event stream. Keys come in
``x-api-key`` (what the ``anthropic`` SDK sends) or ``Authorization: Bearer`` (what Claude Code
sends with ``ANTHROPIC_AUTH_TOKEN``).
"""

from __future__ import annotations

import msgspec
from aiohttp import web
from multidict import CIMultiDictProxy

from gridgate.api.consumption.headers import answer_headers
from gridgate.api.consumption.idempotency import IDEMPOTENCY_KEY, Streamed, Whole, served_once
from gridgate.api.consumption.streaming import relay
from gridgate.api.errors import REQUEST_ID, request_id_headers
from gridgate.core.accounts.auth import presented_key
from gridgate.core.exchange.tab import Tab
from gridgate.echo import capped
from gridgate.errors import GridgateError, Unauthorized, UnknownInstrument
from gridgate.protocol.anthropic.from_chat import (
    MessageStreamEncoder,
    error_event,
    message_from_completion,
)
from gridgate.protocol.anthropic.request import MessagesRequest, decode_messages_request
from gridgate.protocol.anthropic.to_chat import to_chat_request
from gridgate.protocol.tokens import measure_prompt
from gridgate.state import STATE, AppState
from gridgate.web.request_body import read_body


def api_key(headers: CIMultiDictProxy[str]) -> str:
    """The key from ``x-api-key``, else from ``Authorization: Bearer``."""
    key = presented_key(headers.get("Authorization"), headers.get("x-api-key"), native="x-api-key")
    if not key:
        raise Unauthorized(
            "missing API key: send it as 'x-api-key: <key>' (or 'Authorization: Bearer <key>')",
            code="missing_api_key",
        )
    return key


async def messages(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = request[REQUEST_ID]
    key = await state.auth.authenticate(api_key(request.headers))
    body = await read_body(request, state.settings.server.max_body_bytes)
    native = decode_messages_request(body)
    chat = to_chat_request(native)
    tab = state.exchange.open_tab(key, chat, request_id)
    tab.mark("/v1/messages", body)
    once = request.headers.get(IDEMPOTENCY_KEY)
    if once is not None:
        work = (
            _streamed(state, request, tab, native)
            if chat.is_stream
            else Whole(lambda: _whole(state, request, tab, native))
        )
        return await served_once(request, state.idempotency, key, once, body, work)
    if not chat.is_stream:
        return await _whole(state, request, tab, native)
    return await relay(
        request,
        state.exchange.open_stream(tab),
        keepalive_seconds=state.settings.upstream.keepalive_seconds,
        headers=lambda served: answer_headers(state, request, served, tab.limits, anthropic=True),
        encoder=lambda session: MessageStreamEncoder(native.model, session.prompt_estimate).feed,
        error_event=error_event,
    )


async def _whole(
    state: AppState, request: web.Request, tab: Tab, native: MessagesRequest
) -> web.Response:
    completion, served = await state.exchange.complete(tab)
    try:
        body = message_from_completion(completion.body, model=native.model)
    except GridgateError as exc:
        tab.stamp(exc)  # the error that replaces the answer carries its rate-limit headers
        raise
    return web.Response(
        body=body,
        content_type="application/json",
        headers=answer_headers(state, request, served, tab.limits, anthropic=True),
    )


def _streamed(state: AppState, request: web.Request, tab: Tab, native: MessagesRequest) -> Streamed:
    return Streamed(
        opening=lambda: state.exchange.open_stream(tab),
        headers=lambda served: answer_headers(state, request, served, tab.limits, anthropic=True),
        encoder=lambda session: MessageStreamEncoder(native.model, session.prompt_estimate).feed,
        error_event=error_event,
        keepalive_seconds=state.settings.upstream.keepalive_seconds,
    )


async def count_tokens(request: web.Request) -> web.Response:
    """gridgate's own estimate of the prompt's input tokens (the figure holds are sized from):
    UTF-8 bytes of the text / 4, plus per-message and per-image overheads. Suppliers' tokenizers
    differ; the metered count of a served request is the supplier's."""
    state = request.app[STATE]
    await state.auth.authenticate(api_key(request.headers))
    native = decode_messages_request(
        await read_body(request, state.settings.server.max_body_bytes), count_tokens=True
    )
    chat = to_chat_request(native)
    if state.catalog.get().instrument(chat.model) is None:
        raise UnknownInstrument(
            f"model {capped(chat.model)!r} is not an instrument of this exchange; "
            "GET /v1/models lists them",
            param="model",
        )
    estimate = measure_prompt(chat).estimate
    return web.Response(
        body=msgspec.json.encode({"input_tokens": estimate}),
        content_type="application/json",
        headers=request_id_headers(request, anthropic=True),
    )
