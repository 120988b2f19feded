"""The OpenAI wire format: OpenAI, vLLM, SGLang, Together, Fireworks, Groq, DeepInfra, Ollama…

A new OpenAI-compatible vendor is a supplier row (base URL + the env var holding its key), not
code. The request is re-encoded from the validated struct, so only fields the caller sent are
forwarded (gateway-only fields such as ``provider`` and ``route`` are dropped); the upstream is
always told the max output tokens the hold covers and, when streaming, asked for usage. Answers
are relayed as the upstream sent them (no re-encoding), parsed only to meter them.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import msgspec

from gridgate.errors import SupplierFailed, SupplierTimeout, UpstreamRejected
from gridgate.protocol.openai_chat import (
    UNSET,
    AssistantMessage,
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    ReasoningEffort,
    StreamOptions,
    TextPart,
    ThinkingDisabled,
    ThinkingEnabled,
    ToolMessage,
    UserMessage,
)
from gridgate.protocol.sse import SSEEvent
from gridgate.protocol.tokens import utf8_length
from gridgate.protocol.usage_cost import usage_end
from gridgate.providers.base import Chunk, Completion, UpstreamCall, Usage, counted
from gridgate.providers.failures import error_message
from gridgate.providers.http_wire import HttpWire
from gridgate.settings import UpstreamSettings


# -- wire structs: only what metering needs; everything else is forwarded untouched ----------
class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    cost: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # a supplier's own (replaced)


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    function: _Function | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    finish_reason: str | None = None


class _Response(msgspec.Struct):
    choices: list[_Choice]
    model: str = ""
    # read on its own (``_usage_decoder``): its exact bytes place ``usage.cost`` in the body
    usage: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _StreamChoice(msgspec.Struct):
    delta: _Message | None = None
    finish_reason: str | None = None


class _StreamChunk(msgspec.Struct):
    choices: list[_StreamChoice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None
    error: dict[str, Any] | None = None


_response_decoder = msgspec.json.Decoder(_Response)
_usage_decoder = msgspec.json.Decoder(_Usage | None)
_chunk_decoder = msgspec.json.Decoder(_StreamChunk)
_encoder = msgspec.json.Encoder()
_DONE = b"[DONE]"
_USAGE_NULL = (b',"usage":null', b'"usage":null,', b', "usage": null', b'"usage": null, ')


# -- pure mapping ----------------------------------------------------------------------------
def map_request(call: UpstreamCall) -> bytes:
    """The upstream body: the caller's fields, the offer's model, the held max output tokens;
    for a zero-retention supplier without ``metadata`` (nor ``store: true``)."""
    req: ChatRequest = call.request
    if req.has_extensions:
        req = without_extensions(req)
    changes: dict[str, Any] = {
        "model": call.offer.model,
        "provider": msgspec.UNSET,
        "route": msgspec.UNSET,
    }
    if req.max_tokens not in (None, msgspec.UNSET) and req.max_completion_tokens in (
        None,
        msgspec.UNSET,
    ):
        changes["max_tokens"] = call.max_output_tokens
    else:
        changes["max_completion_tokens"] = call.max_output_tokens
        changes["max_tokens"] = msgspec.UNSET
    if call.supplier.zero_retention:
        # nothing that asks for or labels stored data goes to a supplier that keeps none
        # (routing never sends it ``store: true``; see core/exchange/costly_options.py)
        changes["metadata"] = msgspec.UNSET
        if req.store is True:
            changes["store"] = msgspec.UNSET
    if call.stream:
        changes["stream"] = True
        changes["stream_options"] = StreamOptions(include_usage=True)
    else:
        changes["stream"] = msgspec.UNSET
        changes["stream_options"] = msgspec.UNSET
    return _encoder.encode(msgspec.structs.replace(req, **changes))


def dropped_fields(req: ChatRequest) -> frozenset[str]:
    """The parameters ``req`` sets (not null) that ``map_request`` would drop: only ``thinking``,
    when it is disabled (the OpenAI wire has no "do not reason") or when a ``reasoning_effort``
    beside it decides instead. (Earlier reasoning and cache breakpoints, dropped too, are parts
    of messages, not parameters; caching is automatic on this wire.)"""
    thinking = req.thinking
    if isinstance(thinking, ThinkingDisabled) or (
        isinstance(thinking, ThinkingEnabled) and req.reasoning_effort not in (UNSET, None)
    ):
        return _THINKING
    return _NOTHING


_THINKING: frozenset[str] = frozenset({"thinking"})
_NOTHING: frozenset[str] = frozenset()


def effort_for_budget(budget: int) -> ReasoningEffort:
    """The ``reasoning_effort`` closest to a thinking budget (tokens)."""
    if budget < 2048:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def without_extensions(req: ChatRequest) -> ChatRequest:
    """The request as the OpenAI wire can carry it: ``thinking`` becomes a reasoning effort,
    earlier reasoning and cache breakpoints are dropped (OpenAI models never see earlier
    reasoning; caching is automatic), a failed tool's result says so in its text, and images
    a tool returned follow its result in a user message (OpenAI tool results are text only).
    ``top_k`` stays: OpenAI-compatible servers (vLLM, SGLang, Together…) honour it."""
    changes: dict[str, Any] = {"thinking": UNSET}
    thinking = req.thinking
    if isinstance(thinking, ThinkingEnabled) and req.reasoning_effort in (UNSET, None):
        changes["reasoning_effort"] = effort_for_budget(thinking.budget_tokens)
    if req.tools:
        changes["tools"] = [
            msgspec.structs.replace(tool, cache_control=UNSET)
            if tool.cache_control is not UNSET
            else tool
            for tool in req.tools
        ]
    messages: list[Message] = []
    pending_images: list[ContentPart] = []
    for message in req.messages:
        if pending_images and type(message) is not ToolMessage:
            messages.append(UserMessage(content=pending_images))
            pending_images = []
        if type(message) is AssistantMessage:
            assert isinstance(message, AssistantMessage)
            empty = message.content in (None, UNSET) and not (
                message.tool_calls or message.refusal or message.audio
            )
            # a turn that was only reasoning keeps its place in the conversation, empty
            message = msgspec.structs.replace(
                message,
                reasoning_content=UNSET,
                thinking_blocks=UNSET,
                content="" if empty else message.content,
            )
        elif type(message) is ToolMessage:
            message, images = _tool_result_for_openai(message)
            if images:
                pending_images.extend(
                    [TextPart(text=f"(images returned by tool call {message.tool_call_id})")]
                )
                pending_images.extend(images)
        content = message.content
        if type(content) is list and any(
            getattr(part, "cache_control", UNSET) is not UNSET for part in content
        ):
            parts = [
                msgspec.structs.replace(part, cache_control=UNSET)
                if getattr(part, "cache_control", UNSET) is not UNSET
                else part
                for part in content
            ]
            message = msgspec.structs.replace(message, content=parts)
        messages.append(message)
    if pending_images:
        messages.append(UserMessage(content=pending_images))
    changes["messages"] = messages
    return msgspec.structs.replace(req, **changes)


def _tool_result_for_openai(message: ToolMessage) -> tuple[ToolMessage, list[ContentPart]]:
    content = message.content
    images: list[ContentPart] = []
    if isinstance(content, list):
        images = [part for part in content if type(part) is ImagePart]
        if images:
            texts: list[ContentPart] = [part for part in content if type(part) is not ImagePart]
            content = texts or "(see the images below)"
    if message.is_error is True:
        if isinstance(content, str):
            content = "Error: " + content
        else:
            content = [TextPart(text="Error:"), *content]
    return msgspec.structs.replace(message, content=content, is_error=UNSET), images


def _usage(raw: _Usage) -> Usage:
    return Usage(
        prompt_tokens=raw.prompt_tokens,
        completion_tokens=raw.completion_tokens,
        reasoning_tokens=(raw.completion_tokens_details.reasoning_tokens or 0)
        if raw.completion_tokens_details
        else 0,
        cached_tokens=(raw.prompt_tokens_details.cached_tokens or 0)
        if raw.prompt_tokens_details
        else 0,
    )


def _utf8_len(text: str | None) -> int:
    return utf8_length(text) if text else 0


def _text_bytes(message: _Message | None) -> int:
    """The UTF-8 bytes of what ``message`` generated (runs for every streamed event: the
    common one-text delta makes one call)."""
    if message is None:
        return 0
    total = utf8_length(message.content) if message.content else 0
    if message.reasoning_content:
        total += utf8_length(message.reasoning_content)
    if message.refusal:
        total += utf8_length(message.refusal)
    if message.tool_calls:
        for call in message.tool_calls:
            if call.function is not None:
                total += _utf8_len(call.function.arguments) + _utf8_len(call.function.name)
    return total


def map_response(body: bytes, *, prompt_estimate: int) -> Completion:
    """Meter an upstream answer. Forwarded as is, unless it lacks usage or its usage counts
    nothing for something (then its usage is gridgate's count, marked as estimated)."""
    try:
        parsed = _response_decoder.decode(body)
        wire_usage = _usage_decoder.decode(parsed.usage) if parsed.usage else None
    except msgspec.DecodeError as exc:
        raise SupplierFailed("the supplier sent a malformed answer") from exc
    if not parsed.choices:
        raise SupplierFailed("the supplier sent an answer without choices")
    reported = _usage(wire_usage) if wire_usage is not None else None
    out_bytes = sum(_text_bytes(c.message) for c in parsed.choices)
    usage = counted(reported, prompt_estimate=prompt_estimate, out_bytes=out_bytes)
    if usage is reported:
        assert wire_usage is not None
        at = -1 if wire_usage.cost else usage_end(body, bytes(parsed.usage))
        return Completion(body=body, usage=usage, model=parsed.model, usage_at=at)
    document = msgspec.json.decode(body)
    document["usage"] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    return Completion(body=_encoder.encode(document), usage=usage, model=parsed.model)


def map_stream_event(event: SSEEvent, *, include_usage: bool) -> Chunk:
    """Meter one upstream SSE event; the event's bytes are forwarded as they came."""
    data = event.data
    if data == _DONE:
        return Chunk(raw=event.raw, done=True)
    try:
        parsed = _chunk_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SupplierFailed("the supplier sent a malformed stream event") from exc
    if parsed.error is not None:
        raise SupplierFailed("the supplier reported an error mid-stream")
    raw = event.raw
    if not include_usage and parsed.usage is None:
        for pattern in _USAGE_NULL:
            if pattern in raw:
                raw = raw.replace(pattern, b"", 1)
                break
    finish = None
    out_bytes = 0
    deltas = 0
    for choice in parsed.choices:
        size = _text_bytes(choice.delta)
        if size:
            out_bytes += size
            deltas += 1
        if choice.finish_reason is not None:
            finish = choice.finish_reason
    usage = _usage(parsed.usage) if parsed.usage is not None else None
    return Chunk(
        raw=raw,
        usage=usage,
        usage_only=usage is not None and not parsed.choices,
        output_bytes=out_bytes,
        deltas=deltas,
        finish_reason=finish,
    )


def upstream_error(
    status: int, body: bytes, *, secret: str | None
) -> SupplierFailed | UpstreamRejected:
    """Translate a non-200 answer. The caller's fault (a 4xx other than 401/403/404/408/409/429)
    is surfaced with the upstream's message; everything else is the supplier's."""
    if status in (400, 413, 415, 422) or (
        400 <= status < 500
        and status
        not in (
            401,
            402,
            403,
            404,
            408,
            409,
            429,
        )
    ):
        message = (
            error_message(body, secret) or f"the supplier rejected the request (HTTP {status})"
        )
        return UpstreamRejected(message, status=status if status != 415 else 400)
    if status in (408, 504):
        return SupplierTimeout(f"the supplier timed out (HTTP {status})")
    return SupplierFailed(f"the supplier failed (HTTP {status})")


# -- the adapter -------------------------------------------------------------------------------
def bearer_headers(accept: str, secret: str | None) -> dict[str, str]:
    """The headers of an OpenAI-style request (chat completions, Responses): a Bearer secret."""
    headers = {"Content-Type": "application/json", "Accept": accept}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


class OpenAIAdapter:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: UpstreamSettings,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._wire = HttpWire(
            session,
            settings,
            environ,
            path="/chat/completions",
            headers=bearer_headers,
            map_request=map_request,
            reject=upstream_error,
        )

    async def complete(self, call: UpstreamCall) -> Completion:
        return map_response(await self._wire.post(call), prompt_estimate=call.prompt_estimate)

    def stream(self, call: UpstreamCall) -> AsyncIterator[list[Chunk]]:
        return self._wire.stream(
            call,
            translate=functools.partial(_batch, include_usage=call.request.include_usage),
            finished=_finished,
        )


def _finished(batch: list[Chunk]) -> bool:
    """A choice finished here: the answer is whole even if ``[DONE]`` never comes."""
    return any(c.finish_reason is not None for c in batch)


def _batch(
    events: list[SSEEvent], include_usage: bool
) -> tuple[list[Chunk], SupplierFailed | None]:
    """The chunks of the events that arrived together, up to and including ``[DONE]``; and the
    failure that ended them early, if one did (what came before it is still relayed)."""
    batch: list[Chunk] = []
    for event in events:
        if not event.data:
            continue
        try:
            chunk = map_stream_event(event, include_usage=include_usage)
        except SupplierFailed as exc:
            return batch, exc
        batch.append(chunk)
        if chunk.done:
            break
    return batch, None
