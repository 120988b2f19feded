"""Responses requests → the canonical ChatRequest: the mapping row by row, and every
translation one the chat surface itself would accept."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gridgate.errors import ValidationFailed
from gridgate.protocol import openai_chat as chat
from gridgate.protocol.openai_chat import UNSET, decode_chat_request
from gridgate.protocol.openai_responses.items import InputItem
from gridgate.protocol.openai_responses.reasoning import open_reasoning, seal_reasoning
from gridgate.protocol.openai_responses.request import decode_responses_request
from gridgate.protocol.openai_responses.to_chat import Translation, to_chat_request
from tests.protocol.openai_responses.test_request import FULL, FUNCTION, NAMESPACE


def translate(body: dict[str, Any], prior: list[InputItem] | None = None) -> Translation:
    request = decode_responses_request(json.dumps(body).encode())
    translation = to_chat_request(request, prior or [])
    # what comes out is a request the chat surface accepts as it is
    decode_chat_request(msgspec.json.encode(translation.request))
    return translation


def simple(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "hi", **fields}


def test_the_full_body() -> None:
    t = translate(FULL)
    req = t.request
    assert [type(m).__name__ for m in req.messages] == [
        "SystemMessage",
        "DeveloperMessage",
        "UserMessage",
        "AssistantMessage",
        "ToolMessage",
        "AssistantMessage",
        "UserMessage",
    ]
    assert req.messages[0].content == "Be brief."
    user = req.messages[2]
    assert isinstance(user.content, list)
    assert [type(p).__name__ for p in user.content] == ["TextPart", "ImagePart", "FilePart"]
    call = req.messages[3]
    assert isinstance(call, chat.AssistantMessage)
    assert call.content is None and call.reasoning_content == "Think"
    assert call.tool_calls and call.tool_calls[0].id == "call_1"
    assert req.messages[4] == chat.ToolMessage(content="sunny", tool_call_id="call_1")
    assert req.messages[5] == chat.AssistantMessage(content="Sunny.")
    assert [tool.function.name for tool in req.tools or ()] == ["get_weather", "crm__find"]
    assert [(h.type, h.name) for h in t.hosted_tools] == [
        ("custom", "crm__query"),
        ("web_search", None),
    ]
    assert t.namespaces == {"crm__find": ("crm", "find")}
    assert isinstance(req.response_format, chat.ResponseFormatJSONSchema)
    assert req.response_format.json_schema.name == "answer"
    assert req.response_format.json_schema.strict is True
    assert (req.reasoning_effort, req.verbosity) == ("high", "low")
    assert (req.max_completion_tokens, req.temperature, req.top_p) == (1000, 0.5, 0.9)
    assert (req.logprobs, req.top_logprobs) == (True, 2)
    assert req.stream is True and req.include_usage
    assert (req.prompt_cache_key, req.prompt_cache_retention) == ("k", "24h")
    assert (req.user, req.safety_identifier, req.service_tier) == ("u", "s", "auto")
    assert req.tool_choice == "auto" and req.parallel_tool_calls is True
    assert req.store is UNSET and req.metadata is UNSET  # the surface's, not the supplier's
    assert t.notes == ("max_tool_calls is not carried to the supplier",)


def test_a_string_input_follows_the_prior_items() -> None:
    prior = [InputItem(role="user", content="first"), InputItem(role="assistant", content="ok")]
    t = translate(simple(instructions="Be kind."), prior)
    assert [(m.__struct_config__.tag, m.content) for m in t.request.messages] == [
        ("system", "Be kind."),
        ("user", "first"),
        ("assistant", "ok"),
        ("user", "hi"),
    ]


def test_a_namespaced_call_is_flattened_and_parallel_calls_share_a_turn() -> None:
    items = [
        {"role": "user", "content": "find"},
        {
            "type": "function_call",
            "call_id": "c1",
            "namespace": "crm",
            "name": "find",
            "arguments": "{}",
        },
        {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "c1",
            "output": [{"type": "input_text", "text": "a"}],
        },
        {"type": "function_call_output", "call_id": "c2", "output": "b"},
    ]
    t = translate({"model": "m", "input": items, "tools": [FUNCTION, NAMESPACE]})
    turn = t.request.messages[1]
    assert isinstance(turn, chat.AssistantMessage) and turn.tool_calls
    assert [c.function.name for c in turn.tool_calls] == ["crm__find", "get_weather"]
    assert t.request.messages[2] == chat.ToolMessage(
        content=[chat.TextPart(text="a")], tool_call_id="c1"
    )


def test_gridgates_sealed_reasoning_gives_the_signed_blocks_back() -> None:
    blocks: list[chat.ReasoningBlock] = [
        chat.ThinkingBlock(thinking="Let me see.", signature="sig"),
        chat.RedactedThinkingBlock(data="opaque"),
    ]
    sealed = seal_reasoning(blocks)
    assert open_reasoning(sealed) == blocks
    assert open_reasoning("gAAAA-openai") is None and open_reasoning("gg1.!!") is None
    items = [
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": sealed},
        {"role": "assistant", "content": "a"},
    ]
    turn = translate({"model": "m", "input": items}).request.messages[1]
    assert turn == chat.AssistantMessage(
        content="a", thinking_blocks=blocks, reasoning_content="Let me see."
    )


def test_reasoning_that_cannot_be_carried_is_noted() -> None:
    items = [
        {"role": "user", "content": "q"},
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "s"}],
            "encrypted_content": "gAAAA",
        },
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {
            "type": "reasoning",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "raw"}],
        },
    ]
    t = translate({"model": "m", "input": items})
    assert t.request.messages[1] == chat.AssistantMessage(
        content=None, refusal="no", reasoning_content="s"
    )
    assert len(t.request.messages) == 2
    assert t.notes == (
        "input[1]: encrypted reasoning of another provider was dropped",
        "reasoning that no answer followed was dropped",
    )


def test_allowed_tools_keep_only_the_allowed_functions() -> None:
    choice = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "crm__find"}],
    }
    req = translate(simple(tools=[FUNCTION, NAMESPACE], tool_choice=choice)).request
    assert [tool.function.name for tool in req.tools or ()] == ["crm__find"]
    assert req.tool_choice == "required"


def test_a_named_function_and_a_hosted_choice() -> None:
    named = translate(
        simple(tools=[FUNCTION], tool_choice={"type": "function", "name": "get_weather"})
    )
    assert isinstance(named.request.tool_choice, chat.NamedToolChoice)
    mcp = {
        "type": "mcp",
        "server_label": "deepwiki",
        "server_url": "https://mcp.test/",
        "require_approval": "never",
    }
    t = translate(simple(tools=[mcp], tool_choice={"type": "mcp", "server_label": "deepwiki"}))
    assert t.hosted_tool_choice == "mcp" and t.request.tool_choice is UNSET
    assert t.request.tools is UNSET
    (hosted,) = t.hosted_tools
    assert (hosted.type, hosted.name, json.loads(hosted.raw)) == ("mcp", "deepwiki", mcp)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"text": {"format": {"type": "json_object"}}}, chat.ResponseFormatJSONObject()),
        ({"text": {"format": {"type": "text"}}}, chat.ResponseFormatText()),
        ({"prompt_cache_retention": "in_memory"}, "in-memory"),
        ({"service_tier": "fast"}, UNSET),  # no chat value: the exchange picks the supplier
        ({"include": ["message.output_text.logprobs"]}, True),
    ],
)
def test_options(fields: dict[str, Any], expected: Any) -> None:
    req = translate(simple(**fields)).request
    got = {
        "text": req.response_format,
        "prompt_cache_retention": req.prompt_cache_retention,
        "service_tier": req.service_tier,
        "include": req.logprobs,
    }[next(iter(fields))]
    assert got == expected


def test_truncation_auto_is_noted_and_nothing_is_sent_for_nulls() -> None:
    t = translate(simple(truncation="auto", temperature=None, reasoning={"effort": None}))
    assert t.notes == ("truncation 'auto' is not carried: the input is never truncated",)
    assert (
        msgspec.json.encode(t.request)
        == b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    )


def test_a_system_message_takes_text_only() -> None:
    image = {"type": "input_image", "image_url": "https://x.test/a.png"}
    with pytest.raises(ValidationFailed) as caught:
        translate({"model": "m", "input": [{"role": "system", "content": [image]}]})
    assert caught.value.param == "input[0].content[0].type"
