"""Canonical answers → Anthropic messages and events: the mapping row by row, the streams
gridgate's OpenAI path and core's own closing events produce, and the official ``anthropic``
SDK reading what comes out (its stream accumulator and its pydantic types)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest
from aiohttp import web
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from gridgate.errors import GridgateError, NoCapacity, SupplierFailed, SupplierTimeout
from gridgate.protocol.anthropic.from_chat import (
    MessageStreamEncoder,
    anthropic_error_type,
    error_event,
    message_from_completion,
    stop_reason_for,
)
from gridgate.protocol.openai_stream import DONE_EVENT, length_cutoff
from gridgate.protocol.openai_stream import error_event as core_error_event
from gridgate.protocol.sse import SSEParser
from gridgate.simulator.stream import DONE, ChunkEncoder

MODEL = "text-prime"  # the instrument the caller named
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


# -- plain -----------------------------------------------------------------------------------------
def completion(
    message: dict[str, Any],
    *,
    finish: str | None = "stop",
    stop_reason: Any = None,
    usage: dict[str, Any] | None = None,
    completion_id: str = "chatcmpl-1",
) -> bytes:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "refusal": None, **message},
        "logprobs": None,
        "finish_reason": finish,
    }
    if stop_reason is not None:
        choice["stop_reason"] = stop_reason
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "upstream/model-x",
        "choices": [choice],
        "usage": usage or {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }
    return json.dumps(body).encode()


def plain(body: bytes) -> dict[str, Any]:
    """The mapped message, checked against the SDK's own pydantic model."""
    raw = message_from_completion(body, model=MODEL)
    decoded: dict[str, Any] = json.loads(raw)
    Message.model_validate(decoded)
    return decoded


def test_text_answer() -> None:
    assert plain(completion({"content": "Hello there."})) == {
        "type": "message",
        "id": "msg_chatcmpl-1",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "Hello there."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def test_an_id_that_already_is_a_message_id_is_kept() -> None:
    body = completion({"content": "x"}, completion_id="msg_01abc")
    assert plain(body)["id"] == "msg_01abc"


@pytest.mark.parametrize("content", [None, ""])
def test_no_text_block_for_null_or_empty_content(content: str | None) -> None:
    assert plain(completion({"content": content}))["content"] == []


def test_tool_calls_become_tool_use_blocks() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Oslo", "days": [1, 2]}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
    ]
    message = plain(
        completion({"content": "Let me look.", "tool_calls": calls}, finish="tool_calls")
    )
    assert message["content"] == [
        {"type": "text", "text": "Let me look."},
        {
            "type": "tool_use",
            "id": "call_1",
            "name": "weather",
            "input": {"city": "Oslo", "days": [1, 2]},
        },
        {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    "arguments",
    ['{"city": "Os', "not json", "[1, 2]", '"a string"', "   "],
    ids=["cut-at-max-tokens", "garbage", "array", "string", "blank"],
)
def test_tool_arguments_that_are_no_json_object_become_an_empty_input(arguments: str) -> None:
    """Anthropic's ``input`` is always an object; an answer cut mid-call says ``max_tokens``."""
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    ]
    message = plain(completion({"content": None, "tool_calls": calls}, finish="length"))
    assert message["content"] == [{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]
    assert message["stop_reason"] == "max_tokens"


def test_thinking_blocks_with_signatures_and_redacted_keep_their_order() -> None:
    message = plain(
        completion(
            {
                "content": "42.",
                "reasoning_content": "First think. Then more.",
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "First think.", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "EncryptedBlob=="},
                    {"type": "thinking", "thinking": " Then more.", "signature": "sig-2"},
                ],
            }
        )
    )
    assert message["content"] == [
        {"type": "thinking", "thinking": "First think.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "EncryptedBlob=="},
        {"type": "thinking", "thinking": " Then more.", "signature": "sig-2"},
        {"type": "text", "text": "42."},
    ]


def test_reasoning_without_blocks_is_one_unsigned_thinking_block() -> None:
    message = plain(completion({"content": "Yes.", "reasoning_content": "Hmm."}))
    assert message["content"] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": ""},
        {"type": "text", "text": "Yes."},
    ]


def test_stop_sequence() -> None:
    message = plain(completion({"content": "one two"}, stop_reason="THREE"))
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "THREE")


