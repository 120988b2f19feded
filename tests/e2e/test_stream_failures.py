"""What a caller sees and pays when things go wrong after the first byte, and that supplier
credentials never reach a caller."""

from __future__ import annotations

import hashlib
import json

import httpx
import openai
import pytest
from openai import OpenAI

from gridgate.money import Price
from gridgate.protocol.openai_chat import decode_chat_request
from gridgate.protocol.tokens import measure_prompt
from tests.conftest import SIM_DELTA_SECRET
from tests.harness import GatewayProcess, nanos, wait_until
from tests.openai_spec import OpenAISpec


def sim_stats(gateway: GatewayProcess, name: str) -> dict[str, object]:
    root = gateway.sims[name].base_url.removesuffix("/v1")
    return httpx.get(f"{root}/sim/stats", timeout=10).json()  # type: ignore[no-any-return]


def first_events(
    gateway: GatewayProcess, secret: str, body: dict[str, object], count: int
) -> list[str]:
    """Read the first ``count`` events of a streamed answer, then hang up."""
    events: list[str] = []
    with httpx.stream(
        "POST",
        f"{gateway.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line)
            if len(events) == count:
                break
    return events


def test_a_stream_cut_mid_way_ends_with_an_error_and_charges_what_was_delivered(
    gateway: GatewayProcess,
) -> None:
    account_id, secret = gateway.new_account("1")
    client = OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    stream = client.chat.completions.create(
        model="text-prime",
        max_tokens=50,
        stream=True,
        messages=[{"role": "user", "content": "go [[sim:mode=drop,after=4]]"}],
    )
    received = []

    def consume() -> None:
        for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIError):
        consume()
    assert received, "the first chunks arrived before the cut"
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "stream_error"
    assert record.usage_estimated
    assert 0 < record.output_tokens < 50
    assert record.cost > 0 and record.billed
    assert gateway.balance(account_id) == nanos("1") - record.cost


def test_a_client_that_leaves_mid_stream_stops_the_upstream_and_pays_only_for_what_it_got(
    gateway: GatewayProcess,
) -> None:
    account_id, secret = gateway.new_account("1")
    before = sim_stats(gateway, "sim-beta")["client_disconnects"]
    body = {
        "model": "text-prime",
        "max_tokens": 400,
        "stream": True,
        "messages": [{"role": "user", "content": "long [[sim:mode=slow,tokens_per_second=40]]"}],
    }
    assert len(first_events(gateway, secret, body, 3)) == 3
    # the response is closed: the gateway must notice, close the upstream and settle
    wait_until(lambda: sim_stats(gateway, "sim-beta")["client_disconnects"] > before)
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "cancelled"
    assert 0 < record.output_tokens < 400
    assert gateway.balance(account_id) == nanos("1") - record.cost
    # the lease it was served from closes when idle, charging exactly what was recorded
    hold = wait_until(
        lambda: (
            (h := gateway.run(gateway.store.get_hold(record.hold_id or "")))
            and h.status == "settled"
            and h
        )
    )
    assert hold.charged == record.cost


def test_malformed_stream_event_ends_the_stream_with_an_error(gateway: GatewayProcess) -> None:
    account_id, secret = gateway.new_account("1")
    client = OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="text-prime",
                max_tokens=30,
                stream=True,
                messages=[{"role": "user", "content": "x [[sim:mode=malformed,after=3]]"}],
            )
        )
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "stream_error"
    assert gateway.balance(account_id) == nanos("1") - record.cost


