"""Fuzzing the decoder: any input either decodes or raises BadRequest / ValidationFailed."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgate.errors import BadRequest, ValidationFailed
from gridgate.protocol.openai_chat import ChatRequest, decode_chat_request
from gridgate.protocol.tokens import measure_prompt

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
            "tool",
            "developer",
            "function",
            "text",
            "image_url",
            "input_audio",
            "file",
            "refusal",
            "function",
            "json_schema",
            "json_object",
            "auto",
            "none",
            "required",
            "fallback",
            "high",
            "wav",
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
                    "name",
                    "url",
                    "function",
                    "arguments",
                    "id",
                    "data",
                    "format",
                    "x",
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
    "model": "text-prime",
    "messages": [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ],
    "max_tokens": 100,
    "temperature": 0.7,
    "top_p": 0.9,
    "n": 2,
    "stream": True,
    "stream_options": {"include_usage": True},
    "stop": ["\n"],
    "logprobs": True,
    "top_logprobs": 3,
    "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {}}},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "seed": 7,
    "logit_bias": {"1": 5},
    "metadata": {"k": "v"},
    "provider": {"allow_fallbacks": True},
    "route": "fallback",
}


def check(raw: bytes) -> None:
    error: BadRequest | ValidationFailed | None = None
    try:
        req = decode_chat_request(raw)
    except (BadRequest, ValidationFailed) as exc:
        error = exc
    if error is not None:
        assert type(error) in (BadRequest, ValidationFailed)
        assert error.message
        error.render()  # every message must be encodable
        return
    assert isinstance(req, ChatRequest)
    msgspec.json.encode(req)  # whatever decodes can be sent upstream
    size = measure_prompt(req)
    assert size.upper_bound >= size.estimate > 0
    assert size.estimate >= size.charge >= 0  # a charge never exceeds what was held


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


def test_valid_body_is_valid() -> None:
    req = decode_chat_request(json.dumps(VALID).encode())
    assert json.loads(msgspec.json.encode(req)) == VALID


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
@given(st.binary(max_size=20), st.integers(min_value=0, max_value=2000))
def test_corrupted_valid_body(noise: bytes, at: int) -> None:
    raw = json.dumps(VALID).encode()
    check(raw[:at] + noise + raw[at + len(noise) :])


def test_hostile_inputs() -> None:
    for raw in [
        b"\x00",
        b"\xef\xbb\xbf{}",
        b'{"model": "m", "messages": [{"role": "user", "content": "\\udfff"}]}',
        b'{"model": "m", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}',
        b'{"model": "m", "messages": [], "n": 1' + b"0" * 5000 + b"}",
        b'{"model": "m", "messages": [], "n": -1' + b"0" * 5000 + b"}",
        b'{"model": "m", "messages": [], "temperature": 1e-999}',
        b'{"model": "m", "messages": [], "temperature": NaN}',
        b'{"model": "m", "messages": [], "temperature": Infinity}',
        b'{"model": "m", "messages": [], "metadata": '
        + b'{"a":' * 50_000
        + b"1"
        + b"}" * 50_000
        + b"}",
        b"[" * 1_000_000,
        b'{"model": "' + "é".encode() * 100_000 + b'", "messages": []}',
        b'{"model": "m", "messages": [{"role": "' + b"r" * 100_000 + b'"}]}',
    ]:
        check(raw)
