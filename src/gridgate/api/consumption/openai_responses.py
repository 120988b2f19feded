"""POST /v1/responses: the OpenAI Responses surface.

The same exchange as the other two surfaces underneath (keys, instruments, routing, ``provider``
preferences, holds, rate limits, settlement, usage records, metrics): the body is validated
against OpenAI's ``CreateResponse`` (``protocol/openai_responses/request.py``), translated into
the canonical request (``to_chat``), served by ``state.exchange``, and the canonical answer
re-encoded as a ``Response`` or as the Responses event stream. Errors are OpenAI's envelope.

Hosted tools (``web_search``, ``file_search``, ``code_interpreter``, ``computer_use_preview``,
``image_generation``, ``local_shell``, ``mcp``, custom tools …): the exchange's offers run
function tools only, so a hosted tool is not offered to the model: it is dropped, and the answer
names every dropped tool in the header ``x-gridgate-dropped-tools`` (``web_search, mcp:label``:
the type, with the tool's name or MCP ``server_label`` where it has one). The ``tools`` echoed on
the response are still the tools as sent. A ``tool_choice`` that *requires* a dropped tool (one
naming a hosted tool) is refused: 400 naming ``tool_choice``; ``required`` with only hosted
tools is refused by the request's validation (422 naming ``tool_choice``). This keeps clients
that send a hosted tool beside their functions (Codex sends ``web_search``) working, without
pretending the hosted tool ran.

Stored responses (``store``, default true): an answer that ends ``completed`` or ``incomplete``
is saved (this turn's input items, the output items, the whole response) before its last byte
is sent, so a caller that has seen the end finds it stored; a failed or cancelled one is not
kept, nor anything when ``store`` is false. ``previous_response_id`` prepends the stored
conversation (the chain's input and output items) to ``input``: the hold is sized from the
whole prompt. The stored output items keep each reasoning item's signed blocks (sealed as
``encrypted_content`` would carry them, even when the caller did not ask for that), so that the
next turn gives them back to the supplier: an Anthropic-format supplier with thinking on refuses
a tool result whose call is not preceded by its signed thinking. What ``GET`` answers is the
response as answered. Another account's, an expired or an unknown id answers 404 naming
``previous_response_id``. Saving is after settlement; if the store fails the answer is still
given (it has been paid for) and the failure logged, without content.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Final

import msgspec
from aiohttp import web

from gridgate.api.consumption.headers import answer_headers
from gridgate.api.consumption.idempotency import IDEMPOTENCY_KEY, Streamed, Whole, served_once
from gridgate.api.consumption.streaming import Encoder, relay
from gridgate.api.errors import REQUEST_ID
from gridgate.core.accounts.auth import presented_key
from gridgate.core.exchange.session import StreamSession
from gridgate.core.exchange.tab import Served, Tab
from gridgate.errors import BadRequest, GridgateError
from gridgate.protocol.openai_responses.from_chat import response_from_completion
from gridgate.protocol.openai_responses.items import InputItem
from gridgate.protocol.openai_responses.output import ResponseContext, response_context
from gridgate.protocol.openai_responses.request import ResponsesRequest, decode_responses_request
from gridgate.protocol.openai_responses.stream import ResponseStreamEncoder, error_event
from gridgate.protocol.openai_responses.to_chat import HostedTool, Translation, to_chat_request
from gridgate.state import STATE, AppState
from gridgate.storage.records import KeyRecord
from gridgate.web.request_body import read_body

log = logging.getLogger("gridgate.api")

DROPPED_TOOLS_HEADER: Final = "x-gridgate-dropped-tools"
_UNSAFE: Final = re.compile(r"[^\x20-\x7e]")
_KEPT_STATUSES: Final = frozenset({"completed", "incomplete"})
_item_decoder: Final = msgspec.json.Decoder(InputItem)
_encode: Final = msgspec.json.Encoder().encode


async def responses(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = request[REQUEST_ID]
    headers = request.headers
    key = await state.auth.authenticate(
        presented_key(headers.get("Authorization"), headers.get("x-api-key"), native="bearer")
    )
    body = await read_body(request, state.settings.server.max_body_bytes)
    native = decode_responses_request(body)
    translation = to_chat_request(native, await _prior(state, key, native))
    extra = _dropped_tools(translation)
    chat = translation.request
    context = response_context(
        native, translation, response_id=new_response_id(), created_at=_now(state)
    )
    if native.stores and not state.responses.enabled:  # retention_days = 0: nothing is kept
        context = replace(context, shell=msgspec.structs.replace(context.shell, store=False))
    turn = _Turn(state, key, native, context)
    with _named_as_responses():
        tab = state.exchange.open_tab(key, chat, request_id)
    tab.mark("/v1/responses", body)

    def answer(served: Served | None) -> dict[str, str]:
        return {**answer_headers(state, request, served, tab.limits), **extra}

    once = headers.get(IDEMPOTENCY_KEY)
    if once is not None:
        work = (
            _streamed(state, tab, turn, answer)
            if chat.is_stream
            else Whole(lambda: _whole(state, tab, turn, answer))
        )
        return await served_once(request, state.idempotency, key, once, body, work)
    if not chat.is_stream:
        return await _whole(state, tab, turn, answer)
    return await relay(
        request,
        _opening(state.exchange.open_stream(tab)),
        keepalive_seconds=state.settings.upstream.keepalive_seconds,
        headers=answer,
        encoder=turn.encoder,
        error_event=turn.error_event,
        finish=turn.finish,
    )


async def _whole(
    state: AppState, tab: Tab, turn: _Turn, answer: Callable[[Served | None], dict[str, str]]
) -> web.Response:
    with _named_as_responses():
        completion, served = await state.exchange.complete(tab)
    context = turn.context
    try:
        body = response_from_completion(completion.body, context, completed_at=_now(state))
    except GridgateError as exc:
        tab.stamp(exc)  # the error that replaces the answer carries its rate-limit headers
        raise
    if context.shell.store:
        await turn.save(body, turn.sealed_output(completion.body, body))
    return web.Response(body=body, content_type="application/json", headers=answer(served))


def _streamed(
    state: AppState, tab: Tab, turn: _Turn, answer: Callable[[Served | None], dict[str, str]]
) -> Streamed:
    return Streamed(
        opening=lambda: _opening(state.exchange.open_stream(tab)),
        headers=answer,
        encoder=turn.encoder,
        error_event=turn.error_event,
        keepalive_seconds=state.settings.upstream.keepalive_seconds,
        finish=turn.finish,
    )


# the canonical request's fields the exchange names in its refusals, as this surface names them
_PARAMS: Final = {
    "messages": "input",
    "max_completion_tokens": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
}


@contextmanager
def _named_as_responses() -> Iterator[None]:
    """An exchange refusal that names a canonical field (``messages``: the prompt over the
    instrument's input limit …) names the Responses request's own instead (``input``)."""
    try:
        yield
    except GridgateError as exc:
        named = _PARAMS.get(exc.param or "")
        if named is not None and exc.param is not None:
            if exc.message.startswith(exc.param + ":"):
                exc.message = named + exc.message[len(exc.param) :]
            exc.param = named
        raise


async def _opening(opening: Coroutine[Any, Any, StreamSession]) -> StreamSession:
    with _named_as_responses():
        return await opening


def new_response_id() -> str:
    """``resp_`` and 24 random bytes in hex: unique, and not to be guessed (a stored response
    is found by its id, within its account)."""
    return "resp_" + secrets.token_hex(24)


def _now(state: AppState) -> int:
    return state.clock.now_us() // 1_000_000


class _Turn:
    """One request's stream encoder and what is stored of it."""

    def __init__(
        self, state: AppState, key: KeyRecord, native: ResponsesRequest, context: ResponseContext
    ) -> None:
        self._state = state
        self._key = key
        self._native = native
        self._context = context
        self._stream: ResponseStreamEncoder | None = None

    @property
    def context(self) -> ResponseContext:
        return self._context

    def encoder(self, session: StreamSession) -> Encoder:
        state = self._state
        self._stream = ResponseStreamEncoder(self._context, lambda: state.clock.now_us() / 1e6)
        return self._stream.feed

    def error_event(self, error: GridgateError) -> bytes:
        """Before the stream has begun: an ``error`` event; after: ``response.failed``."""
        if self._stream is None:
            return error_event(error)
        return self._stream.fail(error)

    async def finish(self) -> None:
        stream = self._stream
        if stream is None or stream.response is None or not self._context.shell.store:
            return
        output: list[dict[str, Any]] = msgspec.to_builtins(stream.response.output)
        for index, sealed in stream.sealed.items():
            output[index]["encrypted_content"] = sealed
        await self.save(_encode(stream.response), output)

    def sealed_output(self, completion: bytes, body: bytes) -> list[dict[str, Any]]:
        """The answer's output items as stored: with every reasoning item's signed blocks
        sealed in ``encrypted_content`` even when the caller did not ask for them, so that a
        turn continuing it by ``previous_response_id`` gives them back to the supplier (an
        Anthropic-format supplier refuses a tool result after unsigned thinking)."""
        answered: dict[str, Any] = msgspec.json.decode(body)
        output: list[dict[str, Any]] = answered.get("output") or []
        if self._context.seal_reasoning or not any(i["type"] == "reasoning" for i in output):
            return output  # as answered: nothing to seal, or sealed already
        sealing = replace(self._context, seal_reasoning=True)
        completed_at = answered.get("completed_at") or 0
        resealed = response_from_completion(completion, sealing, completed_at=completed_at)
        sealed: list[dict[str, Any]] = msgspec.json.decode(resealed)["output"]
        return sealed

    async def save(self, body: bytes, output: list[dict[str, Any]]) -> None:
        """Keep a completed or incomplete answer when the request asked to store it."""
        service = self._state.responses
        if not self._context.shell.store:
            return
        response: dict[str, Any] = msgspec.json.decode(body)
        if response.get("status") not in _KEPT_STATUSES:
            return
        previous = self._native.previous_response_id
        try:
            await service.save(
                caller=self._key,
                response_id=self._context.shell.id,
                previous_response_id=previous if isinstance(previous, str) else None,
                input_items=input_items(self._native, self._context.suffix),
                output_items=[_encode(item) for item in output],
                response=body,
            )
        except Exception as exc:  # the answer is paid for and goes out; the failure is logged
            # by its type only: a database error's text can quote the stored content
            log.error("could not store response %s: %s", self._context.shell.id, type(exc).__name__)


async def _prior(state: AppState, key: KeyRecord, native: ResponsesRequest) -> list[InputItem]:
    """The stored conversation ``previous_response_id`` continues (empty without one)."""
    previous = native.previous_response_id
    if not isinstance(previous, str):
        return []
    stored = await state.responses.conversation(key.account_id, previous)
    return [_item_decoder.decode(item) for item in stored]


_ID_PREFIXES: Final = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def input_items(native: ResponsesRequest, suffix: str) -> list[bytes]:
    """This turn's input items as JSON objects, each with its ``type``, an ``id`` (the one
    given, else ``<kind>_<response suffix>_in<i>``), and a message's content as parts."""
    given = native.input
    items: Sequence[InputItem]
    if isinstance(given, str):
        items = [InputItem(role="user", content=given)]
    else:
        items = given if isinstance(given, list) else []
    out: list[bytes] = []
    for i, item in enumerate(items):
        entry: dict[str, Any] = msgspec.to_builtins(item)
        entry["type"] = item.type
        if not isinstance(item.id, str):
            entry["id"] = f"{_ID_PREFIXES.get(item.type, 'item')}_{suffix}_in{i}"
        if item.type == "message" and isinstance(item.content, str):
            part = "output_text" if item.role == "assistant" else "input_text"
            entry["content"] = [{"type": part, "text": item.content}]
        out.append(_encode(entry))
    return out


def _dropped_tools(translation: Translation) -> dict[str, str]:
    """The header naming the hosted tools not offered to the model; refuses a ``tool_choice``
    that requires one of them."""
    hosted = translation.hosted_tools
    if translation.hosted_tool_choice is not None:
        raise BadRequest(
            f"tool_choice requires the hosted tool {translation.hosted_tool_choice!r}, which "
            "this exchange cannot run: its offers run function tools only",
            param="tool_choice",
            code="unsupported_tool_choice",
        )
    return {DROPPED_TOOLS_HEADER: _names(hosted)} if hosted else {}


def _names(hosted: Sequence[HostedTool]) -> str:
    """``type`` or ``type:name`` for each, as a header value can carry them: printable ASCII
    (anything else becomes ``?``), each name cut at 64 characters."""
    named = (tool.type if tool.name is None else f"{tool.type}:{tool.name}" for tool in hosted)
    return ", ".join(_UNSAFE.sub("?", name[:64]) for name in named)
