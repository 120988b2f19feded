"""What an error quotes of the caller's input is capped: a huge model name, path or id gets a
small answer that still names (the start of) what was wrong."""

from __future__ import annotations

import httpx

from tests.harness import GatewayProcess, site

HUGE = "m" * 1_000_000


def test_an_unknown_huge_model_gets_a_small_404(gateway: GatewayProcess) -> None:
    _, secret = gateway.new_account("1")
    body = {"model": HUGE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with httpx.Client(base_url=site(gateway), timeout=30) as http:
        for path, headers in (
            ("/v1/chat/completions", {"Authorization": f"Bearer {secret}"}),
            ("/v1/messages", {"x-api-key": secret}),
            ("/v1/messages/count_tokens", {"x-api-key": secret}),
        ):
            response = http.post(path, json=body, headers=headers)
            assert response.status_code == 404, response.text[:500]
            assert len(response.content) < 2_000, (path, len(response.content))
            assert "mmmmmmmmmm" in response.text and "…" in response.text


def test_a_huge_path_or_id_gets_a_small_answer(gateway: GatewayProcess) -> None:
    _, secret = gateway.new_account("1")
    with httpx.Client(
        base_url=site(gateway), timeout=30, headers={"Authorization": f"Bearer {secret}"}
    ) as http:
        long = "x" * 6_000  # within aiohttp's request-line limit
        for response in (
            http.get(f"/v1/models/{long}"),
            http.get(f"/v1/nothing/{long}"),
            http.delete(f"/v1/models/{long}"),
        ):
            assert 400 <= response.status_code < 500, response.text[:500]
            assert len(response.content) < 2_000, len(response.content)