def test_a_stop_token_id_is_no_stop_sequence() -> None:
    message = plain(completion({"content": "one"}, stop_reason=128_001))
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("abort", "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, expected: str) -> None:
    message = plain(completion({"content": "x"}, finish=finish))
    assert (message["stop_reason"], message["stop_sequence"]) == (expected, None)


def test_a_stop_with_tool_calls_reports_tool_use() -> None:
    """Some OpenAI-compatible servers say ``stop`` after tool calls; Anthropic clients loop on
    ``tool_use``."""
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert plain(completion({"tool_calls": calls}, finish="stop"))["stop_reason"] == "tool_use"
    assert stop_reason_for("stop", "END", called_tools=True) == ("stop_sequence", "END")


def test_refusal_becomes_text() -> None:
    message = plain(
        completion({"content": None, "refusal": "I can't help with that."}, finish="content_filter")
    )
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


def test_cache_usage_splits_the_prompt() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 40,
        "total_tokens": 1040,
        "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
    }
    assert plain(completion({"content": "x"}, usage=usage))["usage"] == {
        "input_tokens": 100,
        "output_tokens": 40,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 600,
    }


def test_only_the_first_choice_is_read() -> None:
    body = json.loads(completion({"content": "first"}))
    body["choices"].append({**body["choices"][0], "index": 1, "message": {"content": "second"}})
    assert plain(json.dumps(body).encode())["content"] == [{"type": "text", "text": "first"}]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id": "c", "choices": []}',
        b'{"id": "c", "choices": [{"message": {"content": 5}}]}',
        b'{"choices": [{"message": {"content": "x"}}]}',
        b'{"id": "c", "choices": [{"message": {"thinking_blocks": [{"type": "nope"}]}}]}',
    ],
    ids=["not-json", "array", "no-choices", "wrong-type", "no-id", "unknown-block"],
)
def test_an_unreadable_canonical_body_is_a_gridgate_error(body: bytes) -> None:
    with pytest.raises(GridgateError) as caught:
        message_from_completion(body, model=MODEL)
    assert type(caught.value) is GridgateError
    assert caught.value.status == 500
    assert "gridgate" in caught.value.message


# -- stream: helpers -------------------------------------------------------------------------------
Event = tuple[str, dict[str, Any]]


def events(raw: bytes) -> list[Event]:
    """Anthropic SSE bytes as (event, data) pairs; every event is one the SDK's types accept,
    and its ``event:`` name is its ``type``."""
    parser = SSEParser()
    parsed = parser.feed(raw) + parser.flush()
    assert b"".join(e.raw for e in parsed) == raw  # nothing but whole events
    out: list[Event] = []
    for event in parsed:
        data = json.loads(event.data)
        assert event.event == data["type"]
        assert event.raw == b"event: " + event.event.encode() + b"\ndata: " + event.data + b"\n\n"
        if data["type"] not in ("ping", "error"):
            STREAM_EVENT.validate_python(data)
        out.append((data["type"], data))
    return out


def message_start(message_id: str, estimate: int = 50) -> Event:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "type": "message",
                "id": message_id,
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": estimate,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        },
    )


PING: Event = ("ping", {"type": "ping"})
MESSAGE_STOP: Event = ("message_stop", {"type": "message_stop"})


def block_start(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def delta(index: int, kind: str, **fields: str) -> Event:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": {"type": kind, **fields}},
    )


def block_stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(reason: str, usage: dict[str, int], sequence: str | None = None) -> Event:
    return (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": usage,
        },
    )


TEXT_BLOCK = {"type": "text", "text": ""}
THINKING_BLOCK = {"type": "thinking", "thinking": "", "signature": ""}


def chunks() -> ChunkEncoder:
    """The canonical chunks of gridgate's OpenAI path: the simulator writes them the way OpenAI
    does, and the OpenAI adapter relays them byte for byte (include_usage: the Anthropic surface
    always asks for usage)."""
    return ChunkEncoder(
        completion_id="chatcmpl-s1",
        created=1_700_000_000,
        model="upstream/model-x",
        fingerprint="fp_1",
        include_usage=True,
    )


