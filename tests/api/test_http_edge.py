"""The HTTP edge over a real gateway process: every invalid-request rule answers its 4xx in both
envelopes naming the field, wrong paths/methods/sizes are enveloped too, and no body a client
can send produces a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgate.errors import BadRequest
from tests.harness import GatewayProcess
from tests.protocol.test_openai_chat import INVALID


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    _, secret = gateway.new_account("5")
    root = gateway.base_url.removesuffix("/v1")
    with httpx.Client(
        base_url=root, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    ) as client:
        yield client


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["errors"]["detail"] == body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"].startswith("req_")
    return body


@pytest.mark.parametrize(
    ("raw", "error", "param"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_every_invalid_rule_over_http(
    http: httpx.Client, raw: bytes, error: type[Exception], param: str | None
) -> None:
    response = http.post("/v1/chat/completions", content=raw)
    body = assert_envelope(response, 400 if error is BadRequest else 422)
    if param is not None:
        assert body["error"]["param"] == param
        assert body["errors"]["detail"].startswith(param.split("[")[0])


def test_missing_key_is_401_before_the_body_is_read(gateway: GatewayProcess) -> None:
    root = gateway.base_url.removesuffix("/v1")
    response = httpx.post(f"{root}/v1/chat/completions", content=b"{not json")
    body = assert_envelope(response, 401)
    assert body["error"]["code"] == "missing_api_key"


def test_wrong_path_and_method_are_enveloped(http: httpx.Client) -> None:
    assert_envelope(http.get("/v1/chat/completion"), 404)
    assert_envelope(http.get("/v1/v1/chat/completions"), 404)
    response = http.get("/v1/chat/completions")
    assert_envelope(response, 405)
    assert response.headers["allow"] == "POST"


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    big = (
        b'{"model": "text-prime", "messages": [{"role": "user", "content": "'
        + (b"x" * (17 * 1024 * 1024))
        + b'"}]}'
    )
    assert_envelope(http.post("/v1/chat/completions", content=big), 413)


def test_instrument_limits_are_422_naming_the_field(http: httpx.Client) -> None:
    body = {
        "model": "text-standard",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 70_000,
    }
    response = http.post("/v1/chat/completions", json=body)
    assert assert_envelope(response, 422)["error"]["param"] == "max_completion_tokens"
    body = {
        "model": "text-prime",
        "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "xhigh",
    }
    response = http.post("/v1/chat/completions", json=body)
    assert assert_envelope(response, 422)["error"]["param"] == "reasoning_effort"
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    body = {"model": "text-prime", "messages": [{"role": "user", "content": [image]}]}
    response = http.post("/v1/chat/completions", json=body)
    assert assert_envelope(response, 422)["error"]["param"] == "messages"


def test_a_prompt_over_the_instruments_max_input_is_422(http: httpx.Client) -> None:
    body = {"model": "text-prime", "messages": [{"role": "user", "content": "x" * 700_000}]}
    response = http.post("/v1/chat/completions", json=body)
    assert assert_envelope(response, 422)["error"]["code"] == "context_length_exceeded"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "service_tier",
    "reasoning_effort",
    "provider",
    "route",
    "user",
    "metadata",
    "logit_bias",
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(overrides=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4))
def test_fuzzed_bodies_never_500(http: httpx.Client, overrides: dict[str, Any]) -> None:
    body: dict[str, Any] = {
        "model": "text-prime",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
    }
    body.update(overrides)
    response = http.post("/v1/chat/completions", content=json.dumps(body).encode())
    assert response.status_code < 500 or response.status_code in (502, 503), response.text
    if response.status_code >= 400:
        assert_envelope(response, response.status_code)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_fuzzed_bytes_never_500(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/v1/chat/completions", content=raw)
    assert response.status_code in (400, 422), response.text
