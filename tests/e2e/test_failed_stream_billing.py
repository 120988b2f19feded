"""What a caller pays when a stream fails after the 200, on either surface and every supplier
wire: nothing when no content reached it; what was relayed when some did, with the prompt at
the supplier's count or at most its real size; and a supplier that reports zero usage for an
answer is metered from its text, not served free."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from gridgate.money import Price
from gridgate.protocol.openai_chat import decode_chat_request
from gridgate.protocol.tokens import measure_prompt
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    nanos,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)

# one offer: whatever offer health thinks of the failures injected here, it serves
OFFERS = [Offer("sim-one", "text-prime", "sim/one", "0.08", "0.30", 40, 196_608, 65_536)]
PRICE = Price(nanos("0.08"), nanos("0.30"))


@pytest.fixture(scope="module", params=["openai", "anthropic", "openai-responses"])
def gateway(
    request: pytest.FixtureRequest, bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway whose one supplier speaks the wire named by the parameter."""
    wire: str = request.param
    with simulators(bg, ["sim-one"]) as sims:
        gw = start_gateway(
            tmp_path_factory.mktemp(f"billing-{wire}"),
            bg,
            {"sim-one": sims["sim-one"].base_url},
            OFFERS,
            wires={"sim-one": wire},
        )
        gw.sims = sims
        try:
            yield gw
        finally:
            assert stop_gateway(gw) == 0, gw.log_path.read_text()


