"""How a request presents its API key, over a real gateway: ``x-api-key`` works on the
chat-completions surface too, ``Authorization`` takes any case of ``Bearer`` and spaces or tabs
after it, a malformed header says so (not "missing"), and given both headers the surface's own
wins (Bearer on chat completions, x-api-key on Messages)."""

from __future__ import annotations

import httpx
import pytest

from tests.harness import GatewayProcess, site

CHAT = {"model": "text-prime", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
WRONG = "gg_" + "A" * 43  # well formed, names no key


@pytest.fixture(scope="module")
def secret(gateway: GatewayProcess) -> str:
    return gateway.new_account("1")[1]


def chat(gateway: GatewayProcess, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{site(gateway)}/v1/chat/completions", json=CHAT, headers=headers, timeout=30
    )


def test_x_api_key_is_accepted_on_chat_completions(gateway: GatewayProcess, secret: str) -> None:
    response = chat(gateway, {"x-api-key": secret})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("form", ["Bearer\t{}", "bearer {}", "BEARER  \t {}", "Bearer \t{}"])
def test_bearer_takes_any_case_and_spaces_or_tabs(
    gateway: GatewayProcess, secret: str, form: str
) -> None:
    response = chat(gateway, {"Authorization": form.format(secret)})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("header", ["Bearer", "Bearer{}", "Basic {}", "Bearer {} extra", "{}"])
def test_a_malformed_authorization_header_says_so(
    gateway: GatewayProcess, secret: str, header: str
) -> None:
    response = chat(gateway, {"Authorization": header.format(secret)})
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "malformed_authorization"
    assert "malformed Authorization header" in error["message"]
    assert secret not in response.text


def test_no_key_at_all_is_missing(gateway: GatewayProcess) -> None:
    response = chat(gateway, {})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_given_both_the_surfaces_own_header_wins(gateway: GatewayProcess, secret: str) -> None:
    both = chat(gateway, {"Authorization": f"Bearer {secret}", "x-api-key": WRONG})
    assert both.status_code == 200, both.text
    messages = httpx.post(
        f"{site(gateway)}/v1/messages",
        json=CHAT,
        headers={"x-api-key": secret, "Authorization": f"Bearer {WRONG}"},
        timeout=30,
    )
    assert messages.status_code == 200, messages.text