def usage_dict(
    prompt: int, completion: int, cached: int | None = None, written: int | None = None
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None or written is not None:
        details: dict[str, int] = {}
        if cached is not None:
            details["cached_tokens"] = cached
        if written is not None:
            details["cache_write_tokens"] = written
        usage["prompt_tokens_details"] = details
    return usage


def text_stream() -> list[bytes]:
    c = chunks()
    return [
        c.choice(0, {"role": "assistant", "content": "", "refusal": None}),
        c.content(0, "Hello"),
        c.content(0, ", wörld"),
        c.choice(0, {}, finish_reason="stop"),
        c.usage(usage_dict(20, 3)),
        DONE,
    ]


def tool_stream() -> list[bytes]:
    """As the simulator streams two tool calls: the first call's header rides in the role chunk."""
    c = chunks()
    header = {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    second = {
        "index": 1,
        "id": "call_b",
        "type": "function",
        "function": {"name": "time", "arguments": ""},
    }
    return [
        c.choice(
            0, {"role": "assistant", "content": None, "tool_calls": [header], "refusal": None}
        ),
        c.choice(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        c.choice(0, {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        c.choice(0, {"tool_calls": [second]}),
        c.choice(0, {"tool_calls": [{"index": 1, "function": {"arguments": '{"tz": "UTC"}'}}]}),
        c.choice(0, {}, finish_reason="tool_calls"),
        c.usage(usage_dict(40, 18)),
        DONE,
    ]


def thinking_stream(stop_sequence: str | None = None) -> list[bytes]:
    """As an Anthropic-format supplier's answer reaches core (contract: reasoning text in
    ``reasoning_content``, the signature and redacted blocks in ``thinking_blocks``, the stop
    sequence in the finish choice's ``stop_reason``)."""
    c = chunks()
    finish = c.choice(0, {}, finish_reason="stop")
    if stop_sequence is not None:
        finish = finish.replace(
            b'"finish_reason":"stop"',
            b'"finish_reason":"stop","stop_reason":' + json.dumps(stop_sequence).encode(),
        )
    return [
        c.choice(0, {"role": "assistant", "content": ""}),
        c.choice(0, {"reasoning_content": "Let me "}),
        c.choice(0, {"reasoning_content": "think."}),
        c.choice(
            0, {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig=="}]}
        ),
        c.choice(0, {"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque=="}]}),
        c.content(0, "Done"),
        finish,
        c.usage(usage_dict(1000, 30, cached=600, written=300)),
        DONE,
    ]


def feed_all(pieces: list[bytes], estimate: int = 50) -> tuple[list[bytes], MessageStreamEncoder]:
    encoder = MessageStreamEncoder(MODEL, estimate)
    return [encoder.feed(piece) for piece in pieces], encoder


# -- stream: the event sequences -------------------------------------------------------------------
def test_text_stream() -> None:
    out, encoder = feed_all(text_stream())
    # role chunk: the message starts; content: deltas; finish: the block closes; usage: nothing
    # yet; [DONE]: the stop reason and usage
    assert [events(piece) for piece in out] == [
        [message_start("msg_chatcmpl-s1"), PING],
        [block_start(0, TEXT_BLOCK), delta(0, "text_delta", text="Hello")],
        [delta(0, "text_delta", text=", wörld")],
        [block_stop(0)],
        [],
        [
            message_delta(
                "end_turn",
                {
                    "output_tokens": 3,
                    "input_tokens": 20,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            ),
            MESSAGE_STOP,
        ],
    ]
    assert encoder.ended
    assert encoder.feed(DONE) == b""
    assert encoder.close() == b""


def test_tool_call_stream() -> None:
    out, _ = feed_all(tool_stream())
    assert events(b"".join(out)) == [
        message_start("msg_chatcmpl-s1"),
        PING,
        block_start(0, {"type": "tool_use", "id": "call_a", "name": "weather", "input": {}}),
        delta(0, "input_json_delta", partial_json='{"city": '),
        delta(0, "input_json_delta", partial_json='"Oslo"}'),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "call_b", "name": "time", "input": {}}),
        delta(1, "input_json_delta", partial_json='{"tz": "UTC"}'),
        block_stop(1),
        message_delta(
            "tool_use",
            {
                "output_tokens": 18,
                "input_tokens": 40,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        ),
        MESSAGE_STOP,
    ]


def test_thinking_stream_with_signature_redacted_block_stop_sequence_and_cache_usage() -> None:
    out, _ = feed_all(thinking_stream("###"))
    assert events(b"".join(out)) == [
        message_start("msg_chatcmpl-s1"),
        PING,
        block_start(0, THINKING_BLOCK),
        delta(0, "thinking_delta", thinking="Let me "),
        delta(0, "thinking_delta", thinking="think."),
        delta(0, "signature_delta", signature="sig=="),
        block_stop(0),
        block_start(1, {"type": "redacted_thinking", "data": "opaque=="}),
        block_stop(1),
        block_start(2, TEXT_BLOCK),
        delta(2, "text_delta", text="Done"),
        block_stop(2),
        message_delta(
            "stop_sequence",
            {
                "output_tokens": 30,
                "input_tokens": 100,
                "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 600,
            },
            sequence="###",
        ),
        MESSAGE_STOP,
    ]


def test_reasoning_from_an_openai_format_supplier_is_an_unsigned_thinking_block() -> None:
    c = chunks()
    pieces = [
        c.choice(0, {"role": "assistant", "content": ""}),
        c.choice(0, {"reasoning_content": "Hmm."}),
        c.content(0, "Yes."),
        c.choice(0, {}, finish_reason="stop"),
        c.usage(usage_dict(5, 4)),
        DONE,
    ]
    out, _ = feed_all(pieces)
    assert [name for name, _ in events(b"".join(out))] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_core_cut_off_at_the_hold_with_usage() -> None:
    """Core's own closing events for an answer cut at its hold: ``length`` for every choice,
    the usage charged, ``[DONE]`` — in one piece."""
    pieces = text_stream()[:3]
    cut = length_cutoff(pieces[-1], 1, prompt_tokens=20, completion_tokens=7)
    out, _ = feed_all([*pieces, cut])
    assert events(out[-1]) == [
        block_stop(0),
        message_delta(
            "max_tokens",
            {
                "output_tokens": 7,
                "input_tokens": 20,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        ),
        MESSAGE_STOP,
    ]


def test_core_cut_off_without_usage_reports_the_output_core_meters() -> None:
    pieces = text_stream()[:3]  # "Hello" and ", wörld": 13 UTF-8 bytes → 4 tokens
    cut = length_cutoff(pieces[-1], 2)  # n=2: the second choice's finish is not read
    out, _ = feed_all([*pieces, cut])
    assert events(out[-1]) == [
        block_stop(0),
        message_delta("max_tokens", {"output_tokens": 4}),
        MESSAGE_STOP,
    ]


@pytest.mark.parametrize(
    ("error", "expected_type"),
    [
        (SupplierFailed("the supplier connection failed mid-answer"), "api_error"),
        (SupplierTimeout("the supplier went silent mid-answer"), "timeout_error"),
        (NoCapacity("no capacity"), "overloaded_error"),
    ],
)
def test_core_error_event_ends_the_stream(error: GridgateError, expected_type: str) -> None:
    pieces = text_stream()[:2]
    out, encoder = feed_all([*pieces, core_error_event(error)])
    assert events(out[-1]) == [
        ("error", {"type": "error", "error": {"type": expected_type, "message": error.message}})
    ]
    assert encoder.ended
    assert encoder.feed(DONE) == b""
    assert encoder.close() == b""


@pytest.mark.parametrize(
    ("openai_type", "expected"),
    [
        ("invalid_request_error", "invalid_request_error"),
        ("authentication_error", "authentication_error"),
        ("rate_limit_error", "rate_limit_error"),
        ("timeout_error", "timeout_error"),
        ("upstream_error", "api_error"),
        ("api_error", "api_error"),
        ("service_unavailable", "overloaded_error"),
        ("permission_error", "permission_error"),
        ("not_found_error", "not_found_error"),
        ("insufficient_quota", "billing_error"),
        ("something_new", "api_error"),
        (None, "api_error"),
    ],
)
def test_error_types(openai_type: str | None, expected: str) -> None:
    assert anthropic_error_type(openai_type) == expected


def test_error_event_renders_a_gridgate_error_the_anthropic_way() -> None:
    assert events(error_event(SupplierFailed("gone"))) == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "gone"}})
    ]


def test_done_without_a_finish_chunk_ends_the_turn() -> None:
    """Core writes its own ``[DONE]`` when the upstream iterator ends."""
    pieces = [*text_stream()[:3], DONE_EVENT]
    out, _ = feed_all(pieces)
    assert events(out[-1]) == [
        block_stop(0),
        message_delta("end_turn", {"output_tokens": 4}),
        MESSAGE_STOP,
    ]


def test_close_ends_a_stream_that_stopped_without_a_terminator() -> None:
    _, encoder = feed_all(text_stream()[:2])
    assert not encoder.ended
    assert [name for name, _ in events(encoder.close())] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert encoder.ended
    assert MessageStreamEncoder(MODEL, 1).close() == b""


def test_other_choices_are_not_read() -> None:
    c = chunks()
    pieces = [
        c.choice(0, {"role": "assistant", "content": ""}),
        c.choice(1, {"role": "assistant", "content": ""}),
        c.content(1, "other"),
        c.content(0, "mine"),
        c.choice(1, {}, finish_reason="length"),
        c.choice(0, {}, finish_reason="stop"),
        DONE,
    ]
    received = events(b"".join(feed_all(pieces)[0]))
    assert [d for name, d in received if name == "content_block_delta"] == [
        delta(0, "text_delta", text="mine")[1]
    ]
    assert received[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_parallel_calls_a_supplier_numbers_all_zero_keep_their_own_blocks() -> None:
    c = chunks()
    pieces = [
        c.choice(0, {"role": "assistant", "content": None}),
        c.choice(
            0,
            {
                "tool_calls": [
                    {"index": 0, "id": "c1", "function": {"name": "a", "arguments": "{}"}}
                ]
            },
        ),
        c.choice(
            0,
            {
                "tool_calls": [
                    {"index": 0, "id": "c2", "function": {"name": "b", "arguments": '{"x":1}'}}
                ]
            },
        ),
        c.choice(0, {}, finish_reason="stop"),
        DONE,
    ]
    assert events(b"".join(feed_all(pieces)[0]))[2:] == [
        block_start(0, {"type": "tool_use", "id": "c1", "name": "a", "input": {}}),
        delta(0, "input_json_delta", partial_json="{}"),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "c2", "name": "b", "input": {}}),
        delta(1, "input_json_delta", partial_json='{"x":1}'),
        block_stop(1),
        message_delta("tool_use", {"output_tokens": 3}),  # a{}b{"x":1}: 11 bytes
        MESSAGE_STOP,
    ]


