"""``POST /v1/responses``: the supplier side of OpenAI's Responses wire, plain and streamed.

Like the Messages endpoint, it is an implementation of the wire independent of gridgate's own
translation code (:mod:`.responses_request` reads the request, :mod:`.responses_answer` writes
the answer), planned by the OpenAI wire's planner, so the same conversation gets the same
text, tool calls and token counts on all three wires. Auth and error bodies are the OpenAI
wire's (``Authorization: Bearer``, ``{"error": {...}}``).

Faults (:mod:`.faults`) as on the other wires, in the Responses wire's shapes:

- ``status``: the OpenAI error body with ``retry-after`` as on the chat wire;
- ``hang``, ``drop``, ``slow``, ``overrun``: as on the chat wire (``after`` counts SSE events,
  ``response.created`` and ``response.in_progress`` included);
- ``malformed``: plain, half the JSON body; streamed, a cut ``response.output_text.delta``;
- ``no_usage``: no ``usage`` in the response (plain and in ``response.completed``);
- ``error``: streamed, an ``event: error`` after ``after`` events, then the end (no
  ``response.completed``); plain, as ``status``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from aiohttp import web

from gridgate.simulator.chat import check_auth
from gridgate.simulator.completion import plan_completion, reasoning_tokens
from gridgate.simulator.errors import SimulatorError, error_response
from gridgate.simulator.faults import Fault, plan_faults
from gridgate.simulator.handler import drop_connection, handle, read_body
from gridgate.simulator.prompt import read_prompt
from gridgate.simulator.request import decode_body
from gridgate.simulator.responses_answer import (
    GARBAGE,
    ResponseShape,
    error_event,
    response_body,
    response_events,
)
from gridgate.simulator.responses_request import ResponsesRequest, read_responses_request
from gridgate.simulator.stall import stall
from gridgate.simulator.state import STATE, SimulatorState
from gridgate.simulator.stream import StreamSender, pace_for

_DEFAULT_MESSAGES = {
    429: "Rate limit reached for requests (simulated). Please try again later.",
    500: "The server had an error while processing your request (simulated).",
    502: "Bad gateway (simulated).",
    503: "The engine is currently overloaded, please try again later (simulated).",
    504: "Gateway timeout (simulated).",
}


async def create_response(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    return await handle(request, lambda: _answer(state, request), _render)


def _render(exc: SimulatorError) -> web.Response:
    return exc.response()


async def _answer(state: SimulatorState, request: web.Request) -> web.StreamResponse:
    check_auth(state, request)
    raw = await read_body(request)
    try:
        body = decode_body(raw)
    except SimulatorError:
        state.stats.last_request_body = raw.decode(errors="replace")
        raise
    state.stats.last_request_body = body
    ask = read_responses_request(body, state.signer)
    chat = ask.chat
    if state.models is not None and chat.model not in state.models:
        raise SimulatorError(
            404,
            f"The model `{chat.model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    prompt = read_prompt(chat.messages)
    options = state.options
    plan = plan_faults(prompt.last_user_text, state.faults, chat.model, realtime=options.realtime)
    failure = plan.failure
    if failure is not None:
        early = await _early_failure(state, request, ask, failure)
        if early is not None:
            return early
        if failure.mode == "hang" and (failure.after is None or not chat.stream):
            failure = None  # hung for `seconds`, now answers normally
    length = options.default_max_tokens
    if plan.overrun is not None:  # a supplier that does not honour max tokens
        chat = dataclasses.replace(chat, max_tokens=None)
        length = plan.overrun
    completion = plan_completion(
        chat,
        prompt,
        salt=options.seed_salt,
        default_length=length,
        reasoning_length=reasoning_tokens(chat.reasoning_effort),
    )
    shape = ResponseShape(
        ask=ask,
        completion=completion,
        signer=state.signer,
        created_at=int(time.time()),
        usage=not plan.no_usage,
    )
    pace = pace_for(options, plan)
    if chat.stream:
        error = b""
        if failure is not None and failure.mode == "error":
            error = error_event(failure.after or 0, failure.status, _message(failure), failure.code)
        sender = StreamSender(
            request, pace, failure, state.stats, garbage=GARBAGE, error_event=error
        )
        return await sender.run(response_events(shape))
    if pace.ttft or pace.interval:
        await asyncio.sleep(pace.ttft + completion.longest * pace.interval)
    answer = response_body(shape)
    if failure is not None and failure.mode == "malformed":
        answer = answer[: len(answer) // 2]
    state.stats.record_outcome(200)
    return web.Response(body=answer, content_type="application/json")


async def _early_failure(
    state: SimulatorState, request: web.Request, ask: ResponsesRequest, failure: Fault
) -> web.StreamResponse | None:
    """Answer the failures that happen before any answer exists; ``None``: go on."""
    stream = ask.chat.stream
    if failure.mode == "status" or (failure.mode == "error" and not stream):
        state.stats.record_outcome(failure.status)
        return error_response(
            failure.status, _message(failure), code=failure.code, headers=failure.status_headers()
        )
    if failure.mode == "hang" and (failure.after is None or not stream):
        await stall(request, failure.seconds)
        return None
    if failure.mode == "drop" and not stream:
        return drop_connection(request)
    return None


def _message(failure: Fault) -> str:
    return failure.message or _DEFAULT_MESSAGES.get(
        failure.status, f"Simulated error {failure.status}."
    )
