"""The plain (non-streamed) ``chat.completion`` object, encoded once.

A choice that a stop sequence ended carries vLLM's ``"stop_reason": "<the sequence>"`` beside
``finish_reason: "stop"``: OpenAI does not say which sequence matched, and a gateway that
translates to the Anthropic wire (``stop_sequence``) needs it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gridgate.simulator.completion import Choice, Completion

_encode = msgspec.json.Encoder().encode


def completion_body(
    completion: Completion,
    *,
    completion_id: str,
    created: int,
    model: str,
    fingerprint: str,
    logprobs: bool,
    usage: bool,
) -> bytes:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [_choice(choice, logprobs) for choice in completion.choices],
    }
    if usage:
        body["usage"] = completion.usage()
    body["service_tier"] = "default"
    body["system_fingerprint"] = fingerprint
    return _encode(body)


def _choice(choice: Choice, logprobs: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.text,
        "refusal": None,
        "annotations": [],
    }
    if choice.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in choice.tool_calls
        ]
    if choice.reasoning:
        message["reasoning_content"] = "".join(choice.reasoning)
    entry: dict[str, Any] = {
        "index": choice.index,
        "message": message,
        "logprobs": (
            {"content": None if choice.logprobs is None else list(choice.logprobs), "refusal": None}
            if logprobs
            else None
        ),
        "finish_reason": choice.finish_reason,
    }
    if choice.stop_sequence is not None:
        entry["stop_reason"] = choice.stop_sequence
    return entry
