"""Messages request → canonical ChatRequest: one test per mapping row, compared as the JSON the
canonical request encodes to; then every documented example through the OpenAI surface's own
decoder (what core and the OpenAI-format adapter rely on)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gridgate.errors import Untranslatable, ValidationFailed
from gridgate.protocol.anthropic import request as am
from gridgate.protocol.anthropic.request import decode_messages_request
from gridgate.protocol.anthropic.to_chat import to_chat_request
from gridgate.protocol.openai_chat import ChatRequest, ToolMessage, decode_chat_request
from tests.protocol.anthropic.test_request import DOCS_EXAMPLES, full

MODEL = "claude-sonnet-4-5"
HI = {"role": "user", "content": "Hello"}
CALL_ID = "toolu_01A09q90qw90lq917835lq9"
TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}
TOOL_USE = {
    "type": "tool_use",
    "id": CALL_ID,
    "name": "get_weather",
    "input": {"location": "San Francisco, CA", "unit": "celsius"},
}
ASKED = {"role": "assistant", "content": [TOOL_USE]}
CALL = {
    "id": CALL_ID,
    "type": "function",
    "function": {
        "name": "get_weather",
        "arguments": '{"location":"San Francisco, CA","unit":"celsius"}',
    },
}
CALLED = {"role": "assistant", "content": None, "tool_calls": [CALL]}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
PNG_URL = "data:image/png;base64,iVBORw0KGgo="
EPHEMERAL = {"type": "ephemeral"}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def translate(**fields: Any) -> ChatRequest:
    doc: dict[str, Any] = {"model": MODEL, "max_tokens": 1024, "messages": [HI], **fields}
    return to_chat_request(decode_messages_request(json.dumps(doc).encode()))


def canonical(**fields: Any) -> dict[str, Any]:
    """The canonical request for ``fields``, as the JSON it encodes to."""
    return json.loads(msgspec.json.encode(translate(**fields)))


def expected(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": [HI], **fields}


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


# --------------------------------------------------------------------------------------------
# model, max_tokens, sampling, stop, stream, metadata


def test_plain() -> None:
    assert canonical() == expected()
    assert msgspec.json.encode(translate()) == (
        b'{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hello"}],'
        b'"max_tokens":1024}'
    )


def test_sampling_and_stop_sequences() -> None:
    assert canonical(
        temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["\n\nHuman:", "END"]
    ) == expected(temperature=0.2, top_p=0.9, top_k=40, stop=["\n\nHuman:", "END"])
    assert canonical(stop_sequences=[]) == expected(stop=[])


def test_stream_always_asks_for_usage() -> None:
    assert canonical(stream=True) == expected(stream=True, stream_options={"include_usage": True})
    chat = translate(stream=True)
    assert chat.is_stream
    assert chat.include_usage
    assert canonical(stream=False) == expected()
    assert decode_messages_request(json.dumps(full({"stream": True})).encode()).is_stream


def test_metadata_user_id_is_the_user() -> None:
    assert canonical(metadata={"user_id": "u-42"}) == expected(user="u-42")
    assert canonical(metadata={"user_id": None}) == expected()
    assert canonical(metadata={}) == expected()


def test_ignored_fields() -> None:
    assert canonical(service_tier="standard_only", speed="fast", cache_control=EPHEMERAL) == (
        expected()
    )


# --------------------------------------------------------------------------------------------
# system


def test_system_string_is_a_leading_system_message() -> None:
    assert canonical(system="Be brief.") == expected(
        messages=[{"role": "system", "content": "Be brief."}, HI]
    )


def test_system_blocks_keep_cache_control() -> None:
    system = [
        {"type": "text", "text": "You analyze literary works."},
        {"type": "text", "text": "<Pride and Prejudice>", "cache_control": EPHEMERAL},
        {"type": "text", "text": "Be kind.", "cache_control": None, "citations": None},
    ]
    assert canonical(system=system) == expected(
        messages=[
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "You analyze literary works."},
                    {"type": "text", "text": "<Pride and Prejudice>", "cache_control": EPHEMERAL},
                    {"type": "text", "text": "Be kind."},
                ],
            },
            HI,
        ]
    )


def test_empty_system_list_is_no_system_message() -> None:
    assert canonical(system=[]) == expected()


def test_mid_conversation_system_message_keeps_its_place() -> None:
    messages = [
        HI,
        {"role": "assistant", "content": "Hi!"},
        {"role": "system", "content": "Answer in French."},
        {
            "role": "system",
            "content": [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}],
        },
        {"role": "user", "content": "How are you?"},
    ]
    assert canonical(messages=messages) == expected(
        messages=[
            HI,
            {"role": "assistant", "content": "Hi!"},
            {"role": "system", "content": "Answer in French."},
            {
                "role": "system",
                "content": [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}],
            },
            {"role": "user", "content": "How are you?"},
        ]
    )


# --------------------------------------------------------------------------------------------
# user content


def test_user_text_and_images() -> None:
    messages = [
        user(
            {"type": "text", "text": "Image 1:"},
            {"type": "image", "source": PNG, "cache_control": EPHEMERAL},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/ant.jpg"}},
            {
                "type": "text",
                "text": "Compare.",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
        )
    ]
    assert canonical(messages=messages) == expected(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Image 1:"},
                    {
                        "type": "image_url",
                        "image_url": {"url": PNG_URL},
                        "cache_control": EPHEMERAL,
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/ant.jpg"}},
                    {
                        "type": "text",
                        "text": "Compare.",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    },
                ],
            }
        ]
    )


def test_single_user_text_block_stays_a_list() -> None:
    """Only the assistant's single text collapses to a string (the contract's rule for it)."""
    assert canonical(messages=[user({"type": "text", "text": "Hello"})]) == expected(
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    )


def test_pdf_document_is_a_file_part() -> None:
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}
    messages = [
        user(
            {"type": "document", "source": pdf, "title": "Report Q3", "context": "internal"},
            {"type": "document", "source": pdf, "cache_control": EPHEMERAL},
            {"type": "document", "source": pdf, "title": ""},
            {"type": "text", "text": "Summarize."},
        )
    ]
    data_url = "data:application/pdf;base64,JVBERi0x"
    assert canonical(messages=messages) == expected(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_data": data_url, "filename": "Report Q3"}},
                    {
                        "type": "file",
                        "file": {"file_data": data_url, "filename": "document.pdf"},
                        "cache_control": EPHEMERAL,
                    },
                    {"type": "file", "file": {"file_data": data_url, "filename": "document.pdf"}},
                    {"type": "text", "text": "Summarize."},
                ],
            }
        ]
    )


def test_text_and_content_documents_are_their_text() -> None:
    """A plain-text document becomes a text part holding its text (its title and context have
    no canonical place); a content document becomes its parts, ``cache_control`` on the last."""
    messages = [
        user(
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "The sky is blue."},
                "title": "My Document",
                "context": "trustworthy",
                "citations": {"enabled": True},
                "cache_control": EPHEMERAL,
            },
            {
                "type": "document",
                "source": {
                    "type": "content",
                    "content": [
                        {"type": "text", "text": "First chunk"},
                        {"type": "image", "source": PNG},
                    ],
                },
                "cache_control": EPHEMERAL,
            },
            {"type": "document", "source": {"type": "content", "content": "One string"}},
        )
    ]
    assert canonical(messages=messages) == expected(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "The sky is blue.", "cache_control": EPHEMERAL},
                    {"type": "text", "text": "First chunk"},
                    {
                        "type": "image_url",
                        "image_url": {"url": PNG_URL},
                        "cache_control": EPHEMERAL,
                    },
                    {"type": "text", "text": "One string"},
                ],
            }
        ]
    )


# --------------------------------------------------------------------------------------------
# tool results


def test_tool_results_come_first_then_the_rest_of_the_user_message() -> None:
    messages = [
        HI,
        assistant({**TOOL_USE, "id": "toolu_1"}, {**TOOL_USE, "id": "toolu_2", "input": {}}),
        user(
            {"type": "text", "text": "Here you go."},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 degrees"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": "ConnectionError: service down",
                "is_error": True,
            },
            {"type": "text", "text": "Jacket?"},
        ),
    ]
    call = {"type": "function", "function": {"name": "get_weather"}}
    assert canonical(tools=[TOOL], messages=messages)["messages"] == [
        HI,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    **call,
                    "id": "toolu_1",
                    "function": {**CALL["function"]},
                },
                {**call, "id": "toolu_2", "function": {"name": "get_weather", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "15 degrees"},
        {
            "role": "tool",
            "tool_call_id": "toolu_2",
            "content": "ConnectionError: service down",
            "is_error": True,
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Here you go."},
                {"type": "text", "text": "Jacket?"},
            ],
        },
    ]


def test_tool_result_only_user_message_leaves_no_user_message() -> None:
    messages = [HI, ASKED, user({"type": "tool_result", "tool_use_id": CALL_ID, "content": "15"})]
    assert canonical(tools=[TOOL], messages=messages)["messages"] == [
        HI,
        CALLED,
        {"role": "tool", "tool_call_id": CALL_ID, "content": "15"},
    ]


def test_tool_result_contents() -> None:
    results = [
        {"type": "tool_result", "tool_use_id": CALL_ID},
        {"type": "tool_result", "tool_use_id": CALL_ID, "content": [], "is_error": False},
        {
            "type": "tool_result",
            "tool_use_id": CALL_ID,
            "content": [{"type": "text", "text": "15"}, {"type": "image", "source": PNG}],
        },
        {
            "type": "tool_result",
            "tool_use_id": CALL_ID,
            "content": "15",
            "cache_control": EPHEMERAL,
        },
        {
            "type": "tool_result",
            "tool_use_id": CALL_ID,
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "cache_control": EPHEMERAL,
        },
        {"type": "tool_result", "tool_use_id": CALL_ID, "cache_control": EPHEMERAL},
    ]
    out = canonical(tools=[TOOL], messages=[HI, ASKED, user(*results)])["messages"][2:]
    tool = {"role": "tool", "tool_call_id": CALL_ID}
    assert out == [
        {**tool, "content": ""},
        {**tool, "content": "", "is_error": False},
        {
            **tool,
            "content": [
                {"type": "text", "text": "15"},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
            ],
        },
        {**tool, "content": [{"type": "text", "text": "15", "cache_control": EPHEMERAL}]},
        {
            **tool,
            "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b", "cache_control": EPHEMERAL},
            ],
        },
        {**tool, "content": ""},  # nothing to mark
    ]


# --------------------------------------------------------------------------------------------
# assistant content


def test_assistant_string_and_single_text() -> None:
    messages = [
        HI,
        {"role": "assistant", "content": "The best answer is ("},
        {"role": "user", "content": "Go on"},
        assistant({"type": "text", "text": "Sure", "citations": []}),
    ]
    assert canonical(messages=messages)["messages"] == [
        HI,
        {"role": "assistant", "content": "The best answer is ("},
        {"role": "user", "content": "Go on"},
        {"role": "assistant", "content": "Sure"},
    ]


def test_assistant_texts_become_parts_when_marked_or_several() -> None:
    messages = [
        HI,
        assistant({"type": "text", "text": "cached", "cache_control": EPHEMERAL}),
        {"role": "user", "content": "and"},
        assistant({"type": "text", "text": "one"}, {"type": "text", "text": "two"}),
    ]
    assert canonical(messages=messages)["messages"][1::2] == [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "cached", "cache_control": EPHEMERAL}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
    ]


def test_tool_use_arguments_are_compact_json_in_key_order() -> None:
    tool_use = {
        **TOOL_USE,
        "input": {"z": 1, "a": {"nested": [1, 2.5, None, True]}, "text": 'é "q"'},
        "cache_control": EPHEMERAL,  # no canonical place: dropped
    }
    messages = [HI, assistant({"type": "text", "text": "Checking."}, tool_use)]
    [_, message] = canonical(tools=[TOOL], messages=messages)["messages"]
    assert message == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": CALL_ID,
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"z":1,"a":{"nested":[1,2.5,null,true]},"text":"é \\"q\\""}',
                },
            }
        ],
    }


def test_thinking_blocks_keep_order_and_signatures() -> None:
    messages = [
        HI,
        assistant(
            {"type": "thinking", "thinking": "First thought.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque=="},
            {"type": "text", "text": "Let me check."},
            {"type": "thinking", "thinking": "Second thought.", "signature": "sig-2"},
            TOOL_USE,
        ),
    ]
    [_, message] = canonical(
        max_tokens=16000,
        thinking={"type": "enabled", "budget_tokens": 10000},
        tools=[TOOL],
        messages=messages,
    )["messages"]
    assert message == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [CALL],
        "reasoning_content": "First thought.\n\nSecond thought.",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "First thought.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque=="},
            {"type": "thinking", "thinking": "Second thought.", "signature": "sig-2"},
        ],
    }


def test_redacted_only_thinking_has_no_reasoning_text() -> None:
    messages = [HI, assistant({"type": "redacted_thinking", "data": "x"}, TOOL_USE)]
    [_, message] = canonical(tools=[TOOL], messages=messages)["messages"]
    assert message == {
        **CALLED,
        "thinking_blocks": [{"type": "redacted_thinking", "data": "x"}],
    }
    empty = [HI, assistant({"type": "thinking", "thinking": "", "signature": "s"}, TOOL_USE)]
    [_, message] = canonical(tools=[TOOL], messages=empty)["messages"]
    assert "reasoning_content" not in message


# --------------------------------------------------------------------------------------------
# tools and tool_choice


def test_tools() -> None:
    tools = [
        TOOL,
        {
            "type": "custom",
            "name": "lookup",
            "input_schema": {"type": "object"},
            "strict": True,
            "cache_control": EPHEMERAL,
        },
    ]
    assert canonical(tools=tools) == expected(
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Get the current weather in a given location",
                    "parameters": TOOL["input_schema"],
                },
            },
            {
                "type": "function",
                "function": {"name": "lookup", "parameters": {"type": "object"}, "strict": True},
                "cache_control": EPHEMERAL,
            },
        ]
    )


@pytest.mark.parametrize(
    ("choice", "mapped", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            None,
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        (
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            {"type": "function", "function": {"name": "get_weather"}},
            False,
        ),
        ({"type": "auto", "disable_parallel_tool_use": False}, "auto", None),
    ],
)
def test_tool_choice(choice: dict[str, Any], mapped: Any, parallel: bool | None) -> None:
    out = canonical(tools=[TOOL], tool_choice=choice)
    assert out["tool_choice"] == mapped
    assert out.get("parallel_tool_calls") == parallel


def test_tool_choice_without_tools() -> None:
    """``auto`` without tools is the default and is left out; ``none`` is kept."""
    assert canonical(tool_choice={"type": "auto", "disable_parallel_tool_use": True}) == expected()
    assert canonical(tool_choice={"type": "none"}) == expected(tool_choice="none")


# --------------------------------------------------------------------------------------------
# thinking and output format


def test_thinking() -> None:
    assert canonical(max_tokens=16000, thinking={"type": "enabled", "budget_tokens": 10000}) == (
        expected(max_tokens=16000, thinking={"type": "enabled", "budget_tokens": 10000})
    )
    assert canonical(thinking={"type": "disabled"}) == expected(thinking={"type": "disabled"})
    assert canonical(thinking={"type": "adaptive"}) == expected(reasoning_effort="medium")
    assert canonical(thinking={"type": "adaptive"}, output_config={"effort": "max"}) == expected(
        reasoning_effort="max"
    )
    # effort without adaptive thinking has no canonical meaning: ignored
    assert canonical(output_config={"effort": "low"}) == expected()


def test_output_format() -> None:
    want = expected(
        response_format={"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}
    )
    assert canonical(output_format={"type": "json_schema", "schema": SCHEMA}) == want
    assert canonical(output_config={"format": {"type": "json_schema", "schema": SCHEMA}}) == want
    assert canonical(output_format=None, output_config={"format": None}) == expected()


# --------------------------------------------------------------------------------------------
# What the canonical form cannot hold


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [user({"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}})],
            "messages[0].content[0].source",
        ),
        (
            [
                user(
                    {"type": "text", "text": "x"},
                    {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
                )
            ],
            "messages[0].content[1].source",
        ),
        (
            [user({"type": "document", "source": {"type": "file", "file_id": "file_1"}})],
            "messages[0].content[0].source",
        ),
        (
            [
                HI,
                ASKED,
                user(
                    {
                        "type": "tool_result",
                        "tool_use_id": CALL_ID,
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ),
            ],
            "messages[2].content[0].content[0].source",
        ),
        (
            [
                user(
                    {
                        "type": "document",
                        "source": {
                            "type": "content",
                            "content": [
                                {"type": "image", "source": {"type": "file", "file_id": "f"}}
                            ],
                        },
                    }
                )
            ],
            "messages[0].content[0].source.content[0].source",
        ),
    ],
)
def test_refused_parts_are_named(messages: list[Any], param: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        translate(messages=messages)
    exc = info.value
    assert type(exc) is ValidationFailed  # not Untranslatable: no other offer could take it
    assert not isinstance(exc, Untranslatable)
    assert exc.param == param
    assert exc.message.startswith(f"{param}: ")
    assert "not supported by this exchange" in exc.message


def test_structs_that_skipped_validation_are_still_refused() -> None:
    """``to_chat_request`` is public: structs built by hand get the same refusals."""
    server_tool = am.MessagesRequest(
        model=MODEL,
        max_tokens=10,
        messages=[am.UserMessage(content="x")],
        tools=[am.Tool(name="web_search", type="web_search_20250305")],
    )
    with pytest.raises(ValidationFailed) as info:
        to_chat_request(server_tool)
    assert info.value.param == "tools[0].type"

    tool_use = am.ToolUseBlock(id="t", name="f", input={})
    misplaced = am.MessagesRequest(
        model=MODEL, max_tokens=10, messages=[am.UserMessage(content=[tool_use])]
    )
    with pytest.raises(ValidationFailed) as info:
        to_chat_request(misplaced)
    assert info.value.param == "messages[0].content[0].type"

    image = am.ImageBlock(source=am.URLSource(url="https://x/a.png"))
    for message in (am.AssistantMessage(content=[image]), am.SystemMessage(content=[image])):
        request = am.MessagesRequest(model=MODEL, max_tokens=10, messages=[message])
        with pytest.raises(ValidationFailed) as info:
            to_chat_request(request)
        assert info.value.param == "messages[0].content[0].type"


def test_translation_is_pure() -> None:
    raw = json.dumps(full(dict(DOCS_EXAMPLES)["extended thinking with tool use"])).encode()
    request = decode_messages_request(raw)
    before = msgspec.json.encode(request)
    first = msgspec.json.encode(to_chat_request(request))
    assert msgspec.json.encode(to_chat_request(request)) == first
    assert msgspec.json.encode(request) == before


# --------------------------------------------------------------------------------------------
# Every documented example, through the OpenAI surface's decoder

REFUSED = {
    "url pdf document (decodes; the translation refuses it)": "messages[0].content[0].source"
}
# Only translated requests carry images in tool messages (the contract's extension); the
# OpenAI surface's own validator refuses them from callers.
IMAGES_IN_TOOL_MESSAGES = {"tool result with an image": "messages[2].content[1].type"}


@pytest.mark.parametrize(("name", "fields"), DOCS_EXAMPLES, ids=[name for name, _ in DOCS_EXAMPLES])
def test_docs_examples_decode_on_the_openai_surface(name: str, fields: dict[str, Any]) -> None:
    request = decode_messages_request(json.dumps(full(fields)).encode())
    if name in REFUSED:
        with pytest.raises(ValidationFailed) as refused:
            to_chat_request(request)
        assert refused.value.param == REFUSED[name]
        return
    encoded = msgspec.json.encode(to_chat_request(request))
    if name in IMAGES_IN_TOOL_MESSAGES:
        chat = to_chat_request(request)
        assert any(
            isinstance(m, ToolMessage)
            and isinstance(m.content, list)
            and any(part.__struct_config__.tag == "image_url" for part in m.content)
            for m in chat.messages
        )
        with pytest.raises(ValidationFailed) as info:
            decode_chat_request(encoded)
        assert info.value.param == IMAGES_IN_TOOL_MESSAGES[name]
        assert "'image_url' parts are not allowed in tool messages" in info.value.message
        return
    chat = decode_chat_request(encoded)
    assert msgspec.json.encode(chat) == encoded  # nothing lost on the way through