def test_supplier_credentials_are_sent_upstream_and_never_shown(gateway: GatewayProcess) -> None:
    _, secret = gateway.new_account("1")
    raw = httpx.post(
        f"{gateway.base_url}/chat/completions",
        timeout=30,
        headers={"Authorization": f"Bearer {secret}"},
        json={
            "model": "text-standard",
            "max_tokens": 3,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert raw.status_code == 200
    assert raw.headers["x-gridgate-supplier"] == "sim-delta"
    assert SIM_DELTA_SECRET not in raw.text and SIM_DELTA_SECRET not in str(raw.headers)
    auth = sim_stats(gateway, "sim-delta")["authorization"]
    assert isinstance(auth, dict)
    assert json.dumps(auth).find(hashlib.sha256(SIM_DELTA_SECRET.encode()).hexdigest()) >= 0
    # and the caller's own key is never forwarded to a supplier
    assert json.dumps(auth).find(hashlib.sha256(secret.encode()).hexdigest()) < 0
    log = gateway.log_path.read_text()
    assert SIM_DELTA_SECRET not in log and secret not in log


def test_chunks_are_relayed_as_they_arrive(gateway: GatewayProcess) -> None:
    """The supplier sends three chunks and then stalls without end: a buffering gateway would
    show the caller nothing."""
    account_id, secret = gateway.new_account("1")
    before = sim_stats(gateway, "sim-beta")["client_disconnects"]
    body = {
        "model": "text-prime",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "x [[sim:mode=hang,after=3]]"}],
    }
    assert len(first_events(gateway, secret, body, 3)) == 3
    # leaving while the supplier is silent still closes the upstream and settles at once
    wait_until(lambda: sim_stats(gateway, "sim-beta")["client_disconnects"] > before)
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "cancelled"
    assert gateway.balance(account_id) == nanos("1") - record.cost


def test_a_keys_last_use_is_recorded(gateway: GatewayProcess) -> None:
    account_id, secret = gateway.new_account("1")
    assert gateway.run(gateway.store.list_keys(account_id))[0].last_used_us is None
    OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0).chat.completions.create(
        model="text-prime", max_tokens=2, messages=[{"role": "user", "content": "hi"}]
    )
    wait_until(lambda: gateway.run(gateway.store.list_keys(account_id))[0].last_used_us)


def test_a_supplier_running_past_its_max_tokens_is_cut_at_the_hold(
    gateway: GatewayProcess, spec: OpenAISpec
) -> None:
    """The supplier ignores max_tokens=20 and streams 200 tokens: the caller gets 20, a clean
    finish for length and [DONE], and is charged no more than the hold covered."""
    account_id, secret = gateway.new_account("1")
    client = OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    stream = client.chat.completions.create(
        model="text-prime",
        max_tokens=20,
        stream=True,
        messages=[{"role": "user", "content": "go on [[sim:mode=overrun,length=200]]"}],
    )
    chunks = list(stream)
    for chunk in chunks:
        spec.chunk(chunk.to_dict())
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) == 20
    assert chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].id == chunks[0].id and chunks[-1].model == chunks[0].model
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "cut_at_hold"
    messages = [{"role": "user", "content": "go on [[sim:mode=overrun,length=200]]"}]
    request = {"model": "text-prime", "max_tokens": 20, "stream": True, "messages": messages}
    bound = measure_prompt(decode_chat_request(json.dumps(request).encode())).upper_bound
    assert 0 < record.cost <= Price(nanos("0.08"), nanos("0.30")).cost(bound, 20)
    gateway.assert_balance(account_id, nanos("1") - record.cost)


def test_a_plain_answer_past_its_max_tokens_is_charged_no_more_than_the_hold(
    gateway: GatewayProcess,
) -> None:
    """A whole answer cannot be cut, but the charge stops at the hold: the exchange, not the
    consumer, pays for what the supplier ran past."""
    account_id, secret = gateway.new_account("1")
    client = OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    messages = [{"role": "user", "content": "go on [[sim:mode=overrun,length=5000]]"}]
    completion = client.chat.completions.create(
        model="text-prime", max_tokens=20, messages=messages
    )
    assert completion.usage is not None and completion.usage.completion_tokens == 5000
    request = decode_chat_request(
        json.dumps({"model": "text-prime", "max_tokens": 20, "messages": messages}).encode()
    )
    bound = measure_prompt(request).upper_bound
    hold = Price(nanos("0.08"), nanos("0.30")).cost(bound, 20)  # sim-beta's price
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.cost == hold
    assert record.output_tokens == 5000
    gateway.assert_balance(account_id, nanos("1") - hold)