def test_interleaved_fragments_go_to_their_call_block() -> None:
    c = chunks()
    pieces = [
        c.choice(0, {"role": "assistant", "content": None}),
        c.choice(
            0,
            {
                "tool_calls": [
                    {"index": 0, "id": "c1", "function": {"name": "a", "arguments": '{"p":'}}
                ]
            },
        ),
        c.choice(
            0,
            {
                "tool_calls": [
                    {"index": 1, "id": "c2", "function": {"name": "b", "arguments": "{}"}}
                ]
            },
        ),
        c.choice(0, {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        c.choice(0, {}, finish_reason="tool_calls"),
        DONE,
    ]
    received = events(b"".join(feed_all(pieces)[0]))
    assert delta(0, "input_json_delta", partial_json="1}") in received


def test_text_after_thinking_and_tools_opens_new_blocks() -> None:
    c = chunks()
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    pieces = [
        c.choice(0, {"role": "assistant", "content": "Sure. "}),
        c.choice(0, {"tool_calls": [call]}),
        c.content(0, "And more."),
        c.choice(0, {}, finish_reason="tool_calls"),
        DONE,
    ]
    received = events(b"".join(feed_all(pieces)[0]))
    starts = [d["content_block"]["type"] for name, d in received if name == "content_block_start"]
    stops = [d["index"] for name, d in received if name == "content_block_stop"]
    assert starts == ["text", "tool_use", "text"]
    assert stops == [0, 1, 2]


def test_an_unreadable_canonical_event_is_a_gridgate_error() -> None:
    encoder = MessageStreamEncoder(MODEL, 1)
    with pytest.raises(GridgateError) as caught:
        encoder.feed(b'data: {"choices": {"not": "a list"}}\n\n')
    assert caught.value.status == 500


def test_a_done_before_anything_still_makes_a_whole_message() -> None:
    received = events(MessageStreamEncoder(MODEL, 9).feed(DONE))
    assert [name for name, _ in received] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]
    assert received[0][1]["message"]["id"].startswith("msg_")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["text", "tool", "thinking"]), st.data())
