"""``POST /v1/messages``: the supplier side of Anthropic's Messages wire, plain and streamed.

It is an implementation of the wire independent of gridgate's own translation code, so a test
of gridgate's Anthropic adapter against it catches the adapter's mistakes rather than sharing
them.

- Auth: with ``api_key`` set, ``x-api-key: <key>`` (or ``Authorization: Bearer <key>``), else
  401 ``authentication_error`` "invalid x-api-key". ``anthropic-version`` is accepted, not
  required. Every answer carries a ``request-id`` header; error bodies carry it as
  ``request_id`` (:mod:`.anthropic_errors`).
- The request is read and refused as Anthropic does (:mod:`.anthropic_request`,
  :mod:`.transcript`), then planned by the OpenAI wire's planner over the normalised
  conversation: text, tool calls, stop reasons and token counts are the same facts on both
  wires (``prompt_tokens`` = input + cache creation + cache read; ``completion_tokens`` =
  ``output_tokens``). Prompt caching: :mod:`.prompt_cache`.

Faults (:mod:`.faults`) as on the OpenAI wire, in the Messages wire's shapes:

- ``status``: the Anthropic error body, its ``type`` from the status (400
  ``invalid_request_error`` … 429 ``rate_limit_error``, 500 ``api_error``, 529
  ``overloaded_error``) or from the fault's ``code``; ``retry-after`` as on the OpenAI wire;
- ``hang``, ``drop``, ``slow``, ``overrun``: as on the OpenAI wire (``after`` counts SSE
  events, ``message_start`` and ``ping`` included);
- ``malformed``: plain, half the JSON body; streamed, a cut ``content_block_delta`` event;
- ``no_usage``: every usage count 0 (:mod:`.anthropic_response` says why);
- ``error``: streamed, an ``event: error`` after ``after`` events, then the end; plain, as
  ``status``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac

from aiohttp import web

from gridgate.simulator.anthropic_errors import anthropic_error_event, anthropic_error_response
from gridgate.simulator.anthropic_ids import new_message_id, new_request_id
from gridgate.simulator.anthropic_request import MessagesRequest, read_messages_request
from gridgate.simulator.anthropic_response import ZERO_USAGE, MessageUsage, message_body
from gridgate.simulator.anthropic_stream import GARBAGE, message_events
from gridgate.simulator.completion import Completion, plan_completion
from gridgate.simulator.errors import SimulatorError
from gridgate.simulator.faults import Fault, plan_faults
from gridgate.simulator.handler import drop_connection, handle, read_body
from gridgate.simulator.prompt import read_prompt
from gridgate.simulator.request import decode_body
from gridgate.simulator.stall import stall
from gridgate.simulator.state import STATE, SimulatorState
from gridgate.simulator.stream import Pace, StreamSender, pace_for
from gridgate.simulator.transcript import read_transcript

_DEFAULT_MESSAGES = {
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of requests has exceeded your rate limit (simulated).",
    500: "Internal server error",
    529: "Overloaded",
}
_BEARER = "bearer "


async def create_message(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = new_request_id()

    def render(exc: SimulatorError) -> web.Response:
        return anthropic_error_response(exc.status, exc.message, request_id=request_id)

    return await handle(request, lambda: _answer(state, request, request_id), render)


def _check_key(state: SimulatorState, request: web.Request) -> None:
    expected = state.options.api_key
    if expected is None:
        return
    supplied = [request.headers.get("x-api-key", "")]
    authorization = request.headers.get("Authorization", "")
    if authorization[: len(_BEARER)].lower() == _BEARER:
        supplied.append(authorization[len(_BEARER) :].strip())
    if not any(key and hmac.compare_digest(key.encode(), expected.encode()) for key in supplied):
        raise SimulatorError(401, "invalid x-api-key")


async def _answer(
    state: SimulatorState, request: web.Request, request_id: str
) -> web.StreamResponse:
    _check_key(state, request)
    raw = await read_body(request)
    try:
        body = decode_body(raw)
    except SimulatorError:
        state.stats.last_request_body = raw.decode(errors="replace")
        raise
    state.stats.last_request_body = body
    ask = read_messages_request(body)
    if state.models is not None and ask.model not in state.models:
        raise SimulatorError(404, f"model: {ask.model}")
    transcript = read_transcript(ask, state.signer)
    prompt = read_prompt(transcript.messages)
    options = state.options
    plan = plan_faults(prompt.last_user_text, state.faults, ask.model, realtime=options.realtime)
    failure = plan.failure
    if failure is not None:
        early = await _early_failure(state, request, ask, failure, request_id)
        if early is not None:
            return early
        if failure.mode == "hang" and (failure.after is None or not ask.stream):
            failure = None  # hung for `seconds`, now answers normally
    chat = ask.planner_view(transcript.messages)
    length = options.default_max_tokens
    if plan.overrun is not None:  # a supplier that does not honour max tokens
        chat = dataclasses.replace(chat, max_tokens=None)
        length = plan.overrun
    completion = plan_completion(
        chat,
        prompt,
        salt=options.seed_salt,
        default_length=length,
        reasoning_length=ask.reasoning_length,
    )
    cache = state.prompt_cache.use(transcript.boundaries)
    usage = ZERO_USAGE if plan.no_usage else MessageUsage.of(completion, cache)
    pace = pace_for(options, plan)
    message_id = new_message_id()
    if ask.stream:
        return await _stream(
            state, request, ask, completion, usage, failure, pace, message_id, request_id
        )
    if pace.ttft or pace.interval:
        await asyncio.sleep(pace.ttft + completion.longest * pace.interval)
    answer = message_body(
        completion, message_id=message_id, model=ask.model, signer=state.signer, usage=usage
    )
    if failure is not None and failure.mode == "malformed":
        answer = answer[: len(answer) // 2]
    state.stats.record_outcome(200)
    return web.Response(
        body=answer, content_type="application/json", headers={"request-id": request_id}
    )


async def _early_failure(
    state: SimulatorState,
    request: web.Request,
    ask: MessagesRequest,
    failure: Fault,
    request_id: str,
) -> web.StreamResponse | None:
    """Answer the failures that happen before any answer exists; ``None``: go on."""
    if failure.mode == "status" or (failure.mode == "error" and not ask.stream):
        state.stats.record_outcome(failure.status)
        return anthropic_error_response(
            failure.status,
            _message(failure),
            request_id=request_id,
            type_=failure.code,
            headers=failure.status_headers(),
        )
    if failure.mode == "hang" and (failure.after is None or not ask.stream):
        await stall(request, failure.seconds)
        return None
    if failure.mode == "drop" and not ask.stream:
        return drop_connection(request)
    return None


async def _stream(
    state: SimulatorState,
    request: web.Request,
    ask: MessagesRequest,
    completion: Completion,
    usage: MessageUsage,
    failure: Fault | None,
    pace: Pace,
    message_id: str,
    request_id: str,
) -> web.StreamResponse:
    chunks = message_events(
        completion, message_id=message_id, model=ask.model, signer=state.signer, usage=usage
    )
    error_event = b""
    if failure is not None and failure.mode == "error":
        error_event = anthropic_error_event(
            failure.status, _message(failure), request_id=request_id, type_=failure.code
        )
    sender = StreamSender(
        request,
        pace,
        failure,
        state.stats,
        headers={"request-id": request_id},
        garbage=GARBAGE,
        error_event=error_event,
    )
    return await sender.run(chunks)


def _message(failure: Fault) -> str:
    return failure.message or _DEFAULT_MESSAGES.get(
        failure.status, f"Simulated error {failure.status}."
    )
