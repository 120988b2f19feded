"""Canonical ``chat.completion`` bodies → Responses ``Response`` objects, each checked against
OpenAI's published ``Response`` schema and read by the official SDK."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from openai.types.responses import Response

from gridgate.errors import GridgateError
from gridgate.protocol.openai_responses.from_chat import response_from_completion
from gridgate.protocol.openai_responses.output import ResponseContext, response_context
from gridgate.protocol.openai_responses.reasoning import open_reasoning
from gridgate.protocol.openai_responses.request import decode_responses_request
from gridgate.protocol.openai_responses.to_chat import to_chat_request
from tests.openai_spec import OpenAISpec, load_spec
from tests.protocol.openai_responses.test_request import FULL, FUNCTION, NAMESPACE

RID = "resp_abc"


@pytest.fixture(scope="module")
def spec() -> OpenAISpec:
    return load_spec()


def context_for(body: dict[str, Any]) -> ResponseContext:
    request = decode_responses_request(json.dumps(body).encode())
    return response_context(request, to_chat_request(request), response_id=RID, created_at=100)


def completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> bytes:
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 7,
        "total_tokens": 27,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "up/x",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", **message},
                    "finish_reason": finish,
                    **choice,
                }
            ],
            "usage": usage,
        }
    ).encode()


def answer(
    spec: OpenAISpec, body: bytes, context: ResponseContext
) -> tuple[dict[str, Any], Response]:
    raw = response_from_completion(body, context, completed_at=105)
    obj = json.loads(raw)
    spec.check("Response", obj)
    return obj, Response.model_validate(obj)


def test_a_text_answer(spec: OpenAISpec) -> None:
    obj, sdk = answer(
        spec, completion({"content": "Hello."}), context_for({"model": "m", "input": "hi"})
    )
    assert sdk.output_text == "Hello."
    assert (obj["id"], obj["object"], obj["status"], obj["created_at"]) == (
        RID,
        "response",
        "completed",
        100,
    )
    assert obj["completed_at"] == 105 and obj["error"] is None and obj["incomplete_details"] is None
    assert obj["output"] == [
        {
            "type": "message",
            "id": "msg_abc_0",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Hello.", "annotations": [], "logprobs": []}
            ],
        }
    ]
    assert obj["usage"] == {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 27,
    }
    assert (obj["instructions"], obj["tools"], obj["tool_choice"], obj["metadata"]) == (
        None,
        [],
        "auto",
        {},
    )
    assert (obj["temperature"], obj["top_p"], obj["parallel_tool_calls"]) == (None, None, True)
    assert obj["store"] is True and obj["text"] == {"format": {"type": "text"}}


def test_the_full_request_is_echoed(spec: OpenAISpec) -> None:
    obj, _ = answer(spec, completion({"content": "{}"}), context_for(FULL))
    assert obj["instructions"] == "Be brief." and obj["model"] == "gpt-5"
    assert obj["tools"][0] == FUNCTION
    assert obj["tools"][1:] == [NAMESPACE, {"type": "web_search"}]
    assert (obj["temperature"], obj["top_p"], obj["max_output_tokens"]) == (0.5, 0.9, 1000)
    assert obj["reasoning"] == {"effort": "high", "summary": "auto"}
    assert obj["text"] == FULL["text"]
    assert (obj["store"], obj["previous_response_id"], obj["metadata"]) == (
        False,
        "resp_1",
        {"a": "b"},
    )
    assert (obj["user"], obj["safety_identifier"], obj["truncation"]) == ("u", "s", "disabled")


def test_reasoning_refusal_and_namespaced_calls(spec: OpenAISpec) -> None:
    body = {**FULL, "stream": False, "stream_options": None}
    message = {
        "content": None,
        "refusal": "I cannot.",
        "reasoning_content": "Think first.",
        "thinking_blocks": [{"type": "thinking", "thinking": "Think first.", "signature": "sig"}],
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "crm__find", "arguments": "{}"},
            },
            {
                "id": "call_10",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city"'},
            },
        ],
    }
    obj, sdk = answer(spec, completion(message, "length"), context_for(body))
    assert obj["status"] == "incomplete"
    assert obj["incomplete_details"] == {"reason": "max_output_tokens"}
    reasoning, refusal, call, cut = obj["output"]
    assert reasoning["id"] == "rs_abc_0" and reasoning["summary"] == [
        {"type": "summary_text", "text": "Think first."}
    ]
    assert open_reasoning(reasoning["encrypted_content"])  # include asked for it
    assert refusal["content"] == [{"type": "refusal", "refusal": "I cannot."}]
    assert refusal["status"] == "incomplete"
    assert call == {
        "type": "function_call",
        "id": "fc_abc_2",
        "call_id": "call_9",
        "namespace": "crm",
        "name": "find",
        "arguments": "{}",
        "status": "incomplete",
    }
    assert "namespace" not in cut and cut["name"] == "get_weather"
    assert sdk.output_text == ""


def test_logprobs_and_content_filter(spec: OpenAISpec) -> None:
    logprobs = {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.1,
                "bytes": None,
                "top_logprobs": [{"token": "Hi", "logprob": -0.1}],
            }
        ]
    }
    obj, _ = answer(
        spec,
        completion({"content": "Hi"}, "content_filter", logprobs=logprobs),
        context_for({"model": "m", "input": "x"}),
    )
    assert obj["incomplete_details"] == {"reason": "content_filter"}
    assert obj["output"][0]["content"][0]["logprobs"] == [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
        }
    ]


def test_an_unreadable_canonical_answer_is_a_gridgate_bug() -> None:
    context = context_for({"model": "m", "input": "x"})
    with pytest.raises(GridgateError):
        response_from_completion(b"{", context, completed_at=1)
    with pytest.raises(GridgateError):
        response_from_completion(
            msgspec.json.encode({"id": "x", "choices": []}), context, completed_at=1
        )