def test_output_does_not_depend_on_how_the_canonical_stream_is_cut(
    kind: str, data: st.DataObject
) -> None:
    stream = b"".join(
        {"text": text_stream, "tool": tool_stream, "thinking": thinking_stream}[kind]()
    )
    whole = MessageStreamEncoder(MODEL, 50).feed(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    encoder = MessageStreamEncoder(MODEL, 50)
    pieces, start = [], 0
    for cut in [*cuts, len(stream)]:
        pieces.append(encoder.feed(stream[start:cut]))
        start = cut
    assert b"".join(pieces) == whole


# -- the official SDK as the client ----------------------------------------------------------------
@dataclass
class Reply:
    body: bytes = b""
    content_type: str = "text/event-stream"


@pytest.fixture
async def anthropic_server() -> AsyncIterator[tuple[Reply, str]]:
    """A local ``/v1/messages`` that answers with whatever bytes the test puts in ``Reply``."""
    reply = Reply()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply.body, content_type=reply.content_type)

    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield reply, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def sdk_stream(base_url: str) -> Any:
    async with (
        anthropic.AsyncAnthropic(base_url=base_url, api_key="x", max_retries=0) as client,
        client.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        return await stream.get_final_message()


async def test_sdk_reads_a_text_stream(anthropic_server: tuple[Reply, str]) -> None:
    reply, url = anthropic_server
    reply.body = b"".join(feed_all(text_stream())[0])
    message = await sdk_stream(url)
    assert message.id == "msg_chatcmpl-s1"
    assert message.model == MODEL
    assert [(b.type, b.text) for b in message.content] == [("text", "Hello, wörld")]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 3)


