"""Chat request decoding: one row per rule, valid bodies at their bounds, and re-encoding."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gridgate.errors import BadRequest, GridgateError, ValidationFailed
from gridgate.protocol.openai_chat import (
    AssistantMessage,
    AudioPart,
    ChatRequest,
    FilePart,
    ImagePart,
    NamedToolChoice,
    ResponseFormatJSONSchema,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    decode_chat_request,
)

USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "get_weather"}}
DELETE = object()


def body(**fields: Any) -> bytes:
    """A valid minimal request with ``fields`` set (or removed with DELETE), as JSON bytes."""
    doc: dict[str, Any] = {"model": "text-prime", "messages": [USER]}
    for key, value in fields.items():
        if value is DELETE:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def msgs(*messages: Any) -> bytes:
    return body(messages=list(messages))


def user_parts(*parts: Any) -> bytes:
    return msgs({"role": "user", "content": list(parts)})


B, V = BadRequest, ValidationFailed

INVALID: list[tuple[str, bytes, type[Exception], str | None]] = [
    # ---- the body itself
    ("not json", b"{nope", B, None),
    ("truncated", b'{"model": "x"', B, None),
    ("empty body", b"", B, None),
    ("null body", b"null", B, None),
    ("array body", b"[]", B, None),
    ("string body", b'"hello"', B, None),
    ("number body", b"42", B, None),
    ("trailing garbage", body() + b"x", B, None),
    ("invalid utf-8", b'{"model": "\xff"}', B, None),
    ("lone surrogate", b'{"model": "\\ud800", "messages": []}', B, None),
    ("deeply nested", b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", B, None),
    # ---- required fields
    ("model missing", body(model=DELETE), V, "model"),
    ("messages missing", body(messages=DELETE), V, "messages"),
    ("messages empty", body(messages=[]), V, "messages"),
    ("model null", body(model=None), B, "model"),
    ("model number", body(model=5), B, "model"),
    ("messages object", body(messages={}), B, "messages"),
    ("messages string", body(messages="hi"), B, "messages"),
    # ---- wrong types
    ("temperature string", body(temperature="hot"), B, "temperature"),
    ("temperature bool", body(temperature=True), B, "temperature"),
    ("n float", body(n=1.5), B, "n"),
    ("n string", body(n="2"), B, "n"),
    ("stream string", body(stream="yes"), B, "stream"),
    ("max_tokens float", body(max_tokens=10.5), B, "max_tokens"),
    ("stop number", body(stop=5), B, "stop"),
    ("stop list of numbers", body(stop=[1]), B, "stop[0]"),
    ("logprobs string", body(logprobs="true"), B, "logprobs"),
    ("seed float", body(seed=1.5), B, "seed"),
    ("user number", body(user=5), B, "user"),
    ("metadata value number", body(metadata={"k": 1}), B, "metadata"),
    ("logit_bias value float", body(logit_bias={"1": 0.5}), B, "logit_bias"),
    ("provider list", body(provider=[]), B, "provider"),
    ("audio string", body(audio="alloy"), B, "audio"),
    ("tools object", body(tools={}), B, "tools"),
    ("tool_choice number", body(tool_choice=1), B, "tool_choice"),
    ("response_format string", body(response_format="json"), B, "response_format"),
    ("content number", msgs({"role": "user", "content": 5}), B, "messages[0].content"),
    ("content object", msgs({"role": "user", "content": {}}), B, "messages[0].content"),
    ("message not object", msgs("hello"), B, "messages[0]"),
    ("role number", msgs({"role": 1, "content": "x"}), B, "messages[0].role"),
    ("name number", msgs({"role": "user", "content": "x", "name": 1}), B, "messages[0].name"),
    (
        "text part text number",
        user_parts({"type": "text", "text": 1}),
        B,
        "messages[0].content[0].text",
    ),
    # ---- not nullable
    ("route null", body(route=None), B, "route"),
    ("provider null", body(provider=None), B, "provider"),
    ("user null", body(user=None), B, "user"),
    ("parallel_tool_calls null", body(parallel_tool_calls=None), B, "parallel_tool_calls"),
    # ---- bounds
    ("max_tokens 0", body(max_tokens=0), V, "max_tokens"),
    ("max_tokens negative", body(max_tokens=-5), V, "max_tokens"),
    ("max_tokens above int64", body(max_tokens=2**63), V, "max_tokens"),
    ("max_completion_tokens 0", body(max_completion_tokens=0), V, "max_completion_tokens"),
    ("temperature above 2", body(temperature=3.5), V, "temperature"),
    ("temperature below 0", body(temperature=-0.1), V, "temperature"),
    ("temperature huge", b'{"model":"m","messages":[],"temperature":1e999}', V, "temperature"),
    ("top_p above 1", body(top_p=1.01), V, "top_p"),
    ("top_p below 0", body(top_p=-1), V, "top_p"),
    ("n 0", body(n=0), V, "n"),
    ("n 129", body(n=129), V, "n"),
    ("n huge", body(n=10**30), V, "n"),
    ("stop 5 items", body(stop=["a", "b", "c", "d", "e"]), V, "stop"),
    ("top_logprobs 21", body(top_logprobs=21, logprobs=True), V, "top_logprobs"),
    ("top_logprobs -1", body(top_logprobs=-1, logprobs=True), V, "top_logprobs"),
    ("top_logprobs without logprobs", body(top_logprobs=5), V, "top_logprobs"),
    ("top_logprobs with logprobs false", body(top_logprobs=5, logprobs=False), V, "top_logprobs"),
    ("frequency_penalty above 2", body(frequency_penalty=2.5), V, "frequency_penalty"),
    ("frequency_penalty below -2", body(frequency_penalty=-2.01), V, "frequency_penalty"),
    ("presence_penalty above 2", body(presence_penalty=3), V, "presence_penalty"),
    ("presence_penalty below -2", body(presence_penalty=-3), V, "presence_penalty"),
    ("seed above int64", body(seed=2**63), V, "seed"),
    ("logit_bias above 100", body(logit_bias={"50256": 101}), V, "logit_bias"),
    ("logit_bias below -100", body(logit_bias={"50256": -101}), V, "logit_bias"),
    ("logit_bias key not a token id", body(logit_bias={"hello": 1}), V, "logit_bias"),
    ("metadata too many pairs", body(metadata={str(i): "v" for i in range(17)}), V, "metadata"),
    ("metadata key too long", body(metadata={"k" * 65: "v"}), V, "metadata"),
    ("metadata value too long", body(metadata={"k": "v" * 513}), V, "metadata"),
    # ---- enums
    ("service_tier unknown", body(service_tier="fast"), V, "service_tier"),
    ("reasoning_effort unknown", body(reasoning_effort="extreme"), V, "reasoning_effort"),
    ("verbosity unknown", body(verbosity="loud"), V, "verbosity"),
    (
        "prompt_cache_retention unknown",
        body(prompt_cache_retention="1h"),
        V,
        "prompt_cache_retention",
    ),
    ("route unknown", body(route="cheapest"), V, "route"),
    ("modalities unknown", body(modalities=["text", "video"]), V, "modalities[1]"),
    ("tool_choice unknown string", body(tools=[TOOL], tool_choice="any"), V, "tool_choice"),
    # ---- stream options
    (
        "stream_options without stream",
        body(stream_options={"include_usage": True}),
        V,
        "stream_options",
    ),
    (
        "stream_options with stream false",
        body(stream=False, stream_options={"include_usage": True}),
        V,
        "stream_options",
    ),
    (
        "include_usage not bool",
        body(stream=True, stream_options={"include_usage": "yes"}),
        V,
        "stream_options.include_usage",
    ),
    # ---- response_format
    (
        "response_format type unknown",
        body(response_format={"type": "xml"}),
        V,
        "response_format.type",
    ),
    ("response_format type missing", body(response_format={}), V, "response_format.type"),
    (
        "json_schema missing",
        body(response_format={"type": "json_schema"}),
        V,
        "response_format.json_schema",
    ),
    (
        "json_schema name missing",
        body(response_format={"type": "json_schema", "json_schema": {}}),
        V,
        "response_format.json_schema.name",
    ),
    (
        "json_schema name bad chars",
        body(response_format={"type": "json_schema", "json_schema": {"name": "a b"}}),
        V,
        "response_format.json_schema.name",
    ),
    (
        "json_schema name too long",
        body(response_format={"type": "json_schema", "json_schema": {"name": "a" * 65}}),
        V,
        "response_format.json_schema.name",
    ),
    (
        "json_schema name empty",
        body(response_format={"type": "json_schema", "json_schema": {"name": ""}}),
        V,
        "response_format.json_schema.name",
    ),
    (
        "json_schema schema not object",
        body(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": []}}),
        V,
        "response_format.json_schema.schema",
    ),
    (
        "json_schema strict not bool",
        body(response_format={"type": "json_schema", "json_schema": {"name": "a", "strict": "y"}}),
        V,
        "response_format.json_schema.strict",
    ),
    # ---- tools and tool_choice
    ("tool not object", body(tools=["get_weather"]), V, "tools[0]"),
    ("tool type missing", body(tools=[{"function": {"name": "f"}}]), V, "tools[0].type"),
    (
        "tool type custom",
        body(tools=[{"type": "custom", "function": {"name": "f"}}]),
        V,
        "tools[0].type",
    ),
    ("tool function missing", body(tools=[{"type": "function"}]), V, "tools[0].function"),
    (
        "tool name missing",
        body(tools=[{"type": "function", "function": {}}]),
        V,
        "tools[0].function.name",
    ),
    (
        "tool name bad chars",
        body(tools=[{"type": "function", "function": {"name": "get.w"}}]),
        V,
        "tools[0].function.name",
    ),
    (
        "tool name too long",
        body(tools=[{"type": "function", "function": {"name": "f" * 65}}]),
        V,
        "tools[0].function.name",
    ),
    (
        "tool parameters not object",
        body(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        V,
        "tools[0].function.parameters",
    ),
    (
        "tool description number",
        body(tools=[{"type": "function", "function": {"name": "f", "description": 1}}]),
        V,
        "tools[0].function.description",
    ),
    ("tool_choice auto without tools", body(tool_choice="auto"), V, "tool_choice"),
    (
        "tool_choice required with empty tools",
        body(tools=[], tool_choice="required"),
        V,
        "tool_choice",
    ),
    (
        "tool_choice named unknown tool",
        body(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "other"}}),
        V,
        "tool_choice.function.name",
    ),
    (
        "tool_choice named without tools",
        body(tool_choice={"type": "function", "function": {"name": "f"}}),
        V,
        "tool_choice",
    ),
    (
        "tool_choice object type wrong",
        body(tools=[TOOL], tool_choice={"type": "tool", "function": {"name": "get_weather"}}),
        V,
        "tool_choice.type",
    ),
    (
        "tool_choice object no function",
        body(tools=[TOOL], tool_choice={"type": "function"}),
        V,
        "tool_choice.function",
    ),
    (
        "tool_choice function not object",
        body(tools=[TOOL], tool_choice={"type": "function", "function": "get_weather"}),
        V,
        "tool_choice.function",
    ),
    # ---- messages
    ("role missing", msgs({"content": "x"}), V, "messages[0].role"),
    ("role unknown", msgs(USER, {"role": "bot", "content": "x"}), V, "messages[1].role"),
    (
        "role function (legacy)",
        msgs({"role": "function", "name": "f", "content": "x"}),
        V,
        "messages[0].role",
    ),
    ("user content missing", msgs({"role": "user"}), V, "messages[0].content"),
    ("system content missing", msgs({"role": "system"}), V, "messages[0].content"),
    ("content empty list", msgs({"role": "user", "content": []}), V, "messages[0].content"),
    (
        "tool message without tool_call_id",
        msgs({"role": "tool", "content": "42"}),
        V,
        "messages[0].tool_call_id",
    ),
    (
        "tool message without content",
        msgs({"role": "tool", "tool_call_id": "c1"}),
        V,
        "messages[0].content",
    ),
    (
        "assistant without content or tool_calls",
        msgs(USER, {"role": "assistant"}),
        V,
        "messages[1].content",
    ),
    (
        "assistant null content without tool_calls",
        msgs(USER, {"role": "assistant", "content": None}),
        V,
        "messages[1].content",
    ),
    (
        "assistant tool_calls empty",
        msgs(USER, {"role": "assistant", "content": "x", "tool_calls": []}),
        V,
        "messages[1].tool_calls",
    ),
    (
        "tool_call id missing",
        msgs(
            {
                "role": "assistant",
                "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}],
            }
        ),
        V,
        "messages[0].tool_calls[0].id",
    ),
    (
        "tool_call type wrong",
        msgs(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "fn", "function": {"name": "f", "arguments": "{}"}}
                ],
            }
        ),
        V,
        "messages[0].tool_calls[0].type",
    ),
    (
        "tool_call arguments object",
        msgs(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}
                ],
            }
        ),
        V,
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        "tool_call function missing",
        msgs({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}),
        V,
        "messages[0].tool_calls[0].function",
    ),
    # ---- content parts
    (
        "part type unknown",
        user_parts({"type": "video", "video": {}}),
        V,
        "messages[0].content[0].type",
    ),
    ("part type missing", user_parts({"text": "x"}), V, "messages[0].content[0].type"),
    ("text part text missing", user_parts({"type": "text"}), V, "messages[0].content[0].text"),
    ("image_url missing", user_parts({"type": "image_url"}), V, "messages[0].content[0].image_url"),
    (
        "image_url url missing",
        user_parts({"type": "image_url", "image_url": {}}),
        V,
        "messages[0].content[0].image_url.url",
    ),
    (
        "image_url detail unknown",
        user_parts({"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "max"}}),
        V,
        "messages[0].content[0].image_url.detail",
    ),
    (
        "input_audio data missing",
        user_parts({"type": "input_audio", "input_audio": {"format": "wav"}}),
        V,
        "messages[0].content[0].input_audio.data",
    ),
    (
        "input_audio format missing",
        user_parts({"type": "input_audio", "input_audio": {"data": "AAAA"}}),
        V,
        "messages[0].content[0].input_audio.format",
    ),
    (
        "input_audio format unknown",
        user_parts({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "ogg"}}),
        V,
        "messages[0].content[0].input_audio.format",
    ),
    (
        "file without data or id",
        user_parts({"type": "file", "file": {"filename": "a.pdf"}}),
        V,
        "messages[0].content[0].file",
    ),
    ("file missing", user_parts({"type": "file"}), V, "messages[0].content[0].file"),
    (
        "image in system message",
        msgs({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}),
        V,
        "messages[0].content[0].type",
    ),
    (
        "image in developer message",
        msgs({"role": "developer", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}),
        V,
        "messages[0].content[0].type",
    ),
    (
        "image in tool message",
        msgs(
            {
                "role": "tool",
                "tool_call_id": "c",
                "content": [{"type": "image_url", "image_url": {"url": "u"}}],
            }
        ),
        V,
        "messages[0].content[0].type",
    ),
    (
        "image in assistant message",
        msgs(
            USER,
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "image_url", "image_url": {"url": "u"}},
                ],
            },
        ),
        V,
        "messages[1].content[1].type",
    ),
    (
        "refusal in user message",
        user_parts({"type": "refusal", "refusal": "no"}),
        V,
        "messages[0].content[0].type",
    ),
    (
        "file in system message",
        msgs({"role": "system", "content": [{"type": "file", "file": {"file_id": "f"}}]}),
        V,
        "messages[0].content[0].type",
    ),
    (
        "refusal in tool message",
        msgs(
            {"role": "tool", "tool_call_id": "c", "content": [{"type": "refusal", "refusal": "n"}]}
        ),
        V,
        "messages[0].content[0].type",
    ),
]


@pytest.mark.parametrize(
    ("raw", "error", "param"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_bodies_are_rejected(raw: bytes, error: type[Exception], param: str | None) -> None:
    with pytest.raises(error) as info:
        decode_chat_request(raw)
    exc = info.value
    assert type(exc) is error
    assert isinstance(exc, BadRequest | ValidationFailed)
    assert exc.param == param
    if param is not None:
        assert exc.message.startswith(f"{param}:"), exc.message
    # Never Python internals, always renderable.
    for leak in ("Traceback", "msgspec", "Struct", "NoneType", "UnsetType", "`"):
        assert leak not in exc.message
    assert json.loads(exc.render())["error"]["param"] == param


def test_table_is_big_enough() -> None:
    assert len(INVALID) >= 60


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (body(temperature=3.5), "temperature: must be between 0 and 2 (got 3.5)"),
        (body(n=0), "n: must be between 1 and 128 (got 0)"),
        (body(max_tokens=0), "max_tokens: must be at least 1 (got 0)"),
        (body(temperature="hot"), "temperature: expected a number or null, got a string"),
        (body(messages={}), "messages: expected an array, got an object"),
        (body(model=DELETE), "model: is required"),
        (body(messages=[]), "messages: must contain at least one message"),
        (
            body(service_tier="fast"),
            "service_tier: must be one of 'auto', 'default', 'flex', 'scale', 'priority'"
            " (got 'fast')",
        ),
        (
            msgs(USER, {"role": "bot", "content": "x"}),
            "messages[1].role: must be one of 'system', 'developer', 'user', 'assistant', 'tool'"
            " (got 'bot')",
        ),
        (b"null", "request body must be a JSON object (got null)"),
        (b"[1, 2]", "request body must be a JSON object (got an array)"),
        (b"{", "request body is not valid JSON: unexpected end of input"),
        (body(seed=10**40), "seed: must be a 64-bit signed integer (got a very large integer)"),
    ],
)
def test_messages_name_the_field(raw: bytes, expected: str) -> None:
    with pytest.raises((BadRequest, ValidationFailed)) as info:
        decode_chat_request(raw)
    assert info.value.message == expected


def test_long_invalid_values_are_clipped() -> None:
    with pytest.raises(ValidationFailed) as info:
        decode_chat_request(body(service_tier="x" * 10_000))
    assert len(info.value.message) < 200


# --------------------------------------------------------------------------------------------
# Valid bodies

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
FILE_DATA = {
    "type": "file",
    "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
}
FILE_ID = {"type": "file", "file": {"file_id": "file-123"}}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {}),
    (
        "lower bounds",
        {
            "max_tokens": 1,
            "max_completion_tokens": 1,
            "temperature": 0,
            "top_p": 0,
            "n": 1,
            "frequency_penalty": -2,
            "presence_penalty": -2,
            "top_logprobs": 0,
            "logprobs": True,
            "seed": -(2**63),
            "logit_bias": {"1": -100},
        },
    ),
    (
        "upper bounds",
        {
            "max_tokens": 2**63 - 1,
            "temperature": 2,
            "top_p": 1,
            "n": 128,
            "frequency_penalty": 2,
            "presence_penalty": 2,
            "top_logprobs": 20,
            "logprobs": True,
            "seed": 2**63 - 1,
            "logit_bias": {"50256": 100},
            "stop": ["a", "b", "c", "d"],
        },
    ),
    ("float bounds", {"temperature": 1.99, "top_p": 0.5, "frequency_penalty": 0.1}),
    ("stop string", {"stop": "\n\n"}),
    ("stop empty list", {"stop": []}),
    (
        "nulls where nullable",
        {
            "max_tokens": None,
            "max_completion_tokens": None,
            "temperature": None,
            "top_p": None,
            "n": None,
            "stream": None,
            "stream_options": None,
            "stop": None,
            "logprobs": None,
            "top_logprobs": None,
            "response_format": None,
            "tools": None,
            "tool_choice": None,
            "frequency_penalty": None,
            "presence_penalty": None,
            "seed": None,
            "service_tier": None,
            "reasoning_effort": None,
            "store": None,
            "verbosity": None,
            "prompt_cache_key": None,
            "prompt_cache_retention": None,
            "safety_identifier": None,
            "logit_bias": None,
            "metadata": None,
            "modalities": None,
            "audio": None,
            "prediction": None,
            "web_search_options": None,
        },
    ),
    ("top_logprobs null without logprobs", {"top_logprobs": None}),
    ("stream with usage", {"stream": True, "stream_options": {"include_usage": True}}),
    ("stream options empty", {"stream": True, "stream_options": {}}),
    ("stream false", {"stream": False}),
    (
        "every enum",
        {
            "service_tier": "priority",
            "reasoning_effort": "xhigh",
            "verbosity": "low",
            "prompt_cache_retention": "24h",
            "route": "fallback",
            "modalities": ["text", "audio"],
        },
    ),
    ("reasoning max", {"reasoning_effort": "max"}),
    ("reasoning none", {"reasoning_effort": "none", "service_tier": "flex"}),
    (
        "prompt cache",
        {
            "prompt_cache_key": "k",
            "prompt_cache_retention": "in-memory",
            "safety_identifier": "u-1",
            "user": "u",
            "store": True,
        },
    ),
    (
        "opaque objects",
        {
            "provider": {"allow_fallbacks": False, "order": ["a"]},
            "audio": {"voice": "alloy", "format": "wav"},
            "prediction": {"type": "content", "content": "x"},
            "web_search_options": {"search_context_size": "low"},
            "metadata": {"k": "v"},
        },
    ),
    ("parallel_tool_calls", {"parallel_tool_calls": False}),
    (
        "every role",
        {
            "messages": [
                {"role": "system", "content": "s", "name": "sys"},
                {"role": "developer", "content": [{"type": "text", "text": "d"}]},
                {"role": "user", "content": "u", "name": "alice"},
                {"role": "assistant", "content": None, "tool_calls": [CALL], "refusal": None},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "content": [{"type": "text", "text": "x"}],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "a"},
                        {"type": "refusal", "refusal": "no"},
                    ],
                },
                {"role": "assistant", "refusal": "I can't"},
                {"role": "assistant", "content": "", "name": "bot"},
            ]
        },
    ),
    (
        "every user part",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        IMAGE,
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        AUDIO,
                        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
                        FILE_DATA,
                        FILE_ID,
                    ],
                }
            ]
        },
    ),
    (
        "tools and named tool_choice",
        {
            "tools": [
                TOOL,
                {
                    "type": "function",
                    "function": {
                        "name": "lookup-2",
                        "description": "d",
                        "parameters": SCHEMA,
                        "strict": True,
                    },
                },
            ],
            "tool_choice": {"type": "function", "function": {"name": "lookup-2"}},
            "parallel_tool_calls": True,
        },
    ),
    ("tool_choice modes", {"tools": [TOOL], "tool_choice": "required"}),
    ("tool_choice none without tools", {"tool_choice": "none"}),
    ("tools empty", {"tools": []}),
    ("tool name 64 chars", {"tools": [{"type": "function", "function": {"name": "a" * 64}}]}),
    ("response_format text", {"response_format": {"type": "text"}}),
    ("response_format json_object", {"response_format": {"type": "json_object"}}),
    (
        "response_format json_schema",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "weather_1",
                    "description": "w",
                    "schema": SCHEMA,
                    "strict": True,
                },
            }
        },
    ),
    (
        "json_schema without schema",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
    ),
    ("unicode", {"messages": [{"role": "user", "content": "héllo 世界 😀 \u0000"}]}),
]


@pytest.mark.parametrize("fields", [row[1] for row in VALID], ids=[row[0] for row in VALID])
def test_valid_bodies_decode_and_reencode_as_sent(fields: dict[str, Any]) -> None:
    sent = {"model": "text-prime", "messages": [USER], **fields}
    req = decode_chat_request(json.dumps(sent).encode())
    assert isinstance(req, ChatRequest)
    assert json.loads(msgspec.json.encode(req)) == sent


def test_unknown_fields_are_accepted_and_dropped() -> None:
    sent = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "x", "annotations": {}}],
                "extra": 1,
            },
            {"role": "assistant", "content": "y", "function_call": None, "annotations": []},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "x": 1}, "y": 2}],
        "functions": [{"name": "f"}],
        "frobnicate": True,
    }
    req = decode_chat_request(json.dumps(sent).encode())
    assert json.loads(msgspec.json.encode(req)) == {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x"}]},
            {"role": "assistant", "content": "y"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }


def test_extension_fields_are_decoded_and_reencoded() -> None:
    sent = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
            },
            {
                "role": "assistant",
                "content": "y",
                "reasoning_content": "r",
                "thinking_blocks": [{"type": "thinking", "thinking": "r", "signature": "s"}],
            },
            {"role": "user", "content": "z"},
        ],
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    req = decode_chat_request(json.dumps(sent).encode())
    assert req.has_extensions
    assert json.loads(msgspec.json.encode(req)) == sent


@pytest.mark.parametrize(
    ("extra", "status", "param"),
    [
        ({"top_k": -1}, 422, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 0}}, 422, "thinking.budget_tokens"),
        ({"thinking": {"type": "sometimes"}}, 422, "thinking.type"),
        ({"thinking": {"type": "enabled"}}, 422, "thinking.budget_tokens"),
    ],
)
def test_extension_fields_are_validated(extra: dict[str, object], status: int, param: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(GridgateError) as caught:
        decode_chat_request(json.dumps(body).encode())
    assert (caught.value.status, caught.value.param) == (status, param)


def test_structs_are_typed() -> None:
    req = decode_chat_request(
        json.dumps(
            {
                "model": "m",
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": [{"type": "text", "text": "t"}, IMAGE]},
                    {"role": "assistant", "tool_calls": [CALL]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "r"},
                ],
                "tools": [TOOL],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "response_format": {"type": "json_schema", "json_schema": {"name": "n"}},
            }
        ).encode()
    )
    system, user, assistant, tool = req.messages
    assert isinstance(system, SystemMessage)
    assert isinstance(user, UserMessage)
    assert isinstance(user.content, list)
    assert isinstance(user.content[0], TextPart)
    assert isinstance(user.content[1], ImagePart)
    assert user.content[1].image_url.detail == "high"
    assert isinstance(assistant, AssistantMessage)
    assert assistant.tool_calls
    assert assistant.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert isinstance(tool, ToolMessage)
    assert isinstance(req.tool_choice, NamedToolChoice)
    assert isinstance(req.response_format, ResponseFormatJSONSchema)


# --------------------------------------------------------------------------------------------
# Helpers


def decode(**fields: Any) -> ChatRequest:
    return decode_chat_request(body(**fields))


def test_effective_max_tokens() -> None:
    assert decode().effective_max_tokens is None
    assert decode(max_tokens=10).effective_max_tokens == 10
    assert decode(max_completion_tokens=20, max_tokens=10).effective_max_tokens == 20
    assert decode(max_completion_tokens=None, max_tokens=10).effective_max_tokens == 10


def test_include_usage_and_stream() -> None:
    assert not decode().include_usage
    assert not decode().is_stream
    assert not decode(stream=True).include_usage
    assert not decode(stream=True, stream_options={"include_usage": False}).include_usage
    req = decode(stream=True, stream_options={"include_usage": True})
    assert req.include_usage
    assert req.is_stream


def test_wants_tools() -> None:
    assert not decode().wants_tools
    assert not decode(tools=[]).wants_tools
    assert decode(tools=[TOOL]).wants_tools
    assert decode(tools=[TOOL], tool_choice="auto").wants_tools
    assert not decode(tools=[TOOL], tool_choice="none").wants_tools


def test_wants_json() -> None:
    assert not decode().wants_json_schema
    assert not decode(response_format={"type": "json_object"}).wants_json_schema
    assert decode(response_format={"type": "json_object"}).wants_json_object
    assert decode(
        response_format={"type": "json_schema", "json_schema": {"name": "a"}}
    ).wants_json_schema
    assert decode(logprobs=True).wants_logprobs
    assert not decode(logprobs=None).wants_logprobs


def test_input_kinds() -> None:
    plain = decode()
    assert not plain.has_image_input
    assert not plain.has_audio_input
    assert not plain.has_file_input
    assert decode_chat_request(user_parts(IMAGE)).has_image_input
    assert decode_chat_request(user_parts(AUDIO)).has_audio_input
    assert decode_chat_request(user_parts(FILE_ID)).has_file_input
    only_text = decode_chat_request(user_parts({"type": "text", "text": "x"}))
    assert not only_text.has_image_input
    mixed = decode_chat_request(msgs(USER, {"role": "user", "content": [AUDIO, FILE_DATA]}))
    assert mixed.has_audio_input
    assert mixed.has_file_input
    assert not mixed.has_image_input
    assert isinstance(mixed.messages[1].content, list)
    assert isinstance(mixed.messages[1].content[0], AudioPart)
    assert isinstance(mixed.messages[1].content[1], FilePart)


def test_n_choices_and_stop_list() -> None:
    assert decode().n_choices == 1
    assert decode(n=None).n_choices == 1
    assert decode(n=4).n_choices == 4
    assert decode().stop_list == []
    assert decode(stop=None).stop_list == []
    assert decode(stop="x").stop_list == ["x"]
    assert decode(stop=["a", "b"]).stop_list == ["a", "b"]


def test_replace_then_encode_for_upstream() -> None:
    req = decode(max_tokens=100, temperature=0.5)
    upstream = msgspec.structs.replace(req, model="gpt-x", max_tokens=50)
    assert json.loads(msgspec.json.encode(upstream)) == {
        "model": "gpt-x",
        "messages": [USER],
        "max_tokens": 50,
        "temperature": 0.5,
    }
