"""The OpenAI wire carries no extension field: the adapter maps or drops each, as documented."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from gridgate.protocol.openai_chat import (
    UNSET,
    ChatRequest,
    ImagePart,
    ImageURL,
    TextPart,
    ToolMessage,
    decode_chat_request,
)
from gridgate.providers.base import UpstreamCall
from gridgate.providers.openai import map_request
from tests.providers.test_openai_mapping import OFFER, SUPPLIER


def _upstream(request: ChatRequest) -> dict[str, Any]:
    call = UpstreamCall(
        supplier=SUPPLIER,
        offer=OFFER,
        request=request,
        max_output_tokens=100,
        stream=False,
        prompt_estimate=10,
    )
    decoded: dict[str, Any] = json.loads(map_request(call))
    return decoded


def _request(body: dict[str, Any]) -> ChatRequest:
    return decode_chat_request(json.dumps({"model": "text-prime", **body}).encode())


def test_a_request_without_extensions_is_forwarded_field_for_field() -> None:
    request = _request(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "seed": 7}
    )
    assert not request.has_extensions
    assert _upstream(request) == {
        "model": "up-model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "seed": 7,
        "max_completion_tokens": 100,
    }


def test_thinking_becomes_a_reasoning_effort_and_top_k_stays() -> None:
    request = _request(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 4096},
            "top_k": 40,
        }
    )
    assert request.has_extensions
    body = _upstream(request)
    assert "thinking" not in body
    assert body["reasoning_effort"] == "medium"
    assert body["top_k"] == 40


def test_an_explicit_reasoning_effort_wins_over_a_thinking_budget() -> None:
    request = _request(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "reasoning_effort": "high",
        }
    )
    assert _upstream(request)["reasoning_effort"] == "high"


def test_earlier_reasoning_and_cache_breakpoints_are_not_sent_to_the_openai_wire() -> None:
    request = _request(
        {
            "messages": [
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}
                    ],
                },
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "hello",
                    "reasoning_content": "greet back",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "greet back", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "opaque"},
                    ],
                },
                {"role": "user", "content": "again"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"type": "object"}},
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                }
            ],
        }
    )
    body = _upstream(request)
    assert body["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]
    assert body["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]


def test_a_failed_tool_says_so_and_its_images_follow_in_a_user_message() -> None:
    # a translated request (from the Messages surface) can carry images in a tool result
    base = _request(
        {
            "messages": [
                {"role": "user", "content": "look"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "shot", "arguments": "{}"},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "shot", "arguments": "{}"},
                        },
                    ],
                },
            ]
        }
    )
    image = ImagePart(image_url=ImageURL(url="data:image/png;base64,iVBORw0KGgo="))
    messages = [
        *base.messages,
        ToolMessage(tool_call_id="call_1", content=[TextPart(text="taken"), image]),
        ToolMessage(tool_call_id="call_2", content="camera offline", is_error=True),
    ]
    body = _upstream(msgspec.structs.replace(base, messages=messages))
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "taken"}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: camera offline"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "(images returned by tool call call_1)"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
    ]


def test_a_turn_that_was_only_reasoning_stays_in_place_empty() -> None:
    request = _request(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}],
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": "ok"},
            ]
        }
    )
    assert _upstream(request)["messages"][1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    only_reasoning = msgspec.structs.replace(
        request,
        messages=[
            request.messages[0],
            msgspec.structs.replace(request.messages[1], tool_calls=UNSET),
            ToolMessage(tool_call_id="c", content="ok"),
        ],
    )
    assert _upstream(only_reasoning)["messages"][1] == {"role": "assistant", "content": ""}
