"""A request's deadline before its first byte, and SSE keep-alive comments while it waits.

The gateway sends a keep-alive comment every 0.2 s while a streamed request waits for its first
token, and gives every request 1.5 s to its first byte over all attempts. The simulator's
``hang`` directive holds the first byte back for a given time, or forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)

OFFERS = [Offer("slowpoke", "text-prime", "sim/p", "1.00", "4.00", 40, 200_000, 64_000)]


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with simulators(bg, ["slowpoke"]) as sims:
        gateway = start_gateway(
            tmp_path_factory.mktemp("deadline"),
            bg,
            {"slowpoke": sims["slowpoke"].base_url},
            OFFERS,
            upstream="keepalive_seconds = 0.2\ndeadline_seconds = 1.5",
        )
        gateway.sims = sims
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


def ask(text: str) -> Any:
    return [{"role": "user", "content": text}]


def test_a_slow_first_token_is_preceded_by_keepalive_comments(gw: GatewayProcess) -> None:
    _, key = gw.new_account("5")
    body = {
        "model": "text-prime",
        "messages": ask("Hello [[sim:mode=hang,seconds=0.9]]"),
        "max_tokens": 5,
        "stream": True,
    }
    with httpx.stream(
        "POST",
        f"{gw.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    head, _, rest = text.partition("data: ")
    assert head.count(": keep-alive\n\n") >= 2  # ~0.9 s of waiting at 0.2 s
    assert head.replace(": keep-alive\n\n", "") == ""
    assert rest.rstrip().endswith("data: [DONE]")


def test_both_sdks_read_a_stream_that_began_with_keepalives(gw: GatewayProcess) -> None:
    _, key = gw.new_account("5")
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="text-prime",
            messages=ask("Hi [[sim:mode=hang,seconds=0.5]]"),
            max_tokens=4,
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    root = gw.base_url.removesuffix("/v1")
    with (
        anthropic.Anthropic(base_url=root, api_key=key, max_retries=0) as sdk,
        sdk.messages.stream(
            model="text-prime", max_tokens=4, messages=ask("Hi [[sim:mode=hang,seconds=0.5]]")
        ) as answer,
    ):
        final = answer.get_final_message()
    assert final.usage.output_tokens == 4


def test_the_deadline_ends_a_plain_request_with_504_and_no_charge(gw: GatewayProcess) -> None:
    account, key = gw.new_account("5")
    before = gw.balance(account)
    with (
        openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        client.chat.completions.create(
            model="text-prime", messages=ask("Hello [[sim:hang]]"), max_tokens=5
        )
    assert caught.value.status_code == 504
    assert "deadline" in caught.value.message
    records = wait_until(lambda: gw.usage(account) or None)
    assert records[0].status == 504 and records[0].cost == 0
    assert gw.balance(account) == before


def test_after_keepalives_a_deadline_is_an_error_event(gw: GatewayProcess) -> None:
    account, key = gw.new_account("5")
    before = gw.balance(account)
    body = {
        "model": "text-prime",
        "messages": ask("Hello [[sim:hang]]"),
        "max_tokens": 5,
        "stream": True,
    }
    with httpx.stream(
        "POST",
        f"{gw.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200  # committed by the first keep-alive
        text = response.read().decode()
    assert text.startswith(": keep-alive\n\n")
    event = text.split("data: ", 1)[1]
    assert '"code":"supplier_timeout"' in event and "deadline" in event
    records = wait_until(lambda: gw.usage(account) or None)
    assert records[0].cost == 0
    assert gw.balance(account) == before


def test_a_responses_stream_waiting_for_its_first_token_is_kept_alive(gw: GatewayProcess) -> None:
    _, key = gw.new_account("5")
    body = {
        "model": "text-prime",
        "input": "Hello [[sim:mode=hang,seconds=0.9]]",
        "max_output_tokens": 16,
        "stream": True,
        "store": False,
    }
    with httpx.stream(
        "POST",
        f"{gw.base_url}/responses",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        text = response.read().decode()
    head, _, rest = text.partition("event: ")
    assert head.count(": keep-alive\n\n") >= 2
    assert head.replace(": keep-alive\n\n", "") == ""
    assert rest.startswith("response.created\n")
    assert "event: response.incomplete\n" in rest  # 16 of the simulator's 64 tokens
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        stream = client.responses.create(
            model="text-prime", input="Hi [[sim:mode=hang,seconds=0.5]]", stream=True
        )
        kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


def test_after_keepalives_a_responses_deadline_is_an_error_event(gw: GatewayProcess) -> None:
    account, key = gw.new_account("5")
    before = gw.balance(account)
    body = {"model": "text-prime", "input": "Hello [[sim:hang]]", "stream": True}
    with httpx.stream(
        "POST",
        f"{gw.base_url}/responses",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200  # committed by the first keep-alive
        text = response.read().decode()
    assert text.startswith(": keep-alive\n\n")
    event = text.split("event: ", 1)[1]
    assert event.startswith("error\n")
    assert '"code":"supplier_timeout"' in event and '"sequence_number":0' in event
    records = wait_until(lambda: gw.usage(account) or None)
    assert records[0].cost == 0
    assert gw.balance(account) == before


def test_a_client_that_leaves_during_the_keepalives_cancels_the_request(
    gw: GatewayProcess,
) -> None:
    """Nobody reads the answer any more: the supplier's connection is closed before its first
    token, nothing is charged and the record says cancelled."""
    account_id, key = gw.new_account("5")
    stats_url = f"{gw.sims['slowpoke'].base_url.removesuffix('/v1')}/sim/stats"
    before = httpx.get(stats_url).json()["client_disconnects"]
    body = {
        "model": "text-prime",
        "messages": ask("Hello [[sim:mode=hang,seconds=1.2]]"),
        "max_tokens": 5,
        "stream": True,
    }
    with httpx.stream(
        "POST",
        f"{gw.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert first.startswith(b": keep-alive")
    wait_until(lambda: httpx.get(stats_url).json()["client_disconnects"] > before)
    record = wait_until(lambda: gw.usage(account_id))[0]
    assert record.outcome == "cancelled"
    assert record.cost == 0 and not record.billed
    assert gw.balance(account_id) == 5_000_000_000