def stream_raw(
    gateway: GatewayProcess, secret: str, path: str, body: dict[str, object]
) -> list[str]:
    """A streamed answer read to its end, raw: its ``data:`` and ``event:`` lines."""
    with httpx.stream(
        "POST",
        f"{gateway.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        return [line for line in response.iter_lines() if line.startswith(("data: ", "event: "))]


def streamed(text: str, **extra: object) -> dict[str, object]:
    return {
        "model": "text-prime",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def charge_estimate(body: dict[str, object]) -> int:
    return measure_prompt(decode_chat_request(json.dumps(body).encode())).charge


def sim_prompt_tokens(text: str) -> int:
    """The simulator's count of a one-message prompt (``simulator/prompt.py``)."""
    return -(-len(text.encode()) // 4) + 4


def charged(record: object, body: dict[str, object]) -> int:
    """What a record's tokens cost at the offer's price, capped at the request's hold."""
    bound = measure_prompt(decode_chat_request(json.dumps(body).encode())).upper_bound
    tokens = (record.input_tokens, record.output_tokens)  # type: ignore[attr-defined]
    held = PRICE.cost(bound, int(body["max_tokens"]))  # type: ignore[call-overload]
    return min(PRICE.cost(*tokens), held)


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        ("/chat/completions", "mode=drop,after=1"),
        ("/chat/completions", "mode=error,after=1,status=529"),
        ("/messages", "mode=drop,after=1"),
        ("/messages", "mode=error,after=1,status=529"),
    ],
)
def test_a_stream_that_fails_before_any_content_is_not_billed(
    gateway: GatewayProcess, path: str, fault: str
) -> None:
    """The supplier answers 200, sends its first event (a role chunk, or ``message_start``)
    and fails: the caller gets an error event and no content, and is charged nothing."""
    account_id, secret = gateway.new_account("1")
    lines = stream_raw(gateway, secret, path, streamed(f"go [[sim:{fault}]]"))
    if path == "/messages":
        assert "event: error" in lines and "event: message_stop" not in lines
        assert not any('"text_delta"' in line for line in lines)
    else:
        assert '"error"' in lines[-1] and "data: [DONE]" not in lines
        assert not any('"finish_reason":"' in line for line in lines)
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "stream_error"
    assert (record.cost, record.billed, record.output_tokens) == (0, False, 0)
    gateway.assert_balance(account_id, nanos("1"))


def test_a_stream_cut_before_its_first_text_block_is_not_billed(gateway: GatewayProcess) -> None:
    """On the Anthropic wire: message_start, ping and an empty content_block_start carry no
    content either, nor on the Responses wire response.created, response.in_progress and
    response.output_item.added (on the OpenAI wire the third event is text: that one is
    billed)."""
    account_id, secret = gateway.new_account("1")
    body = streamed("go [[sim:mode=drop,after=3]]")
    stream_raw(gateway, secret, "/chat/completions", body)
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "stream_error"
    if gateway.wire("sim-one") == "openai":
        assert record.billed and record.input_tokens == charge_estimate(body)
    else:
        assert (record.billed, record.cost) == (False, 0)
    gateway.assert_balance(account_id, nanos("1") - record.cost)


@pytest.mark.parametrize("path", ["/chat/completions", "/messages"])
def test_a_partial_stream_is_charged_the_prompt_no_larger_than_it_was(
    gateway: GatewayProcess, path: str
) -> None:
    """Cut after some text: the output relayed is charged, and the prompt at the supplier's
    count when it told one (Anthropic's ``message_start``), else at gridgate's charge estimate
    (the text / 4, no fixed overheads), never above what the supplier counts."""
    account_id, secret = gateway.new_account("1")
    text = "tell me a story [[sim:mode=drop,after=6]]"
    body = streamed(text)
    lines = stream_raw(gateway, secret, path, body)
    assert ("event: error" if path == "/messages" else '"error"') in "\n".join(lines[-2:])
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "stream_error" and record.usage_estimated
    if gateway.wire("sim-one") == "anthropic":
        assert record.input_tokens == sim_prompt_tokens(text)  # from message_start
    else:
        assert record.input_tokens == charge_estimate(body) <= sim_prompt_tokens(text)
    assert 0 < record.output_tokens < 50
    assert record.billed and record.cost == charged(record, body)
    gateway.assert_balance(account_id, nanos("1") - record.cost)


@pytest.mark.parametrize(
    ("extra", "what"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"},
            "tool_calls",
        ),
        ({"reasoning_effort": "low", "max_tokens": 4000}, "reasoning_content"),
    ],
)
def test_tool_calls_and_reasoning_are_content(
    gateway: GatewayProcess, extra: dict[str, object], what: str
) -> None:
    """A stream cut once a tool call or reasoning has been relayed is billed for it."""
    account_id, secret = gateway.new_account("1")
    # role; or start, ping, block; or created, in_progress, item added
    after = 2 if gateway.wire("sim-one") == "openai" else 5
    text = f"go [[sim:mode=drop,after={after}]]"
    body = streamed(text, **extra)
    lines = stream_raw(gateway, secret, "/chat/completions", body)
    assert any(what in line for line in lines)
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "stream_error"
    assert record.output_tokens > 0 and record.billed and record.cost > 0
    if gateway.wire("sim-one") == "anthropic":
        assert record.input_tokens == sim_prompt_tokens(text)  # (it counts no tools)
    else:  # the Responses wire tells its usage only at the end
        assert record.input_tokens == charge_estimate(body)
    gateway.assert_balance(account_id, nanos("1") - record.cost)


@pytest.mark.parametrize("stream", [False, True])
def test_a_supplier_reporting_no_or_zero_usage_is_metered_from_the_text(
    gateway: GatewayProcess, stream: bool
) -> None:
    """``[[sim:no_usage]]``: an OpenAI-wire or Responses-wire supplier sends no usage; an
    Anthropic-wire one
    reports 0 input and 0 output tokens (its wire cannot leave usage out). Either way gridgate
    counts the answer from its text (marked estimated); it is not served free."""
    account_id, secret = gateway.new_account("1")
    body: dict[str, object] = {
        "model": "text-prime",
        "max_tokens": 30,
        "messages": [{"role": "user", "content": "say something [[sim:no_usage]]"}],
    }
    client = OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    if stream:
        chunks = list(
            client.chat.completions.create(
                **body,  # type: ignore[call-overload]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = client.chat.completions.create(**body)  # type: ignore[call-overload]
        text = completion.choices[0].message.content or ""
    assert text
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "ok" and record.usage_estimated
    assert record.output_tokens == -(-len(text.encode()) // 4)
    assert record.input_tokens == charge_estimate(body)
    assert record.billed and record.cost == charged(record, body)
    gateway.assert_balance(account_id, nanos("1") - record.cost)
