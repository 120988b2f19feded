"""``POST /v1/chat/completions`` and ``GET /v1/models``: the supplier side of the wire."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import os
import time
from typing import Any

from aiohttp import web

from gridgate.simulator.completion import Completion, plan_completion, reasoning_tokens
from gridgate.simulator.errors import SimulatorError, error_body, error_response
from gridgate.simulator.faults import Fault, FaultPlan, plan_faults
from gridgate.simulator.handler import drop_connection, handle
from gridgate.simulator.prompt import read_prompt
from gridgate.simulator.request import ChatRequest, decode_body, read_request
from gridgate.simulator.response import completion_body
from gridgate.simulator.stall import stall
from gridgate.simulator.state import STATE, SimulatorState
from gridgate.simulator.stream import ChunkEncoder, Pace, StreamSender, pace_for, stream_chunks

_DEFAULT_MESSAGES = {
    429: "Rate limit reached for requests (simulated). Please try again later.",
    500: "The server had an error while processing your request (simulated).",
    502: "Bad gateway (simulated).",
    503: "The engine is currently overloaded, please try again later (simulated).",
    504: "Gateway timeout (simulated).",
}
_MODEL_CREATED = 1_700_000_000


def check_auth(state: SimulatorState, request: web.Request) -> None:
    expected = state.options.api_key
    if expected is None:
        return
    supplied = request.headers.get("Authorization", "")
    token = supplied[7:] if supplied[:7].lower() == "bearer " else ""
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        shown = f"{token[:3]}...{token[-4:]}" if len(token) > 8 else "***"
        message = (
            f"Incorrect API key provided: {shown}."
            if token
            else "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth."
        )
        raise SimulatorError(401, message, code="invalid_api_key")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    return await handle(request, lambda: _answer(state, request), _render)


def _render(exc: SimulatorError) -> web.Response:
    return exc.response()


async def _answer(state: SimulatorState, request: web.Request) -> web.StreamResponse:
    check_auth(state, request)
    raw = await request.read()
    try:
        body = decode_body(raw)
    except SimulatorError:
        state.stats.last_request_body = raw.decode(errors="replace")
        raise
    state.stats.last_request_body = body
    chat = read_request(body)
    if state.models is not None and chat.model not in state.models:
        raise SimulatorError(
            404,
            f"The model `{chat.model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    prompt = read_prompt(chat.messages)
    plan = plan_faults(
        prompt.last_user_text, state.faults, chat.model, realtime=state.options.realtime
    )
    failure = plan.failure
    if failure is not None:
        early = await _early_failure(state, request, chat, failure)
        if early is not None:
            return early
        if failure.mode == "hang" and (failure.after is None or not chat.stream):
            failure = None  # hung for `seconds`, now answers normally
    options = state.options
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
    pace = pace_for(options, plan)
    completion_id = f"chatcmpl-{os.urandom(12).hex()}"
    created = int(time.time())
    if chat.stream:
        return await _stream(
            state, request, chat, completion, plan, failure, pace, completion_id, created
        )
    if pace.ttft or pace.interval:
        await asyncio.sleep(pace.ttft + completion.longest * pace.interval)
    body = completion_body(
        completion,
        completion_id=completion_id,
        created=created,
        model=chat.model,
        fingerprint=state.fingerprint,
        logprobs=chat.logprobs,
        usage=not plan.no_usage,
    )
    if failure is not None and failure.mode == "malformed":
        body = body[: len(body) // 2]
    state.stats.record_outcome(200)
    return web.Response(body=body, content_type="application/json")


async def _early_failure(
    state: SimulatorState, request: web.Request, chat: ChatRequest, failure: Fault
) -> web.StreamResponse | None:
    """Answer the failures that happen before any answer exists; ``None``: go on."""
    if failure.mode == "status" or (failure.mode == "error" and not chat.stream):
        state.stats.record_outcome(failure.status)
        return error_response(
            failure.status, _message(failure), code=failure.code, headers=failure.status_headers()
        )
    if failure.mode == "hang" and (failure.after is None or not chat.stream):
        await stall(request, failure.seconds)
        return None
    if failure.mode == "drop" and not chat.stream:
        return drop_connection(request)
    return None


async def _stream(
    state: SimulatorState,
    request: web.Request,
    chat: ChatRequest,
    completion: Completion,
    plan: FaultPlan,
    failure: Fault | None,
    pace: Pace,
    completion_id: str,
    created: int,
) -> web.StreamResponse:
    encoder = ChunkEncoder(
        completion_id=completion_id,
        created=created,
        model=chat.model,
        fingerprint=state.fingerprint,
        include_usage=chat.include_usage,
    )
    chunks = stream_chunks(
        completion, encoder, logprobs=chat.logprobs, usage=chat.include_usage and not plan.no_usage
    )
    stats = state.stats
    error_event = b""
    if failure is not None and failure.mode == "error":
        body = error_body(failure.status, _message(failure), code=failure.code)
        error_event = b"data: " + body + b"\n\n"
    return await StreamSender(request, pace, failure, stats, error_event=error_event).run(chunks)


def _message(failure: Fault) -> str:
    return failure.message or _DEFAULT_MESSAGES.get(
        failure.status, f"Simulated error {failure.status}."
    )


async def list_models(request: web.Request) -> web.Response:
    """The configured models; an empty list when the simulator accepts any model name."""
    state = request.app[STATE]
    try:
        check_auth(state, request)
    except SimulatorError as exc:
        return exc.response()
    names = sorted(state.models or ())
    data: list[dict[str, Any]] = [
        {"id": name, "object": "model", "created": _MODEL_CREATED, "owned_by": state.options.name}
        for name in names
    ]
    return web.json_response({"object": "list", "data": data})
