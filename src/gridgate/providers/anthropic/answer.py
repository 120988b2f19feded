"""How an Anthropic ``message`` becomes a canonical ``chat.completion`` body, metered (pure);
and the usage and finish reason rules the stream shares.

An unknown or server-tool content block (``server_tool_use``, ``web_search_tool_result``…)
raises ``SupplierFailed`` naming its type, so the next offer serves: gridgate never asks for
those, and a block it cannot carry must not disappear. Citations on text are not carried
(gridgate never enables them; the text itself is complete). An unknown stop reason maps to
``stop``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from gridgate.errors import SupplierFailed
from gridgate.protocol.openai_chat import ChatRequest
from gridgate.protocol.tokens import tokens_for_bytes, utf8_length
from gridgate.providers.anthropic.request import json_tool_name
from gridgate.providers.anthropic.wire import _answer_decoder, _encoder, _Usage
from gridgate.providers.base import Completion, Usage

# Anthropic stop reason → canonical finish_reason ("tool_use" is decided per answer)
FINISH_REASON: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}


def _finish_reason(stop_reason: str | None, has_tool_calls: bool) -> str:
    if stop_reason == "tool_use" and not has_tool_calls:
        return "stop"  # the forced JSON tool was the whole answer
    return FINISH_REASON.get(stop_reason or "", "stop")


def _prompt_tokens(raw: _Usage | None) -> int | None:
    """The prompt as the upstream counted it (input, cache reads and writes), or None when it
    counted nothing: a count missing, or 0 (no prompt is empty; a supplier that does not
    meter reports zeros, as the Messages wire cannot leave usage out)."""
    if raw is None or raw.input_tokens is None:
        return None
    total = raw.input_tokens + (raw.cache_read_input_tokens or 0)
    total += raw.cache_creation_input_tokens or 0
    return total if total > 0 else None


def _usage(raw: _Usage | None, out_bytes: int) -> Usage | None:
    """The metered usage, or None when the upstream reported no complete usage: a count
    missing, a prompt of 0 tokens, or 0 output tokens for an answer that has text
    (``out_bytes``: UTF-8 bytes of the generated text, reasoning and tool calls)."""
    if raw is None or raw.output_tokens is None or _prompt_tokens(raw) is None:
        return None
    if raw.output_tokens <= 0 and out_bytes > 0:
        return None
    assert raw.input_tokens is not None
    cached = raw.cache_read_input_tokens or 0
    return Usage(
        prompt_tokens=raw.input_tokens + cached + (raw.cache_creation_input_tokens or 0),
        completion_tokens=raw.output_tokens,
        reasoning_tokens=(raw.output_tokens_details.thinking_tokens or 0)
        if raw.output_tokens_details is not None
        else 0,
        cached_tokens=cached,
    )


def _estimated_usage(raw: _Usage | None, prompt_estimate: int, out_bytes: int) -> Usage:
    """Usage counted by gridgate (the upstream reported none, or counted nothing where there
    was something): the reported input if it counted one, else gridgate's estimate; the
    output from its bytes."""
    usage = Usage(completion_tokens=tokens_for_bytes(out_bytes), estimated=True)
    prompt = _prompt_tokens(raw)
    if raw is not None and prompt is not None:
        usage.cached_tokens = raw.cache_read_input_tokens or 0
        usage.prompt_tokens = prompt
    else:
        usage.prompt_tokens = prompt_estimate
    return usage


def _usage_document(usage: Usage, raw: _Usage | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if raw is not None and not usage.estimated:
        document["prompt_tokens_details"] = {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": raw.cache_creation_input_tokens or 0,
        }
        if raw.output_tokens_details is not None:
            document["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return document


def _need(value: str | None, block: str, field: str) -> str:
    if value is None:
        raise SupplierFailed(f"the supplier sent a {block} block without {field}")
    return value


def map_response(
    body: bytes,
    *,
    request: ChatRequest,
    prompt_estimate: int,
    now: Callable[[], float] = time.time,
) -> Completion:
    """An Anthropic ``message`` as a canonical ``chat.completion`` body, metered."""
    try:
        message = _answer_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise SupplierFailed("the supplier sent a malformed answer") from exc
    if message.type != "message":
        raise SupplierFailed(f"the supplier sent a {message.type!r} instead of a message")
    json_name = json_tool_name(request)
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, str]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.content:
        match block.type:
            case "text":
                texts.append(_need(block.text, "text", "text"))
            case "thinking":
                thought = _need(block.thinking, "thinking", "thinking")
                reasoning.append(thought)
                thinking_blocks.append(
                    {
                        "type": "thinking",
                        "thinking": thought,
                        "signature": _need(block.signature, "thinking", "signature"),
                    }
                )
            case "redacted_thinking":
                thinking_blocks.append(
                    {
                        "type": "redacted_thinking",
                        "data": _need(block.data, "redacted_thinking", "data"),
                    }
                )
            case "tool_use":
                name = _need(block.name, "tool_use", "name")
                arguments = _encoder.encode(block.input if block.input is not None else {})
                if name == json_name:
                    texts.append(arguments.decode())
                else:
                    tool_calls.append(
                        {
                            "id": _need(block.id, "tool_use", "id"),
                            "type": "function",
                            "function": {"name": name, "arguments": arguments.decode()},
                        }
                    )
            case other:
                raise SupplierFailed(
                    f"the supplier sent an unsupported content block type {other!r}"
                )
    content: str | None = "".join(texts) if texts else (None if tool_calls else "")
    out_message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        out_message["thinking_blocks"] = thinking_blocks
    choice: dict[str, Any] = {
        "index": 0,
        "message": out_message,
        "logprobs": None,
        "finish_reason": _finish_reason(message.stop_reason, bool(tool_calls)),
    }
    if message.stop_reason == "stop_sequence" and message.stop_sequence is not None:
        choice["stop_reason"] = message.stop_sequence
    generated = sum(utf8_length(text) for text in (*texts, *reasoning)) + sum(
        utf8_length(call["function"]["name"]) + utf8_length(call["function"]["arguments"])
        for call in tool_calls
    )
    usage = _usage(message.usage, generated)
    if usage is None:
        usage = _estimated_usage(message.usage, prompt_estimate, generated)
    document = {
        "id": message.id,
        "object": "chat.completion",
        "created": int(now()),
        "model": message.model,
        "choices": [choice],
        "usage": _usage_document(usage, message.usage),
    }
    return Completion(body=_encoder.encode(document), usage=usage, model=message.model)
