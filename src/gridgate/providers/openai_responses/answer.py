"""How a Responses API ``Response`` becomes a canonical ``chat.completion`` body, metered (pure);
and the usage and finish reason rules the stream shares.

Output items: ``message`` → content (``output_text`` parts joined; ``refusal`` parts →
``refusal``), ``function_call`` → a tool call (``call_id`` is its id), ``reasoning`` →
``reasoning_content`` (its summary) and a ``thinking_blocks`` entry sealing the whole item
(``reasoning.py``). Any other item (a hosted tool's call: gridgate never offers hosted tools to
this wire) raises ``SupplierFailed`` naming its type, so the next offer serves: nothing is
silently dropped.

Finish reason: ``incomplete`` for ``max_output_tokens`` → ``length``, for ``content_filter`` →
``content_filter``; ``completed`` with function calls → ``tool_calls``, else ``stop``. A
``failed`` (or unfinished) response is the supplier's failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

from gridgate.errors import SupplierFailed
from gridgate.protocol.tokens import utf8_length
from gridgate.providers.base import Completion, Usage, counted
from gridgate.providers.openai_responses.reasoning import reasoning_text, thinking_block

_encoder: Final = msgspec.json.Encoder()


class _InputDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _OutputDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class ResponseUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _Incomplete(msgspec.Struct):
    reason: str | None = None


class _Error(msgspec.Struct):
    code: str | None = None
    message: str | None = None


class WireResponse(msgspec.Struct):
    id: str = ""
    model: str = ""
    created_at: float | None = None
    status: str | None = None
    output: list[dict[str, Any]] = msgspec.field(default_factory=list)
    usage: ResponseUsage | None = None
    incomplete_details: _Incomplete | None = None
    error: _Error | None = None


_response_decoder: Final = msgspec.json.Decoder(WireResponse)


def usage_of(raw: ResponseUsage | None) -> Usage | None:
    if raw is None:
        return None
    return Usage(
        prompt_tokens=raw.input_tokens,
        completion_tokens=raw.output_tokens,
        reasoning_tokens=(raw.output_tokens_details.reasoning_tokens or 0)
        if raw.output_tokens_details
        else 0,
        cached_tokens=(raw.input_tokens_details.cached_tokens or 0)
        if raw.input_tokens_details
        else 0,
    )


def usage_document(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def finish_reason(response: WireResponse, has_tool_calls: bool) -> str:
    """The canonical finish reason of a finished response (raises for a failed one)."""
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return "content_filter" if reason == "content_filter" else "length"
    if response.status == "completed":
        return "tool_calls" if has_tool_calls else "stop"
    raise failure_of(response)


def failure_of(response: WireResponse) -> SupplierFailed:
    if response.status == "failed":
        code = response.error.code if response.error and response.error.code else "error"
        return SupplierFailed(f"the supplier's response failed ({code})")
    return SupplierFailed(f"the supplier's response did not finish (status {response.status!r})")


def _text_of(item: dict[str, Any], kind: str, key: str) -> str:
    parts = item.get("content")
    if not isinstance(parts, list):
        return ""
    return "".join(
        p[key]
        for p in parts
        if isinstance(p, dict) and p.get("type") == kind and isinstance(p.get(key), str)
    )


def _need_str(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise SupplierFailed(f"the supplier sent a {item.get('type')} item without {key}")
    return value


def map_response(
    body: bytes, *, prompt_estimate: int, now: Callable[[], float] = time.time
) -> Completion:
    """The canonical ``chat.completion`` of a whole ``Response``, metered."""
    try:
        response = _response_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SupplierFailed("the supplier sent a malformed answer") from exc
    content: list[str] = []
    refusal: list[str] = []
    reasoning: list[str] = []
    blocks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for item in response.output:
        kind = item.get("type")
        if kind == "message":
            content.append(_text_of(item, "output_text", "text"))
            refusal.append(_text_of(item, "refusal", "refusal"))
        elif kind == "reasoning":
            _need_str(item, "id")
            reasoning.append(reasoning_text(item))
            blocks.append(thinking_block(item))
        elif kind == "function_call":
            calls.append(
                {
                    "id": _need_str(item, "call_id"),
                    "type": "function",
                    "function": {
                        "name": _need_str(item, "name"),
                        "arguments": _need_str(item, "arguments"),
                    },
                }
            )
        else:
            raise SupplierFailed(f"the supplier sent an unsupported output item type {kind!r}")
    finish = finish_reason(response, bool(calls))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(content) if any(content) or not calls else None,
        "refusal": "".join(refusal) or None,
    }
    if calls:
        message["tool_calls"] = calls
    said = [r for r in reasoning if r]
    if said:  # parts and items apart by a blank line, as the stream gives them
        message["reasoning_content"] = "\n\n".join(said)
    if blocks:
        message["thinking_blocks"] = blocks
    out_bytes = sum(utf8_length(t) for t in (*content, *refusal, *reasoning) if t) + sum(
        utf8_length(c["function"]["name"]) + utf8_length(c["function"]["arguments"]) for c in calls
    )
    usage = counted(usage_of(response.usage), prompt_estimate=prompt_estimate, out_bytes=out_bytes)
    created = response.created_at if response.created_at is not None else now()
    document = {
        "id": response.id,
        "object": "chat.completion",
        "created": int(created),
        "model": response.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_document(usage),
    }
    return Completion(body=_encoder.encode(document), usage=usage, model=response.model)
