"""Prompt token bounds and estimates."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgate.protocol.openai_chat import (
    ChatRequest,
    FunctionDefinition,
    Tool,
    UserMessage,
    decode_chat_request,
)
from gridgate.protocol.tokens import (
    AUDIO_PART_TOKENS,
    FILE_PART_TOKENS,
    IMAGE_PART_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
    PROMPT_BASE_TOKENS,
    TOOLS_PREAMBLE_TOKENS,
    count_text_tokens_estimate,
    measure_prompt,
    prompt_token_estimate,
    prompt_token_upper_bound,
    utf8_length,
)


def request(messages: list[Any], **fields: Any) -> ChatRequest:
    return decode_chat_request(json.dumps({"model": "m", "messages": messages, **fields}).encode())


def test_count_text_tokens_estimate() -> None:
    assert count_text_tokens_estimate("") == 0
    assert count_text_tokens_estimate("abc") == 1
    assert count_text_tokens_estimate("abcd") == 1
    assert count_text_tokens_estimate("abcde") == 2
    assert count_text_tokens_estimate("é") == 1  # 2 bytes
    assert count_text_tokens_estimate("😀😀") == 2  # 8 bytes
    assert count_text_tokens_estimate("\ud800") == 1  # a lone surrogate does not raise


def test_minimal_prompt() -> None:
    req = request([{"role": "user", "content": "hello"}])
    base = PROMPT_BASE_TOKENS + MESSAGE_OVERHEAD_TOKENS
    assert prompt_token_upper_bound(req) == base + 5
    assert prompt_token_estimate(req) == base + 2
    assert measure_prompt(req) == (base + 5, base + 2, 2)


def test_every_text_counts() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    req = request(
        [
            {"role": "system", "content": "s", "name": "nm"},
            {"role": "user", "content": [{"type": "text", "text": "t" * 100}]},
            {"role": "assistant", "content": None, "tool_calls": [call], "refusal": "r"},
            {"role": "tool", "tool_call_id": "call_1", "content": "x"},
        ]
    )
    texts = ["s", "nm", "t" * 100, "r", "call_1", "f", "{}", "call_1", "x"]
    assert prompt_token_upper_bound(req) >= sum(len(t) for t in texts) + 4 * 8


def test_tools_and_schema_count_as_json() -> None:
    params = {"type": "object", "properties": {"q": {"type": "string", "description": "d" * 500}}}
    plain = request([{"role": "user", "content": "x"}])
    tooled = request(
        [{"role": "user", "content": "x"}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": params}}],
    )
    grown = prompt_token_upper_bound(tooled) - prompt_token_upper_bound(plain)
    assert grown >= TOOLS_PREAMBLE_TOKENS + len(json.dumps(params, separators=(",", ":")))
    schema = request(
        [{"role": "user", "content": "x"}],
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": params}},
    )
    assert prompt_token_upper_bound(schema) - prompt_token_upper_bound(plain) > 500


def test_media_parts() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10**6}}
    req = request([{"role": "user", "content": [image]}])
    bound = prompt_token_upper_bound(req)
    assert IMAGE_PART_TOKENS <= bound < IMAGE_PART_TOKENS + 200  # the URL's bytes do not count
    assert prompt_token_estimate(req) < bound

    short_audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    long_audio = {"type": "input_audio", "input_audio": {"data": "A" * 320_000, "format": "mp3"}}
    assert prompt_token_upper_bound(request([{"role": "user", "content": [short_audio]}])) >= (
        AUDIO_PART_TOKENS
    )
    assert prompt_token_upper_bound(request([{"role": "user", "content": [long_audio]}])) >= (
        10_000
    )

    by_id = {"type": "file", "file": {"file_id": "file-1"}}
    inline = {"type": "file", "file": {"file_data": "A" * 4000}}
    assert prompt_token_upper_bound(request([{"role": "user", "content": [by_id]}])) >= (
        FILE_PART_TOKENS
    )
    assert prompt_token_upper_bound(request([{"role": "user", "content": [inline]}])) >= (
        FILE_PART_TOKENS + 3000
    )


def test_unencodable_tool_falls_back_without_raising() -> None:
    # Built in Python (not decoded): contains what msgspec will not encode.
    nested: Any = {"leaf": "\ud800", "float": 1.5, "big": 10**400, "ok": [True, None]}
    for _ in range(5_000):
        nested = {"n": nested}
    tool = Tool(type="function", function=FunctionDefinition(name="f", parameters=nested))
    req = ChatRequest(model="m", messages=[UserMessage(content="x")], tools=[tool])
    assert prompt_token_upper_bound(req) > 5_000 * 4
    assert prompt_token_estimate(req) <= prompt_token_upper_bound(req)


texts = st.text(max_size=200)
parts = st.one_of(
    texts.map(lambda t: {"type": "text", "text": t}),
    st.just({"type": "image_url", "image_url": {"url": "https://x/y.png"}}),
    st.text(alphabet="AB=", max_size=100).map(
        lambda d: {"type": "input_audio", "input_audio": {"data": d, "format": "wav"}}
    ),
    st.text(alphabet="AB=", max_size=100).map(lambda d: {"type": "file", "file": {"file_data": d}}),
)
messages = st.lists(
    st.one_of(
        texts.map(lambda t: {"role": "user", "content": t}),
        st.lists(parts, min_size=1, max_size=4).map(lambda p: {"role": "user", "content": p}),
        texts.map(lambda t: {"role": "system", "content": t}),
        texts.map(lambda t: {"role": "assistant", "content": t}),
        texts.map(lambda t: {"role": "tool", "tool_call_id": "c", "content": t}),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_bound_covers_estimate_and_bytes(msgs: list[Any]) -> None:
    req = request(msgs)
    bound = prompt_token_upper_bound(req)
    estimate = prompt_token_estimate(req)
    assert bound >= estimate > 0
    text_bytes = 0
    for message in msgs:
        content = message["content"]
        if isinstance(content, str):
            text_bytes += utf8_length(content)
        else:
            text_bytes += sum(utf8_length(p.get("text", "")) for p in content)
    assert bound >= text_bytes
    # the estimate of plain text is about a quarter of its bytes, plus the same overheads
    assert estimate >= math.ceil(text_bytes / 4)
    assert bound - estimate >= text_bytes - math.ceil(text_bytes / 4)
    # what a prompt nobody counted is charged: its text alone, never above the hold's figure
    charge = measure_prompt(req).charge
    assert math.ceil(text_bytes / 4) <= charge <= estimate <= bound  # (tool ids count too)


def test_an_uncounted_prompt_is_charged_its_text_without_overheads() -> None:
    """A short prompt is a few tokens: the charge carries none of the hold's fixed overheads
    (a supplier counts "say hi" as about 8 tokens, the estimate says 138)."""
    req = request([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    size = measure_prompt(req)
    assert size.charge == math.ceil(len("be brief" + "hi") / 4) == 3
    assert size.estimate >= PROMPT_BASE_TOKENS
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    media = measure_prompt(request([{"role": "user", "content": [image]}]))
    assert media.charge == 0 < media.estimate <= media.upper_bound


def test_bound_is_at_least_encoded_length_of_text() -> None:
    text = "naïve café — 東京 🚀 " * 50
    req = request([{"role": "user", "content": text}])
    assert prompt_token_upper_bound(req) >= len(text.encode())
    assert prompt_token_upper_bound(req) >= len(msgspec.json.encode(text)) - 2