async def test_sdk_reads_a_tool_call_stream(anthropic_server: tuple[Reply, str]) -> None:
    reply, url = anthropic_server
    reply.body = b"".join(feed_all(tool_stream())[0])
    message = await sdk_stream(url)
    assert [(b.type, b.id, b.name, b.input) for b in message.content] == [
        ("tool_use", "call_a", "weather", {"city": "Oslo"}),
        ("tool_use", "call_b", "time", {"tz": "UTC"}),
    ]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (40, 18)


async def test_sdk_reads_thinking_signature_stop_sequence_and_cache_usage(
    anthropic_server: tuple[Reply, str],
) -> None:
    reply, url = anthropic_server
    reply.body = b"".join(feed_all(thinking_stream("###"))[0])
    message = await sdk_stream(url)
    thinking, redacted, text = message.content
    assert (thinking.type, thinking.thinking, thinking.signature) == (
        "thinking",
        "Let me think.",
        "sig==",
    )
    assert (redacted.type, redacted.data) == ("redacted_thinking", "opaque==")
    assert (text.type, text.text) == ("text", "Done")
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "###")
    usage = message.usage
    assert (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
    ) == (100, 30, 300, 600)


async def test_sdk_reads_a_cut_off_stream_with_a_half_written_tool_call(
    anthropic_server: tuple[Reply, str],
) -> None:
    reply, url = anthropic_server
    pieces = tool_stream()[:2]  # the call's input stops at '{"city": '
    cut = length_cutoff(pieces[-1], 1, prompt_tokens=40, completion_tokens=9)
    reply.body = b"".join(feed_all([*pieces, cut])[0])
    message = await sdk_stream(url)
    assert [(b.type, b.name) for b in message.content] == [("tool_use", "weather")]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 9


async def test_sdk_raises_on_an_error_event(anthropic_server: tuple[Reply, str]) -> None:
    reply, url = anthropic_server
    error = SupplierFailed("the supplier connection failed mid-answer")
    reply.body = b"".join(feed_all([*text_stream()[:2], core_error_event(error)])[0])
    with pytest.raises(anthropic.APIStatusError) as caught:
        await sdk_stream(url)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": error.message},
    }


async def test_sdk_reads_a_plain_message(anthropic_server: tuple[Reply, str]) -> None:
    reply, url = anthropic_server
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    reply.content_type = "application/json"
    reply.body = message_from_completion(
        completion(
            {
                "content": "ok",
                "tool_calls": calls,
                "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
            },
            finish="tool_calls",
            usage=usage_dict(50, 9, cached=20, written=10),
        ),
        model=MODEL,
    )
    async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[2].input == {"a": 1}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.cache_creation_input_tokens,
    ) == (20, 20, 10)
