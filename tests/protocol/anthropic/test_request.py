"""Messages request decoding: one row per rule, bodies from Anthropic's docs, and fuzzing.

Fuzzing runs the translation too: whatever decodes either translates into a canonical request
that can be encoded and measured, or is refused with a ValidationFailed naming the part.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from gridgate.errors import BadRequest, ThreadUnsupported, ValidationFailed
from gridgate.protocol.anthropic.request import (
    AssistantMessage,
    Base64Source,
    ContentSource,
    DocumentBlock,
    FileSource,
    ImageBlock,
    JSONOutputFormat,
    MessagesRequest,
    PlainTextSource,
    RedactedThinkingBlock,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ThinkingConfigAdaptive,
    ThinkingConfigEnabled,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
    UserMessage,
    decode_messages_request,
)
from gridgate.protocol.anthropic.to_chat import to_chat_request
from gridgate.protocol.openai_chat import CacheControl, ChatRequest
from gridgate.protocol.tokens import measure_prompt

MODEL = "claude-sonnet-4-5"
USER = {"role": "user", "content": "Hello, Claude"}
TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
CALL_ID = "toolu_01A09q90qw90lq917835lq9"
TOOL_USE = {
    "type": "tool_use",
    "id": CALL_ID,
    "name": "get_weather",
    "input": {"location": "San Francisco, CA"},
}
ASKED = {"role": "assistant", "content": [TOOL_USE]}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
DELETE = object()


def body(**fields: Any) -> bytes:
    """A valid minimal request with ``fields`` set (or removed with DELETE), as JSON bytes."""
    doc: dict[str, Any] = {"model": MODEL, "max_tokens": 1024, "messages": [USER]}
    for key, value in fields.items():
        if value is DELETE:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def msgs(*messages: Any) -> bytes:
    return body(messages=list(messages))


def user_blocks(*blocks: Any) -> bytes:
    return msgs({"role": "user", "content": list(blocks)})


def answer(*blocks: Any) -> bytes:
    """A tool_use turn, then a user turn answering it with ``blocks``."""
    return msgs(USER, ASKED, {"role": "user", "content": list(blocks)})


def tools(*items: Any, **fields: Any) -> bytes:
    return body(tools=list(items), **fields)


def result(**fields: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": CALL_ID, **fields}


B, V = BadRequest, ValidationFailed

INVALID: list[tuple[str, bytes, type[Exception], str | None]] = [
    # ---- the body itself
    ("not json", b"{nope", B, None),
    ("truncated", b'{"model": "x"', B, None),
    ("empty body", b"", B, None),
    ("null body", b"null", B, None),
    ("array body", b"[]", B, None),
    ("number body", b"42", B, None),
    ("trailing garbage", body() + b"x", B, None),
    ("invalid utf-8", b'{"model": "\xff"}', B, None),
    ("deeply nested", b'{"speed": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", B, None),
    # ---- top-level fields Anthropic's API does not know: refused in its words
    ("unknown field", body(frobnicate=True), B, "frobnicate"),
    ("unknown field null", body(temperatures=None), B, "temperatures"),
    # ---- required fields
    ("model missing", body(model=DELETE), V, "model"),
    ("max_tokens missing", body(max_tokens=DELETE), V, "max_tokens"),
    ("messages missing", body(messages=DELETE), V, "messages"),
    ("messages empty", body(messages=[]), V, "messages"),
    # ---- wrong JSON types
    ("model number", body(model=5), B, "model"),
    ("model null", body(model=None), B, "model"),
    ("max_tokens float", body(max_tokens=10.5), B, "max_tokens"),
    ("max_tokens string", body(max_tokens="1024"), B, "max_tokens"),
    ("max_tokens null", body(max_tokens=None), B, "max_tokens"),
    ("messages object", body(messages={}), B, "messages"),
    ("message not object", msgs("hello"), B, "messages[0]"),
    ("content number", msgs({"role": "user", "content": 5}), B, "messages[0].content"),
    ("content null", msgs({"role": "user", "content": None}), B, "messages[0].content"),
    ("temperature string", body(temperature="hot"), B, "temperature"),
    ("temperature null", body(temperature=None), B, "temperature"),
    ("top_k float", body(top_k=1.5), B, "top_k"),
    ("stream string", body(stream="yes"), B, "stream"),
    ("stop_sequences string", body(stop_sequences="END"), B, "stop_sequences"),
    ("stop_sequences numbers", body(stop_sequences=[1]), B, "stop_sequences[0]"),
    ("system number", body(system=5), B, "system"),
    ("system block text number", body(system=[{"type": "text", "text": 1}]), B, "system[0].text"),
    ("metadata string", body(metadata="u"), B, "metadata"),
    ("metadata user_id number", body(metadata={"user_id": 5}), B, "metadata.user_id"),
    ("tools object", body(tools={}), B, "tools"),
    (
        "text block text number",
        user_blocks({"type": "text", "text": 1}),
        B,
        "messages[0].content[0].text",
    ),
    (
        "tool_use input not object",
        msgs(USER, {"role": "assistant", "content": [{**TOOL_USE, "input": "x"}]}),
        B,
        "messages[1].content[0].input",
    ),
    ("is_error string", answer(result(is_error="yes")), B, "messages[2].content[0].is_error"),
    (
        "image data number",
        user_blocks({"type": "image", "source": {**PNG, "data": 1}}),
        B,
        "messages[0].content[0].source.data",
    ),
    # ---- bounds
    ("max_tokens 0", body(max_tokens=0), V, "max_tokens"),
    ("max_tokens negative", body(max_tokens=-1), V, "max_tokens"),
    ("max_tokens above int64", body(max_tokens=2**63), V, "max_tokens"),
    ("temperature above 1", body(temperature=1.5), V, "temperature"),
    ("temperature below 0", body(temperature=-0.1), V, "temperature"),
    ("top_p above 1", body(top_p=1.01), V, "top_p"),
    ("top_p below 0", body(top_p=-1), V, "top_p"),
    ("top_k negative", body(top_k=-1), V, "top_k"),
    ("top_k huge", body(top_k=10**30), V, "top_k"),
    ("metadata user_id too long", body(metadata={"user_id": "u" * 257}), V, "metadata.user_id"),
    # ---- enums
    ("service_tier unknown", body(service_tier="priority"), V, "service_tier"),
    ("role unknown", msgs({"role": "bot", "content": "x"}), V, "messages[0].role"),
    ("role tool (OpenAI style)", msgs({"role": "tool", "content": "x"}), V, "messages[0].role"),
    ("role missing", msgs({"content": "x"}), V, "messages[0].role"),
    ("content missing", msgs({"role": "user"}), V, "messages[0].content"),
    ("content empty list", msgs({"role": "user", "content": []}), V, "messages[0].content"),
    # ---- content blocks
    (
        "block type unknown",
        user_blocks({"type": "video", "source": {}}),
        V,
        "messages[0].content[0].type",
    ),
    (
        "block type search_result (not carried)",
        user_blocks({"type": "search_result", "source": "s", "title": "t", "content": []}),
        V,
        "messages[0].content[0].type",
    ),
    (
        "server_tool_use block",
        msgs(USER, {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s"}]}),
        V,
        "messages[1].content[0].type",
    ),
    ("block type missing", user_blocks({"text": "x"}), V, "messages[0].content[0].type"),
    ("text block text missing", user_blocks({"type": "text"}), V, "messages[0].content[0].text"),
    (
        "cache_control type unknown",
        user_blocks({"type": "text", "text": "x", "cache_control": {"type": "forever"}}),
        V,
        "messages[0].content[0].cache_control.type",
    ),
    (
        "cache_control ttl unknown",
        user_blocks(
            {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}
        ),
        V,
        "messages[0].content[0].cache_control.ttl",
    ),
    ("image source missing", user_blocks({"type": "image"}), V, "messages[0].content[0].source"),
    (
        "image source type unknown",
        user_blocks({"type": "image", "source": {"type": "path", "path": "/x"}}),
        V,
        "messages[0].content[0].source.type",
    ),
    (
        "image media_type unknown",
        user_blocks({"type": "image", "source": {**PNG, "media_type": "image/bmp"}}),
        V,
        "messages[0].content[0].source.media_type",
    ),
    (
        "image base64 data missing",
        user_blocks({"type": "image", "source": {"type": "base64", "media_type": "image/png"}}),
        V,
        "messages[0].content[0].source.data",
    ),
    (
        "image url missing",
        user_blocks({"type": "image", "source": {"type": "url"}}),
        V,
        "messages[0].content[0].source.url",
    ),
    (
        "pdf with an image media type",
        user_blocks({"type": "document", "source": {**PNG}}),
        V,
        "messages[0].content[0].source.media_type",
    ),
    (
        "text document media type wrong",
        user_blocks(
            {"type": "document", "source": {"type": "text", "media_type": "text/html", "data": "x"}}
        ),
        V,
        "messages[0].content[0].source.media_type",
    ),
    (
        "content document empty",
        user_blocks({"type": "document", "source": {"type": "content", "content": []}}),
        V,
        "messages[0].content[0].source.content",
    ),
    (
        "content document with a pdf inside",
        user_blocks(
            {
                "type": "document",
                "source": {"type": "content", "content": [{"type": "document", "source": PNG}]},
            }
        ),
        V,
        "messages[0].content[0].source.content[0].type",
    ),
    (
        "image in an assistant message",
        msgs(USER, {"role": "assistant", "content": [{"type": "image", "source": PNG}]}),
        V,
        "messages[1].content[0].type",
    ),
    (
        "tool_use in a user message",
        user_blocks(TOOL_USE),
        V,
        "messages[0].content[0].type",
    ),
    (
        "thinking in a user message",
        user_blocks({"type": "thinking", "thinking": "t", "signature": "s"}),
        V,
        "messages[0].content[0].type",
    ),
    (
        "tool_result in an assistant message",
        msgs(USER, ASKED, {"role": "assistant", "content": [result(content="x")]}),
        V,
        "messages[2].content[0].type",
    ),
    (
        "image in a system message",
        msgs({"role": "system", "content": [{"type": "image", "source": PNG}]}, USER),
        V,
        "messages[0].content[0].type",
    ),
    (
        "thinking signature missing",
        msgs(USER, {"role": "assistant", "content": [{"type": "thinking", "thinking": "t"}]}),
        V,
        "messages[1].content[0].signature",
    ),
    (
        "redacted_thinking data missing",
        msgs(USER, {"role": "assistant", "content": [{"type": "redacted_thinking"}]}),
        V,
        "messages[1].content[0].data",
    ),
    (
        "tool_use id missing",
        msgs(
            USER,
            {"role": "assistant", "content": [{k: v for k, v in TOOL_USE.items() if k != "id"}]},
        ),
        V,
        "messages[1].content[0].id",
    ),
    (
        "tool_result tool_use_id missing",
        answer({"type": "tool_result"}),
        V,
        "messages[2].content[0].tool_use_id",
    ),
    (
        "tool_result for no tool_use",
        user_blocks(result(content="15 degrees")),
        V,
        "messages[0].content[0].tool_use_id",
    ),
    (
        "tool_result answering a later tool_use",
        msgs({"role": "user", "content": [result(content="x")]}, ASKED),
        V,
        "messages[0].content[0].tool_use_id",
    ),
    (
        "tool_result with a document inside",
        answer(result(content=[{"type": "document", "source": PNG}])),
        V,
        "messages[2].content[0].content[0].type",
    ),
    (
        "tool_result image media type unknown",
        answer(result(content=[{"type": "image", "source": {**PNG, "media_type": "image/tiff"}}])),
        V,
        "messages[2].content[0].content[0].source.media_type",
    ),
    (
        "tool_result image source type unknown",
        answer(result(content=[{"type": "image", "source": {"type": "text", "data": "x"}}])),
        V,
        "messages[2].content[0].content[0].source.type",
    ),
    # ---- system
    (
        "system block type unknown",
        body(system=[{"type": "image", "source": PNG}]),
        V,
        "system[0].type",
    ),
    ("system block text missing", body(system=[{"type": "text"}]), V, "system[0].text"),
    # ---- tools and tool_choice
    ("tool not object", body(tools=["get_weather"]), V, "tools[0]"),
    ("tool name missing", tools({"input_schema": {"type": "object"}}), V, "tools[0].name"),
    ("tool name number", tools({**TOOL, "name": 5}), V, "tools[0].name"),
    ("tool name bad chars", tools({**TOOL, "name": "get weather"}), V, "tools[0].name"),
    ("tool name empty", tools({**TOOL, "name": ""}), V, "tools[0].name"),
    ("tool name too long", tools({**TOOL, "name": "f" * 65}), V, "tools[0].name"),
    ("tool names twice", tools(TOOL, TOOL), V, "tools[1].name"),
    ("tool input_schema missing", tools({"name": "f"}), V, "tools[0].input_schema"),
    (
        "tool input_schema not object",
        tools({**TOOL, "input_schema": []}),
        V,
        "tools[0].input_schema",
    ),
    (
        "tool input_schema type missing",
        tools({**TOOL, "input_schema": {}}),
        V,
        "tools[0].input_schema.type",
    ),
    (
        "tool input_schema type string",
        tools({**TOOL, "input_schema": {"type": "string"}}),
        V,
        "tools[0].input_schema.type",
    ),
    ("tool description number", tools({**TOOL, "description": 1}), V, "tools[0].description"),
    (
        "server tool web_search",
        tools({"type": "web_search_20250305", "name": "web_search", "max_uses": 5}),
        V,
        "tools[0].type",
    ),
    (
        "server tool bash after a custom one",
        tools(TOOL, {"type": "bash_20250124", "name": "bash"}),
        V,
        "tools[1].type",
    ),
    ("tool_choice string", tools(TOOL, tool_choice="auto"), B, "tool_choice"),
    (
        "tool_choice type unknown",
        tools(TOOL, tool_choice={"type": "required"}),
        V,
        "tool_choice.type",
    ),
    ("tool_choice type missing", tools(TOOL, tool_choice={}), V, "tool_choice.type"),
    (
        "tool_choice tool without name",
        tools(TOOL, tool_choice={"type": "tool"}),
        V,
        "tool_choice.name",
    ),
    (
        "tool_choice names an unknown tool",
        tools(TOOL, tool_choice={"type": "tool", "name": "get_time"}),
        V,
        "tool_choice.name",
    ),
    ("tool_choice any without tools", body(tool_choice={"type": "any"}), V, "tool_choice"),
    (
        "tool_choice tool without tools",
        body(tool_choice={"type": "tool", "name": "get_weather"}),
        V,
        "tool_choice",
    ),
    (
        "disable_parallel_tool_use not bool",
        tools(TOOL, tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
        V,
        "tool_choice.disable_parallel_tool_use",
    ),
    # ---- thinking
    ("thinking type unknown", body(thinking={"type": "always"}), V, "thinking.type"),
    ("thinking budget missing", body(thinking={"type": "enabled"}), V, "thinking.budget_tokens"),
    (
        "thinking budget below 1024",
        body(thinking={"type": "enabled", "budget_tokens": 1023}),
        V,
        "thinking.budget_tokens",
    ),
    (
        "thinking budget equal to max_tokens",
        body(max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 2048}),
        V,
        "thinking.budget_tokens",
    ),
    (
        "thinking budget above max_tokens",
        body(max_tokens=1024, thinking={"type": "enabled", "budget_tokens": 10000}),
        V,
        "thinking.budget_tokens",
    ),
    (
        "thinking budget string",
        body(thinking={"type": "enabled", "budget_tokens": "lots"}),
        V,
        "thinking.budget_tokens",
    ),
    # ---- output format
    ("output_format type missing", body(output_format={"schema": {}}), V, "output_format.type"),
    (
        "output_format type unknown",
        body(output_format={"type": "json_object", "schema": {}}),
        V,
        "output_format.type",
    ),
    (
        "output_format schema missing",
        body(output_format={"type": "json_schema"}),
        V,
        "output_format.schema",
    ),
    (
        "output_format schema not object",
        body(output_format={"type": "json_schema", "schema": "x"}),
        V,
        "output_format.schema",
    ),
    (
        "output_config format schema missing",
        body(output_config={"format": {"type": "json_schema"}}),
        V,
        "output_config.format.schema",
    ),
    (
        "output_config effort unknown",
        body(output_config={"effort": "extreme"}),
        V,
        "output_config.effort",
    ),
    (
        "output_format and output_config.format",
        body(
            output_format={"type": "json_schema", "schema": {}},
            output_config={"format": {"type": "json_schema", "schema": {}}},
        ),
        V,
        "output_format",
    ),
    # ---- what the exchange cannot carry
    (
        "mcp_servers",
        body(mcp_servers=[{"type": "url", "url": "https://x", "name": "x"}]),
        V,
        "mcp_servers",
    ),
    ("mcp_servers null", body(mcp_servers=None), V, "mcp_servers"),
    ("container", body(container="container_123"), V, "container"),
]


@pytest.mark.parametrize(
    ("raw", "error", "param"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_bodies_are_rejected(raw: bytes, error: type[Exception], param: str | None) -> None:
    with pytest.raises(error) as info:
        decode_messages_request(raw)
    exc = info.value
    assert type(exc) is error
    assert isinstance(exc, BadRequest | ValidationFailed)
    assert exc.param == param
    if param is not None:
        assert exc.message.startswith(f"{param}:"), exc.message
    # Never Python internals, always renderable, in both surfaces' shapes.
    for leak in ("Traceback", "msgspec", "Struct", "NoneType", "UnsetType", "`"):
        assert leak not in exc.message
    assert json.loads(exc.render())["error"]["param"] == exc.param
    assert exc.anthropic_body() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": exc.message},
    }


def test_table_is_big_enough() -> None:
    assert len(INVALID) >= 40


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (body(temperature=1.5), "temperature: must be between 0 and 1 (got 1.5)"),
        (body(max_tokens=0), "max_tokens: must be at least 1 (got 0)"),
        (body(max_tokens=DELETE), "max_tokens: is required"),
        (body(temperature="hot"), "temperature: expected a number, got a string"),
        (body(messages=[]), "messages: must contain at least one message"),
        (
            msgs({"role": "bot", "content": "x"}),
            "messages[0].role: must be one of 'user', 'assistant', 'system' (got 'bot')",
        ),
        (
            user_blocks({"type": "video"}),
            "messages[0].content[0].type: must be one of 'text', 'image', 'document', 'tool_use',"
            " 'tool_result', 'thinking', 'redacted_thinking' (got 'video')",
        ),
        (
            user_blocks(TOOL_USE),
            "messages[0].content[0].type: 'tool_use' blocks are not allowed in user messages"
            " (allowed: 'text', 'image', 'document', 'tool_result')",
        ),
        (
            user_blocks({"type": "image", "source": {**PNG, "media_type": "image/bmp"}}),
            "messages[0].content[0].source.media_type: must be one of 'image/jpeg', 'image/png',"
            " 'image/gif', 'image/webp' (got 'image/bmp')",
        ),
        (
            user_blocks({"type": "image", "source": {"type": "path"}}),
            "messages[0].content[0].source.type: unknown source type 'path' (images take"
            " 'base64', 'url', 'file'; documents take 'base64', 'text', 'url', 'content', 'file')",
        ),
        (
            tools({"type": "web_search_20250305", "name": "web_search"}),
            "tools[0].type: server tools are not supported by this exchange"
            " (got 'web_search_20250305'); give custom tools (no type, or 'custom')",
        ),
        (
            tools(TOOL, tool_choice={"type": "tool", "name": "get_time"}),
            "tool_choice.name: names a tool that is not in tools (got 'get_time')",
        ),
        (
            body(thinking={"type": "enabled", "budget_tokens": 1000}),
            "thinking.budget_tokens: must be at least 1024 (got 1000)",
        ),
        (
            body(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 4000}),
            "thinking.budget_tokens: must be less than max_tokens (got 4000, max_tokens is 2000)",
        ),
        (body(mcp_servers=[]), "mcp_servers: MCP servers are not supported by this exchange"),
        (
            body(container="c"),
            "container: code-execution containers are not supported by this exchange",
        ),
        (
            user_blocks(result(content="x")),
            "messages[0].content[0].tool_use_id: answers no tool_use block of an earlier"
            f" assistant message (got '{CALL_ID}')",
        ),
        (b"null", "request body must be a JSON object (got null)"),
        (b"{", "request body is not valid JSON: unexpected end of input"),
        (body(top_k=10**40), "top_k: must be a 64-bit signed integer (got a very large integer)"),
    ],
)
def test_messages_name_the_field(raw: bytes, expected: str) -> None:
    with pytest.raises((BadRequest, ValidationFailed)) as info:
        decode_messages_request(raw)
    assert info.value.message == expected


def test_an_unknown_top_level_field_reads_as_anthropics_refusal() -> None:
    with pytest.raises(BadRequest) as info:
        decode_messages_request(body(frobnicate=True))
    assert info.value.message == "frobnicate: Extra inputs are not permitted"
    assert info.value.status == 400


@pytest.mark.parametrize(
    "thread",
    [{"type": "create"}, {"type": "continue", "previous_message_id": "msg_1"}, None, "x"],
    ids=["create", "continue", "null", "string"],
)
def test_a_thread_is_refused_so_the_sdks_fall_back(thread: Any) -> None:
    # a continuing turn sends only the newest messages: the thread is refused before the
    # tool_result is found to answer no tool_use
    raw = body(thread=thread, messages=[{"role": "user", "content": [result(content="x")]}])
    with pytest.raises(ThreadUnsupported) as info:
        decode_messages_request(raw)
    error = info.value
    assert error.param == "thread" and error.message.startswith("thread: ")
    assert error.status == 400
    details = error.anthropic_body()["error"]["details"]
    assert details == {"error_code": "thread_unsupported_request"}


def test_long_invalid_values_are_clipped() -> None:
    with pytest.raises(ValidationFailed) as info:
        decode_messages_request(body(service_tier="x" * 10_000))
    assert len(info.value.message) < 200


# --------------------------------------------------------------------------------------------
# Valid bodies, from the examples in Anthropic's documentation

PDF_DATA = "JVBERi0xLjcKCjEgMCBvYmo="
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "email": {"type": "string"},
        "demo_requested": {"type": "boolean"},
    },
    "required": ["name", "email", "demo_requested"],
    "additionalProperties": False,
}

DOCS_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("plain", {"messages": [{"role": "user", "content": "Hello, world"}]}),
    (
        "multi-turn",
        {
            "messages": [
                {"role": "user", "content": "Hello there."},
                {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
                {"role": "user", "content": "Can you explain LLMs in plain English?"},
            ]
        },
    ),
    (
        "prefill",
        {
            "max_tokens": 1,
            "messages": [
                {
                    "role": "user",
                    "content": "What's the Greek name for Sun? (A) Sol (B) Helios (C) Sun",
                },
                {"role": "assistant", "content": "The best answer is ("},
            ],
        },
    ),
    (
        "system prompt string",
        {
            "system": "You are a seasoned data scientist at a Fortune 500 company.",
            "messages": [{"role": "user", "content": "Analyze this dataset for anomalies."}],
        },
    ),
    (
        "system blocks with cache_control",
        {
            "system": [
                {
                    "type": "text",
                    "text": "You are an AI assistant tasked with analyzing literary works.",
                },
                {
                    "type": "text",
                    "text": "<the entire contents of Pride and Prejudice>",
                    "cache_control": {"type": "ephemeral"},
                },
            ],
            "messages": [
                {"role": "user", "content": "Analyze the major themes in Pride and Prejudice."}
            ],
        },
    ),
    (
        "cache_control with a 1h ttl on a message block and a tool",
        {
            "tools": [{**TOOL, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "long context",
                            "cache_control": {"type": "ephemeral", "ttl": "1h"},
                        },
                        {"type": "text", "text": "the question", "cache_control": None},
                    ],
                }
            ],
        },
    ),
    (
        "vision: base64 and url images",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Image 1:"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/jpeg",
                                "data": "/9j/4AAQSkZJRg==",
                            },
                        },
                        {"type": "text", "text": "Image 2:"},
                        {
                            "type": "image",
                            "source": {
                                "type": "url",
                                "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg",
                            },
                        },
                        {"type": "text", "text": "How are these images different?"},
                    ],
                }
            ]
        },
    ),
    (
        "tool use, multi-turn",
        {
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Get the current weather in a given location",
                    "input_schema": {
                        "type": "object",
                        "properties": {
                            "location": {
                                "type": "string",
                                "description": "The city and state, e.g. San Francisco, CA",
                            },
                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                        },
                        "required": ["location"],
                    },
                }
            ],
            "messages": [
                {"role": "user", "content": "What's the weather like in San Francisco?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "I'll check the weather in San Francisco."},
                        {
                            "type": "tool_use",
                            "id": CALL_ID,
                            "name": "get_weather",
                            "input": {"location": "San Francisco, CA", "unit": "celsius"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": CALL_ID, "content": "15 degrees"}
                    ],
                },
            ],
        },
    ),
    (
        "parallel tool results, an error and a follow-up text",
        {
            "tools": [TOOL, {**TOOL, "name": "get_time"}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": False},
            "messages": [
                {"role": "user", "content": "Weather and time in SF?"},
                {
                    "role": "assistant",
                    "content": [
                        {**TOOL_USE, "id": "toolu_1"},
                        {**TOOL_USE, "id": "toolu_2", "name": "get_time", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 degrees"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "content": "ConnectionError: the time service is not available",
                            "is_error": True,
                        },
                        {"type": "text", "text": "Also, should I bring a jacket?"},
                    ],
                },
            ],
        },
    ),
    (
        "tool result with an image",
        {
            "tools": [TOOL],
            "messages": [
                USER,
                ASKED,
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": CALL_ID,
                            "content": [
                                {"type": "text", "text": "15 degrees"},
                                {"type": "image", "source": PNG},
                            ],
                        }
                    ],
                },
            ],
        },
    ),
    (
        "tool result without content",
        {"tools": [TOOL], "messages": [USER, ASKED, {"role": "user", "content": [result()]}]},
    ),
    (
        "forced tool",
        {
            "tools": [TOOL],
            "tool_choice": {
                "type": "tool",
                "name": "get_weather",
                "disable_parallel_tool_use": True,
            },
        },
    ),
    ("tool_choice any", {"tools": [TOOL], "tool_choice": {"type": "any"}}),
    ("tool_choice none", {"tools": [TOOL], "tool_choice": {"type": "none"}}),
    ("custom tool type", {"tools": [{**TOOL, "type": "custom", "strict": True}]}),
    (
        "extended thinking with tool use",
        {
            "max_tokens": 16000,
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "tools": [TOOL],
            "messages": [
                {"role": "user", "content": "What's the weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "thinking",
                            "thinking": "The user wants the weather in Paris.",
                            "signature": SIGNATURE,
                        },
                        {"type": "redacted_thinking", "data": REDACTED},
                        {
                            "type": "tool_use",
                            "id": "toolu_01CswdEQBMshySk6Y9DFKrfq",
                            "name": "get_weather",
                            "input": {"location": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01CswdEQBMshySk6Y9DFKrfq",
                            "content": "Current temperature: 88°F",
                        }
                    ],
                },
            ],
        },
    ),
    ("thinking disabled", {"thinking": {"type": "disabled"}}),
    (
        "adaptive thinking with effort",
        {
            "thinking": {"type": "adaptive", "display": "summarized"},
            "output_config": {"effort": "high"},
        },
    ),
    (
        "pdf document",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": PDF_DATA,
                            },
                            "cache_control": {"type": "ephemeral"},
                        },
                        {"type": "text", "text": "What are the key findings in this document?"},
                    ],
                }
            ]
        },
    ),
    (
        "plain-text and content documents with citations",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "text",
                                "media_type": "text/plain",
                                "data": "The grass is green. The sky is blue.",
                            },
                            "title": "My Document",
                            "context": "This is a trustworthy document.",
                            "citations": {"enabled": True},
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "content",
                                "content": [
                                    {"type": "text", "text": "First chunk"},
                                    {"type": "text", "text": "Second chunk"},
                                ],
                            },
                            "title": "Document Title",
                            "context": None,
                        },
                        {"type": "text", "text": "What color is the grass and sky?"},
                    ],
                }
            ]
        },
    ),
    (
        "url pdf document (decodes; the translation refuses it)",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "url",
                                "url": "https://assets.anthropic.com/m/1cd9d098ac3e6467/original/Claude-3-Model-Card-October-Addendum.pdf",
                            },
                        },
                        {"type": "text", "text": "What are the key findings in this document?"},
                    ],
                }
            ]
        },
    ),
    (
        "answer with citations sent back",
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "text",
                            "text": "the grass is green",
                            "citations": [
                                {
                                    "type": "char_location",
                                    "cited_text": "The grass is green.",
                                    "document_index": 0,
                                    "document_title": "My Document",
                                    "start_char_index": 0,
                                    "end_char_index": 20,
                                }
                            ],
                        }
                    ],
                },
                {"role": "user", "content": "And the sky?"},
            ]
        },
    ),
    ("stop sequences", {"stop_sequences": ["\n\nHuman:", "END"]}),
    (
        "sampling at the bounds",
        {"temperature": 0, "top_p": 1, "top_k": 0, "max_tokens": 2**63 - 1},
    ),
    ("sampling inside", {"temperature": 0.7, "top_p": 0.95, "top_k": 40}),
    (
        "structured output (beta output_format)",
        {"output_format": {"type": "json_schema", "schema": SCHEMA}},
    ),
    (
        "structured output (output_config.format)",
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    ),
    (
        "metadata, service tier, stream",
        {
            "metadata": {"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
            "service_tier": "standard_only",
            "stream": True,
        },
    ),
    ("metadata user_id null", {"metadata": {"user_id": None}, "service_tier": "auto"}),
    (
        "mid-conversation system message",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": "Hi!"},
                {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "How are you?"},
            ]
        },
    ),
    (
        "Anthropic's fields that change nothing here are ignored",
        {
            "speed": "fast",
            "inference_geo": "us",
            "cache_control": {"type": "ephemeral"},
            "context_management": {"edits": []},
            "diagnostics": {"x": 1},
            "workspace_id": "wrkspc_1",
        },
    ),
]


def full(fields: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": [USER], **fields}


@pytest.mark.parametrize(
    "fields", [row[1] for row in DOCS_EXAMPLES], ids=[row[0] for row in DOCS_EXAMPLES]
)
def test_docs_examples_decode(fields: dict[str, Any]) -> None:
    req = decode_messages_request(json.dumps(full(fields)).encode())
    assert isinstance(req, MessagesRequest)
    assert req.model == MODEL
    assert req.is_stream is (fields.get("stream") is True)


SDK_PARAMS: TypeAdapter[Any] = TypeAdapter(MessageCreateParamsNonStreaming)


@pytest.mark.parametrize(
    "fields", [row[1] for row in DOCS_EXAMPLES], ids=[row[0] for row in DOCS_EXAMPLES]
)
def test_docs_examples_are_valid_for_the_sdk(fields: dict[str, Any]) -> None:
    """The examples are what the official SDK's request types accept (its TypedDicts ignore
    the fields gridgate ignores; ``output_format`` and ``stream`` are outside them)."""
    doc = {k: v for k, v in full(fields).items() if k not in ("output_format", "stream")}
    SDK_PARAMS.validate_python(doc)


def test_structs_are_typed() -> None:
    fields = dict(DOCS_EXAMPLES)
    req = decode_messages_request(
        json.dumps(full(fields["extended thinking with tool use"])).encode()
    )
    user, assistant, answered = req.messages
    assert isinstance(user, UserMessage)
    assert isinstance(assistant, AssistantMessage)
    assert isinstance(assistant.content, list)
    thinking, redacted, tool_use = assistant.content
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.signature == SIGNATURE
    assert isinstance(redacted, RedactedThinkingBlock)
    assert isinstance(tool_use, ToolUseBlock)
    assert tool_use.input == {"location": "Paris"}
    assert isinstance(answered.content, list)
    assert isinstance(answered.content[0], ToolResultBlock)
    assert isinstance(req.thinking, ThinkingConfigEnabled)
    assert req.thinking.budget_tokens == 10000

    req = decode_messages_request(
        json.dumps(full(fields["plain-text and content documents with citations"])).encode()
    )
    assert isinstance(req.messages[0].content, list)
    text_doc, content_doc, question = req.messages[0].content
    assert isinstance(text_doc, DocumentBlock)
    assert isinstance(text_doc.source, PlainTextSource)
    assert text_doc.title == "My Document"
    assert isinstance(content_doc, DocumentBlock)
    assert isinstance(content_doc.source, ContentSource)
    assert isinstance(question, TextBlock)

    req = decode_messages_request(
        json.dumps(full(fields["vision: base64 and url images"])).encode()
    )
    assert isinstance(req.messages[0].content, list)
    image, url_image = req.messages[0].content[1], req.messages[0].content[3]
    assert isinstance(image, ImageBlock)
    assert isinstance(image.source, Base64Source)
    assert isinstance(url_image, ImageBlock)
    assert isinstance(url_image.source, URLSource)

    req = decode_messages_request(
        json.dumps(full(fields["mid-conversation system message"])).encode()
    )
    assert isinstance(req.messages[2], SystemMessage)

    req = decode_messages_request(json.dumps(full(fields["forced tool"])).encode())
    assert isinstance(req.tool_choice, ToolChoiceTool)
    assert req.tool_choice.disable_parallel_tool_use is True

    req = decode_messages_request(
        json.dumps(full(fields["system blocks with cache_control"])).encode()
    )
    assert isinstance(req.system, list)
    assert req.system[1].cache_control == CacheControl(type="ephemeral")

    req = decode_messages_request(
        json.dumps(full(fields["adaptive thinking with effort"])).encode()
    )
    assert isinstance(req.thinking, ThinkingConfigAdaptive)


def test_file_sources_decode_for_the_translation_to_refuse() -> None:
    req = decode_messages_request(
        user_blocks({"type": "image", "source": {"type": "file", "file_id": "file_011C"}})
    )
    assert isinstance(req.messages[0].content, list)
    block = req.messages[0].content[0]
    assert isinstance(block, ImageBlock)
    assert block.source == FileSource(file_id="file_011C")


def test_output_json_format_reads_either_spelling() -> None:
    beta = decode_messages_request(body(output_format={"type": "json_schema", "schema": SCHEMA}))
    assert beta.output_json_format == JSONOutputFormat(type="json_schema", schema=SCHEMA)
    config = decode_messages_request(
        body(output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    )
    assert config.output_json_format == JSONOutputFormat(type="json_schema", schema=SCHEMA)
    assert decode_messages_request(body(output_config={"effort": "low"})).output_json_format is None
    assert decode_messages_request(body(output_format=None)).output_json_format is None


def test_count_tokens_bodies_need_no_max_tokens() -> None:
    raw = body(max_tokens=DELETE, thinking={"type": "enabled", "budget_tokens": 2048})
    req = decode_messages_request(raw, count_tokens=True)
    assert req.max_tokens is msgspec.UNSET
    with pytest.raises(ValidationFailed) as info:
        decode_messages_request(raw)
    assert info.value.param == "max_tokens"
    # when given, it is still checked, and so is the budget against it
    with pytest.raises(ValidationFailed) as info:
        decode_messages_request(body(max_tokens=0), count_tokens=True)
    assert info.value.param == "max_tokens"
    with pytest.raises(ValidationFailed) as info:
        decode_messages_request(
            body(max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 4096}),
            count_tokens=True,
        )
    assert info.value.param == "thinking.budget_tokens"


# --------------------------------------------------------------------------------------------
# Fuzzing: decode raises only BadRequest / ValidationFailed; the translation only
# ValidationFailed; whatever translates can be encoded and measured.

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "user",
            "assistant",
            "system",
            "text",
            "image",
            "document",
            "tool_use",
            "tool_result",
            "thinking",
            "redacted_thinking",
            "base64",
            "url",
            "file",
            "content",
            "image/png",
            "application/pdf",
            "text/plain",
            "ephemeral",
            "auto",
            "any",
            "tool",
            "none",
            "enabled",
            "adaptive",
            "json_schema",
            "object",
            CALL_ID,
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "role",
                    "content",
                    "text",
                    "source",
                    "media_type",
                    "data",
                    "url",
                    "id",
                    "name",
                    "input",
                    "tool_use_id",
                    "is_error",
                    "cache_control",
                    "schema",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)

VALID: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 4096,
    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image", "source": PNG},
                {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_DATA},
                    "title": "a.pdf",
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "plain"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": REDACTED},
                {"type": "text", "text": "let me look"},
                TOOL_USE,
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": CALL_ID,
                    "content": [{"type": "text", "text": "15"}, {"type": "image", "source": PNG}],
                    "is_error": False,
                },
                {"type": "text", "text": "thanks"},
            ],
        },
    ],
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 10,
    "stream": True,
    "tools": [TOOL],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "metadata": {"user_id": "u-1"},
    "service_tier": "auto",
    "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"},
}


def check(raw: bytes) -> None:
    error: BadRequest | ValidationFailed | None = None
    try:
        req = decode_messages_request(raw)
    except (BadRequest, ValidationFailed) as exc:
        error = exc
    if error is not None:
        assert type(error) in (BadRequest, ValidationFailed)
        assert error.message
        error.render()  # every message must be encodable
        return
    assert isinstance(req, MessagesRequest)
    refused: ValidationFailed | None = None
    try:
        chat = to_chat_request(req)
    except ValidationFailed as exc:
        refused = exc
    if refused is not None:
        assert type(refused) is ValidationFailed
        assert refused.param
        assert refused.message.startswith(f"{refused.param}:")
        refused.render()
        return
    assert isinstance(chat, ChatRequest)
    msgspec.json.encode(chat)  # whatever translates can be sent upstream
    size = measure_prompt(chat)
    assert size.upper_bound >= size.estimate > 0


@FUZZ
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    check(json.dumps(value).encode())


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*prefix, i))
    return found


PATHS = _paths(VALID)


def test_fuzz_base_is_valid_and_translates() -> None:
    req = decode_messages_request(json.dumps(VALID).encode())
    chat = to_chat_request(req)
    assert chat.is_stream
    assert chat.include_usage


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=3))
def test_mutated_valid_body(mutations: list[tuple[tuple[Any, ...], Any]]) -> None:
    doc: Any = VALID
    for path, value in mutations:
        try:
            doc = _replace(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    check(json.dumps(doc).encode())


@FUZZ
@given(st.sampled_from(PATHS), st.sampled_from([None, True, 0, -1, 1.5, "", "x", [], {}, 10**30]))
def test_mutated_with_edge_values(path: tuple[Any, ...], value: Any) -> None:
    check(json.dumps(_replace(VALID, path, value)).encode())


@FUZZ
@given(st.binary(max_size=20), st.integers(min_value=0, max_value=3000))
def test_corrupted_valid_body(noise: bytes, at: int) -> None:
    raw = json.dumps(VALID).encode()
    check(raw[:at] + noise + raw[at + len(noise) :])


def test_hostile_inputs() -> None:
    for raw in [
        b"\x00",
        b"\xef\xbb\xbf{}",
        b'{"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "\\udfff"}]}',
        b'{"model": "m", "max_tokens": 1' + b"0" * 5000 + b', "messages": []}',
        b'{"model": "m", "max_tokens": 1, "messages": [], "temperature": 1e-999}',
        b'{"model": "m", "max_tokens": 1, "messages": [], "temperature": NaN}',
        b'{"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],'
        b' "tools": [{"name": "f", "input_schema": {"type": "object", "x": 1e400}}]}',
        b'{"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type":'
        b' "tool_use", "id": "a", "name": "f", "input": '
        + b'{"a":' * 50_000
        + b"1"
        + b"}" * 50_000
        + b"}]}]}",
        b"[" * 1_000_000,
        b'{"model": "m", "max_tokens": 1, "messages": [{"role": "' + b"r" * 100_000 + b'"}]}',
    ]:
        check(raw)
