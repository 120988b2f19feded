"""The Messages surface answers failures as Anthropic's API does, over a real `gridgate serve`:
its statuses and error types (so the official SDK raises the exception it raises against
Anthropic), Anthropic's wording where clients match it, and ``thread`` refused the way the SDKs
fall back on. The OpenAI surface answers the same failures with its own statuses, unchanged.

text-max's only offer is below the instrument's quality floor: no in-spec offer can serve it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic import Anthropic

from tests.harness import BackgroundLoop, GatewayProcess, Offer, own_gateway, wait_until

OFFERS = [
    Offer("sim-a", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 131_072),
    Offer("sim-a", "text-max", "sim/max-a", "1.20", "4.80", 10, 1_000_000, 128_000),
]
USER: Any = [{"role": "user", "content": "Hello"}]
# Claude Code's pattern for an over-long prompt (it compacts the conversation on a match)
CLAUDE_CODE_OVERFLOW = re.compile(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", re.I)


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with own_gateway(bg, tmp_path_factory.mktemp("anthropic-errors"), OFFERS) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.new_account("5")[1]


@pytest.fixture
def client(gw: GatewayProcess, key: str) -> Iterator[Anthropic]:
    with Anthropic(base_url=root(gw), api_key=key, max_retries=0) as sdk:
        yield sdk


def root(gw: GatewayProcess) -> str:
    return gw.base_url.removesuffix("/v1")


def post(gw: GatewayProcess, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gw.base_url}{path}", json=body, headers={"x-api-key": key}, timeout=30)


def error_of(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The ``error`` object of an Anthropic-shaped answer with ``status`` and type ``kind``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["request_id"] == response.headers["request-id"]
    assert body["error"]["type"] == kind, body
    error: dict[str, Any] = body["error"]
    return error


def test_an_invalid_request_is_bad_request_in_the_sdk(client: Anthropic) -> None:
    # 422 on the OpenAI surface; Anthropic's API answers 400 for every invalid request
    for invalid in ({"temperature": 1.5}, {"messages": []}, {"max_tokens": 0}):
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(
                model="text-prime", max_tokens=3, messages=USER, extra_body=invalid
            )
        assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with (
        pytest.raises(anthropic.BadRequestError),  # the stream helper: before any event
        client.messages.stream(
            model="text-prime", max_tokens=3, messages=USER, extra_body={"temperature": 1.5}
        ) as stream,
    ):
        list(stream)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="text-prime", messages=[])


def test_a_need_no_offer_meets_is_400_too(gw: GatewayProcess, key: str) -> None:
    body = {"model": "text-prime", "max_tokens": 3, "messages": USER}
    refused = post(gw, key, "/messages", {**body, "provider": {"only": ["nobody"]}})
    assert error_of(refused, 400, "invalid_request_error")["message"].startswith("provider.only")


def test_an_unknown_top_level_field_is_refused_in_anthropics_words(
    gw: GatewayProcess, key: str
) -> None:
    body = {"model": "text-prime", "max_tokens": 3, "messages": USER}
    refused = post(gw, key, "/messages", {**body, "frobnicate": True})
    error = error_of(refused, 400, "invalid_request_error")
    assert error["message"] == "frobnicate: Extra inputs are not permitted"
    # Anthropic's own fields that change nothing here are accepted and ignored
    known = {"speed": "standard", "inference_geo": "us", "context_management": {"edits": []}}
    assert post(gw, key, "/messages", {**body, **known}).status_code == 200


@pytest.mark.parametrize(
    "thread",
    [{"type": "create"}, {"type": "continue", "previous_message_id": "msg_0123"}],
    ids=["create", "continue"],
)
def test_a_thread_is_refused_with_the_code_the_sdks_fall_back_on(
    gw: GatewayProcess, key: str, thread: dict[str, Any]
) -> None:
    response = httpx.post(
        f"{gw.base_url}/messages?beta=true",
        json={"model": "text-prime", "max_tokens": 3, "messages": USER, "thread": thread},
        headers={"x-api-key": key, "anthropic-beta": "message-threads-2026-08-12"},
        timeout=30,
    )
    error = error_of(response, 400, "invalid_request_error")
    assert error["details"] == {"error_code": "thread_unsupported_request"}
    assert error["message"].startswith("thread: ")


def test_a_prompt_over_the_input_cap_reads_as_anthropics_overflow(
    gw: GatewayProcess, client: Anthropic, key: str
) -> None:
    long: Any = [{"role": "user", "content": "x" * 600_000}]  # ~150,000 tokens > 120,000
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="text-prime", max_tokens=3, messages=long)
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    match = CLAUDE_CODE_OVERFLOW.search(message)
    assert match, message
    tokens, maximum = int(match.group(1)), int(match.group(2))
    assert message == f"prompt is too long: {tokens} tokens > {maximum} maximum"
    assert maximum == 120_000 and tokens > maximum
    with (
        pytest.raises(anthropic.BadRequestError) as streamed,
        client.messages.stream(model="text-prime", max_tokens=3, messages=long) as stream,
    ):
        list(stream)
    assert streamed.value.body["error"]["message"] == message  # type: ignore[index]

    # the OpenAI surface keeps its status and wording
    with (
        openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as oai,
        pytest.raises(openai.UnprocessableEntityError) as unprocessable,
    ):
        oai.chat.completions.create(model="text-prime", max_tokens=3, messages=long)
    assert unprocessable.value.code == "context_length_exceeded"
    assert "messages: the prompt is about" in unprocessable.value.message


def test_no_in_spec_offer_is_529_overloaded(
    gw: GatewayProcess, client: Anthropic, key: str
) -> None:
    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(model="text-max", max_tokens=3, messages=USER)
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    with (
        pytest.raises(anthropic.OverloadedError),
        client.messages.stream(model="text-max", max_tokens=3, messages=USER) as stream,
    ):
        list(stream)

    with (
        openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as oai,
        pytest.raises(openai.APIStatusError) as unavailable,
    ):
        oai.chat.completions.create(model="text-max", max_tokens=3, messages=USER)
    assert unavailable.value.status_code == 503  # the OpenAI surface: unchanged


def test_over_a_rate_limit_is_429_with_retry_after(gw: GatewayProcess) -> None:
    account, key = gw.new_account("5")
    [listed] = gw.run(gw.store.list_keys(account))
    done = gw.cli("keys", "limits", listed.id, "--rpm", "0")
    assert done.returncode == 0, done.stderr
    body = {"model": "text-prime", "max_tokens": 3, "messages": USER}
    refused = wait_until(lambda: (r := post(gw, key, "/messages", body)).status_code == 429 and r)
    error_of(refused, 429, "rate_limit_error")
    assert int(refused.headers["retry-after"]) >= 1
    with (
        Anthropic(base_url=root(gw), api_key=key, max_retries=0) as sdk,
        pytest.raises(anthropic.RateLimitError),
    ):
        sdk.messages.create(model="text-prime", max_tokens=3, messages=USER)


def test_a_balance_too_low_is_402_billing_error(gw: GatewayProcess) -> None:
    _, key = gw.new_account("0")
    with (
        Anthropic(base_url=root(gw), api_key=key, max_retries=0) as sdk,
        pytest.raises(anthropic.PaymentRequiredError) as caught,
    ):
        sdk.messages.create(model="text-prime", max_tokens=3, messages=USER)
    assert caught.value.body["error"]["type"] == "billing_error"  # type: ignore[index]


def test_auth_and_unknown_model(gw: GatewayProcess, client: Anthropic) -> None:
    with (
        Anthropic(base_url=root(gw), api_key="gg_nope", max_retries=0) as stranger,
        pytest.raises(anthropic.AuthenticationError) as unauthorized,
    ):
        stranger.messages.create(model="text-prime", max_tokens=3, messages=USER)
    assert unauthorized.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(model="no-such-instrument", max_tokens=3, messages=USER)
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="no-such-instrument", messages=USER)
