"""Responses request decoding: bodies OpenAI's spec accepts decode, and one row per rule for
what is refused, each naming its ``param``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from pydantic import TypeAdapter

from gridgate.errors import BadRequest, GridgateError, ValidationFailed
from gridgate.protocol.openai_responses.request import (
    ResponsesRequest,
    TextFormatJSONSchema,
    decode_responses_request,
    parse_tools,
)

MODEL = "gpt-5"
FUNCTION = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather at a place",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
NAMESPACE = {
    "type": "namespace",
    "name": "crm",
    "description": "The customer records",
    "tools": [
        {"type": "function", "name": "find", "parameters": {"type": "object"}},
        {"type": "custom", "name": "query"},
    ],
}
FULL = {
    "model": MODEL,
    "instructions": "Be brief.",
    "input": [
        {"role": "developer", "content": "Answer in English."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in this picture, and the weather?"},
                {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "auto"},
                {
                    "type": "input_file",
                    "filename": "a.pdf",
                    "file_data": "data:application/pdf;base64,JVBERi0=",
                },
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Think"}],
        },
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Sunny.", "annotations": []}],
        },
        {"role": "user", "content": "thanks"},
    ],
    "tools": [FUNCTION, NAMESPACE, {"type": "web_search"}],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "text": {
        "format": {
            "type": "json_schema",
            "name": "answer",
            "schema": {"type": "object"},
            "strict": True,
        },
        "verbosity": "low",
    },
    "reasoning": {"effort": "high", "summary": "auto"},
    "max_output_tokens": 1000,
    "max_tool_calls": 4,
    "temperature": 0.5,
    "top_p": 0.9,
    "top_logprobs": 2,
    "truncation": "disabled",
    "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
    "prompt_cache_key": "k",
    "prompt_cache_retention": "24h",
    "metadata": {"a": "b"},
    "user": "u",
    "safety_identifier": "s",
    "service_tier": "auto",
    "store": False,
    "previous_response_id": "resp_1",
    "stream": True,
    "stream_options": {"include_obfuscation": False},
    "conversation": None,
    "background": False,
}


def body(**fields: Any) -> bytes:
    return json.dumps({"model": MODEL, "input": "hi", **fields}).encode()


def test_a_full_body_the_sdk_accepts_decodes() -> None:
    # the spec's oneOf of input items is ambiguous without its discriminator (jsonschema
    # ignores it), so the body is checked with the official SDK's request type instead
    TypeAdapter(ResponseCreateParamsStreaming).validate_python(FULL)
    request = decode_responses_request(json.dumps(FULL).encode())
    assert isinstance(request.input, list)
    assert [item.type for item in request.input] == [
        "message",
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "message",
        "message",
    ]
    assert request.input[0].role == "developer"  # no type: a message, as OpenAI reads it
    assert request.stores is False
    assert request.includes("reasoning.encrypted_content")
    assert request.text and isinstance(request.text.format, TextFormatJSONSchema)
    assert [tool.type for tool in parse_tools(request)] == ["function", "namespace", "web_search"]


def test_minimal_bodies() -> None:
    request = decode_responses_request(b'{"model": "m", "input": "hi"}')
    assert isinstance(request, ResponsesRequest)
    assert request.stores is True and request.is_stream is False
    assert decode_responses_request(b'{"model": "m", "previous_response_id": "resp_1"}')


def test_unknown_fields_are_accepted_and_dropped_as_on_the_other_surfaces() -> None:
    request = decode_responses_request(body(moderation={"x": 1}, context_management=[{}]))
    assert request.model == MODEL


B, V = BadRequest, ValidationFailed
IMG = {"type": "input_image", "detail": "auto"}
REFUSED: list[tuple[str, bytes, type[GridgateError], str | None]] = [
    ("not json", b"{", B, None),
    ("not an object", b"[]", B, None),
    ("model missing", b'{"input": "x"}', V, "model"),
    ("input missing", b'{"model": "m"}', V, "input"),
    ("input empty", body(input=[]), V, "input"),
    ("input wrong type", body(input=3), B, "input"),
    ("role missing", body(input=[{"content": "x"}]), V, "input[0].role"),
    ("role unknown", body(input=[{"role": "bot", "content": "x"}]), V, "input[0].role"),
    ("content missing", body(input=[{"role": "user"}]), V, "input[0].content"),
    ("content empty", body(input=[{"role": "user", "content": []}]), V, "input[0].content"),
    (
        "part unknown",
        body(input=[{"role": "user", "content": [{"type": "video"}]}]),
        V,
        "input[0].content[0].type",
    ),
    (
        "output_text from a user",
        body(input=[{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]),
        V,
        "input[0].content[0].type",
    ),
    (
        "image from an assistant",
        body(input=[{"role": "assistant", "content": [{**IMG, "image_url": "https://x"}]}]),
        V,
        "input[0].content[0].type",
    ),
    (
        "image by file_id",
        body(input=[{"role": "user", "content": [{**IMG, "file_id": "file-1"}]}]),
        V,
        "input[0].content[0].file_id",
    ),
    (
        "image without url",
        body(input=[{"role": "user", "content": [IMG]}]),
        V,
        "input[0].content[0].image_url",
    ),
    (
        "image url not a url",
        body(input=[{"role": "user", "content": [{**IMG, "image_url": "ftp://x"}]}]),
        V,
        "input[0].content[0].image_url",
    ),
    (
        "image detail unknown",
        body(
            input=[
                {"role": "user", "content": [{**IMG, "image_url": "https://x", "detail": "max"}]}
            ]
        ),
        V,
        "input[0].content[0].detail",
    ),
    (
        "file by id",
        body(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]),
        V,
        "input[0].content[0].file_id",
    ),
    (
        "file by url",
        body(
            input=[{"role": "user", "content": [{"type": "input_file", "file_url": "https://x"}]}]
        ),
        V,
        "input[0].content[0].file_url",
    ),
    (
        "file without data",
        body(input=[{"role": "user", "content": [{"type": "input_file"}]}]),
        V,
        "input[0].content[0].file_data",
    ),
    (
        "function_call without name",
        body(input=[{"type": "function_call", "call_id": "c", "arguments": "{}"}]),
        V,
        "input[0].name",
    ),
    (
        "function_call_output without output",
        body(input=[{"type": "function_call_output", "call_id": "c"}]),
        V,
        "input[0].output",
    ),
    (
        "reasoning without summary",
        body(input=[{"type": "reasoning", "id": "rs"}]),
        V,
        "input[0].summary",
    ),
    (
        "reasoning summary type",
        body(input=[{"type": "reasoning", "summary": [{"type": "x", "text": "t"}]}]),
        V,
        "input[0].summary[0].type",
    ),
    (
        "item reference",
        body(input=[{"type": "item_reference", "id": "msg_1"}]),
        V,
        "input[0].type",
    ),
    (
        "hosted call item",
        body(input=[{"type": "web_search_call", "id": "ws"}]),
        V,
        "input[0].type",
    ),
    ("temperature", body(temperature=2.5), V, "temperature"),
    ("temperature type", body(temperature="hot"), B, "temperature"),
    ("top_p", body(top_p=1.5), V, "top_p"),
    ("top_logprobs", body(top_logprobs=21), V, "top_logprobs"),
    ("max_output_tokens", body(max_output_tokens=15), V, "max_output_tokens"),
    ("max_tool_calls", body(max_tool_calls=0), V, "max_tool_calls"),
    ("truncation", body(truncation="middle"), V, "truncation"),
    ("include unknown", body(include=["message.output_text.logprobs", "x"]), V, "include[1]"),
    ("service_tier", body(service_tier="gold"), V, "service_tier"),
    (
        "prompt_cache_retention",
        body(prompt_cache_retention="in-memory"),
        V,
        "prompt_cache_retention",
    ),
    ("metadata too many", body(metadata={str(i): "v" for i in range(17)}), V, "metadata"),
    ("metadata key", body(metadata={"k" * 65: "v"}), V, "metadata"),
    ("metadata value", body(metadata={"k": "v" * 513}), V, "metadata"),
    ("metadata value type", body(metadata={"k": 1}), B, "metadata"),
    ("safety_identifier", body(safety_identifier="s" * 65), V, "safety_identifier"),
    ("conversation", body(conversation="conv_1"), V, "conversation"),
    ("prompt", body(prompt={"id": "pmpt_1"}), V, "prompt"),
    ("background", body(background=True), V, "background"),
    (
        "stream_options without stream",
        body(stream_options={"include_obfuscation": True}),
        V,
        "stream_options",
    ),
    ("text format unknown", body(text={"format": {"type": "yaml"}}), V, "text.format.type"),
    (
        "json_schema without schema",
        body(text={"format": {"type": "json_schema", "name": "a"}}),
        V,
        "text.format.schema",
    ),
    (
        "json_schema name",
        body(text={"format": {"type": "json_schema", "name": "a b", "schema": {}}}),
        V,
        "text.format.name",
    ),
    ("verbosity", body(text={"verbosity": "loud"}), V, "text.verbosity"),
    ("reasoning effort", body(reasoning={"effort": "extreme"}), V, "reasoning.effort"),
    ("reasoning summary", body(reasoning={"summary": "long"}), V, "reasoning.summary"),
    ("tools wrong type", body(tools={}), B, "tools"),
    ("tool type missing", body(tools=[{"name": "x"}]), V, "tools[0].type"),
    ("tool type unknown", body(tools=[{"type": "teleport"}]), V, "tools[0].type"),
    ("function name missing", body(tools=[{"type": "function"}]), V, "tools[0].name"),
    ("function name bad", body(tools=[{"type": "function", "name": "a b"}]), V, "tools[0].name"),
    ("function name twice", body(tools=[FUNCTION, FUNCTION]), V, "tools[1].name"),
    (
        "function parameters type",
        body(tools=[{**FUNCTION, "parameters": 3}]),
        V,
        "tools[0].parameters",
    ),
    (
        "namespace without description",
        body(tools=[{**NAMESPACE, "description": None}]),
        V,
        "tools[0].description",
    ),
    ("namespace empty", body(tools=[{**NAMESPACE, "tools": []}]), V, "tools[0].tools"),
    (
        "namespace member type",
        body(tools=[{**NAMESPACE, "tools": [{"type": "mcp", "name": "x"}]}]),
        V,
        "tools[0].tools[0].type",
    ),
    (
        "namespace member clashes",
        body(tools=[NAMESPACE, {**FUNCTION, "name": "crm__find"}]),
        V,
        "tools[1].name",
    ),
    ("tool_choice unknown", body(tools=[FUNCTION], tool_choice="any"), V, "tool_choice"),
    ("tool_choice required without tools", body(tool_choice="required"), V, "tool_choice"),
    (
        "tool_choice function unknown",
        body(tools=[FUNCTION], tool_choice={"type": "function", "name": "x"}),
        V,
        "tool_choice.name",
    ),
    (
        "tool_choice type unknown",
        body(tools=[FUNCTION], tool_choice={"type": "teleport"}),
        V,
        "tool_choice.type",
    ),
    (
        "allowed_tools without mode",
        body(tools=[FUNCTION], tool_choice={"type": "allowed_tools", "tools": []}),
        V,
        "tool_choice.mode",
    ),
    (
        "allowed_tools unknown",
        body(
            tools=[FUNCTION],
            tool_choice={
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "x"}],
            },
        ),
        V,
        "tool_choice.tools[0].name",
    ),
    ("provider", body(provider={"sort": "cheapest"}), V, "provider.sort"),
]


@pytest.mark.parametrize(
    ("raw", "error", "param"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_refused_naming_the_param(
    raw: bytes, error: type[GridgateError], param: str | None
) -> None:
    with pytest.raises(GridgateError) as caught:
        decode_responses_request(raw)
    assert type(caught.value) is error, caught.value.message
    assert caught.value.param == param
    if param:
        assert caught.value.message.startswith(f"{param}: ")


def test_namespaced_functions_can_be_chosen_by_their_flat_name() -> None:
    choice = {"type": "function", "name": "crm__find"}
    assert decode_responses_request(body(tools=[NAMESPACE], tool_choice=choice))
