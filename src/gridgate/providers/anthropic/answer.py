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
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from gridgate.errors import SupplierFailed
from gridgate.protocol.openai_chat import ChatRequest
from gridgate.protocol.tokens import tokens_for_bytes, utf8_length
from gridgate.providers.anthropic.request import json_tool_name
from gridgate.providers.anthropic.wire import (
    _answer_decoder,
    _AnswerMessage,
    _ContentBlock,
    _encoder,
    _Usage,
)
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
    message = _decode(body)
    answer = _read_blocks(message.content, json_tool_name(request))
    choice: dict[str, Any] = {
        "index": 0,
        "message": answer.message(),
        "logprobs": None,
        "finish_reason": _finish_reason(message.stop_reason, bool(answer.tool_calls)),
    }
    if message.stop_reason == "stop_sequence" and message.stop_sequence is not None:
        choice["stop_reason"] = message.stop_sequence
    generated = answer.generated_bytes()
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


def _decode(body: bytes) -> _AnswerMessage:
    try:
        message = _answer_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise SupplierFailed("the supplier sent a malformed answer") from exc
    if message.type != "message":
        raise SupplierFailed(f"the supplier sent a {message.type!r} instead of a message")
    return message


@dataclass(slots=True)
class _Answer:
    """A ``message``'s content blocks, sorted into the parts of the canonical message."""

    texts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    thinking_blocks: list[dict[str, str]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def message(self) -> dict[str, Any]:
        """The choice's ``message``: text (null when only tools were called), tool calls,
        and the reasoning with its blocks (extensions)."""
        texts, tool_calls = self.texts, self.tool_calls
        content: str | None = "".join(texts) if texts else (None if tool_calls else "")
        out: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if tool_calls:
            out["tool_calls"] = tool_calls
        if self.reasoning:
            out["reasoning_content"] = "".join(self.reasoning)
        if self.thinking_blocks:
            out["thinking_blocks"] = self.thinking_blocks
        return out

    def generated_bytes(self) -> int:
        """UTF-8 bytes of the generated text, reasoning and tool calls (to meter by)."""
        return sum(utf8_length(text) for text in (*self.texts, *self.reasoning)) + sum(
            utf8_length(call["function"]["name"]) + utf8_length(call["function"]["arguments"])
            for call in self.tool_calls
        )


def _read_blocks(blocks: list[_ContentBlock], json_name: str | None) -> _Answer:
    """Sort the blocks; the forced JSON tool's input (``json_name``) is the answer's text."""
    answer = _Answer()
    for block in blocks:
        match block.type:
            case "text":
                answer.texts.append(_need(block.text, "text", "text"))
            case "thinking":
                thought = _need(block.thinking, "thinking", "thinking")
                answer.reasoning.append(thought)
                answer.thinking_blocks.append(
                    {
                        "type": "thinking",
                        "thinking": thought,
                        "signature": _need(block.signature, "thinking", "signature"),
                    }
                )
            case "redacted_thinking":
                answer.thinking_blocks.append(
                    {
                        "type": "redacted_thinking",
                        "data": _need(block.data, "redacted_thinking", "data"),
                    }
                )
            case "tool_use":
                name = _need(block.name, "tool_use", "name")
                arguments = _encoder.encode(block.input if block.input is not None else {})
                if name == json_name:
                    answer.texts.append(arguments.decode())
                else:
                    answer.tool_calls.append(
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
    return answer
