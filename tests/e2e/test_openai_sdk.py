"""The official openai SDK (sync and async) against a running `gridgate serve` process.

Every response and chunk is validated against OpenAI's published schemas. Every test runs three
times: with the suppliers called over the OpenAI wire, over the Anthropic wire and over the
Responses wire (the same simulators answering on their Messages or Responses endpoint, every
request and answer translated).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from gridgate.money import Price, format_usd, format_usd_fixed
from gridgate.protocol.openai_chat import decode_chat_request
from gridgate.protocol.tokens import measure_prompt
from tests.harness import GatewayProcess, nanos, wait_until
from tests.openai_spec import OpenAISpec

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}

PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "tags", "address"],
    "additionalProperties": False,
}

USER = [{"role": "user", "content": "Say something about the weather."}]


@pytest.fixture(scope="module", params=["openai-wire", "anthropic-wire", "responses-wire"])
def gateway(request: pytest.FixtureRequest, gateway: GatewayProcess) -> GatewayProcess:
    if request.param == "openai-wire":
        return gateway
    name = (
        "anthropic_wire_gateway" if request.param == "anthropic-wire" else "responses_wire_gateway"
    )
    served: GatewayProcess = request.getfixturevalue(name)
    return served


def one_answer_no_logprobs(gateway: GatewayProcess) -> bool:
    """The Anthropic and Responses wires give one answer per request and no logprobs."""
    return gateway.wire("sim-alpha") in ("anthropic", "openai-responses")


ID_PREFIX = {"openai": "chatcmpl-", "anthropic": "msg_", "openai-responses": "resp_"}


@pytest.fixture
def funded(gateway: GatewayProcess) -> tuple[str, str]:
    return gateway.new_account("5")


@pytest.fixture
def sdk(gateway: GatewayProcess) -> Iterator[Callable[[str], OpenAI]]:
    """Sync clients with a key each, closed at teardown (left to the garbage collector, a
    client's socket may be finalised before the client closes it: a ResourceWarning)."""
    made: list[OpenAI] = []

    def make(key: str) -> OpenAI:
        made.append(OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(sdk: Callable[[str], OpenAI], funded: tuple[str, str]) -> OpenAI:
    return sdk(funded[1])


def price_of(gateway: GatewayProcess, supplier: str, instrument: str) -> Price:
    offer = next(o for o in gateway.offers if o.supplier == supplier and o.instrument == instrument)
    return Price(nanos(offer.usd_in), nanos(offer.usd_out))


def test_plain_completion_validates_and_is_served_by_the_cheapest_offer(
    gateway: GatewayProcess, client: OpenAI, spec: OpenAISpec
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime", messages=USER, max_completion_tokens=12
    )
    body = json.loads(raw.http_response.content)
    spec.completion(body)
    completion = raw.parse()
    assert completion.id.startswith(ID_PREFIX[gateway.wire("sim-beta")])
    assert completion.object == "chat.completion"
    assert completion.model == "sim/prime-b"  # the upstream model that served it
    assert raw.headers["x-gridgate-supplier"] == "sim-beta"
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_instrument_is_matched_case_insensitively(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="Text-Prime", messages=USER, max_tokens=3)
    assert completion.usage is not None and completion.usage.completion_tokens == 3


def test_stream_with_usage_ends_with_a_usage_chunk(client: OpenAI, spec: OpenAISpec) -> None:
    stream = client.chat.completions.create(
        model="text-prime",
        messages=USER,
        max_completion_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    for chunk in chunks:
        spec.chunk(chunk.to_dict())
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(client: OpenAI, spec: OpenAISpec) -> None:
    stream = client.chat.completions.create(
        model="text-prime", messages=USER, max_completion_tokens=5, stream=True
    )
    chunks = list(stream)
    for chunk in chunks:
        data = chunk.to_dict()
        spec.chunk(data)
        assert "usage" not in data
        assert chunk.choices, "a chunk without choices is a usage chunk"


def test_n_greater_than_one(gateway: GatewayProcess, client: OpenAI, spec: OpenAISpec) -> None:
    if one_answer_no_logprobs(gateway):  # one answer per request
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client.chat.completions.create(model="text-prime", messages=USER, n=3, max_tokens=4)
        assert caught.value.code == "untranslatable"
        assert caught.value.param == "n"
        return
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime", messages=USER, n=3, max_tokens=4
    )
    spec.completion(json.loads(raw.http_response.content))
    completion = raw.parse()
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert completion.usage is not None and completion.usage.completion_tokens == 12


def test_tool_call_round_trip(client: OpenAI, spec: OpenAISpec) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    spec.completion(json.loads(raw.http_response.content))
    assert raw.headers["x-gridgate-supplier"] == "sim-alpha"  # sim-beta has no tools
    first = raw.parse()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])

    second = client.chat.completions.create(
        model="text-prime",
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 degrees"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.content


def test_streamed_tool_call_arguments_arrive_complete(client: OpenAI, spec: OpenAISpec) -> None:
    stream = client.chat.completions.create(
        model="text-prime",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    arguments = ""
    names = []
    for chunk in stream:
        spec.chunk(chunk.to_dict())
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                if delta.function and delta.function.name:
                    names.append(delta.function.name)
                if delta.function and delta.function.arguments:
                    arguments += delta.function.arguments
    assert names == ["get_weather"]
    jsonschema.validate(json.loads(arguments), WEATHER_TOOL["function"]["parameters"])


def test_structured_output_matches_the_schema(client: OpenAI, spec: OpenAISpec) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime",
        messages=[{"role": "user", "content": "A person, please."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
    )
    spec.completion(json.loads(raw.http_response.content))
    content = raw.parse().choices[0].message.content
    assert content is not None
    jsonschema.validate(json.loads(content), PERSON_SCHEMA)


def test_logprobs(gateway: GatewayProcess, client: OpenAI, spec: OpenAISpec) -> None:
    if one_answer_no_logprobs(gateway):  # no logprobs on that wire
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client.chat.completions.create(
                model="text-prime", messages=USER, logprobs=True, top_logprobs=2, max_tokens=4
            )
        assert caught.value.code == "untranslatable"
        return
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime", messages=USER, logprobs=True, top_logprobs=2, max_tokens=4
    )
    spec.completion(json.loads(raw.http_response.content))
    assert raw.headers["x-gridgate-supplier"] == "sim-alpha"  # sim-beta declares no logprobs
    logprobs = raw.parse().choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert len(logprobs.content) == 4
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in logprobs.content)


async def test_async_client_plain_and_stream(
    gateway: GatewayProcess, funded: tuple[str, str], spec: OpenAISpec
) -> None:
    async with AsyncOpenAI(base_url=gateway.base_url, api_key=funded[1], max_retries=0) as client:
        completion = await client.chat.completions.create(
            model="text-standard", messages=USER, max_tokens=6
        )
        spec.completion(completion.to_dict())
        assert completion.model == "sim/standard-d"
        stream = await client.chat.completions.create(
            model="text-standard",
            messages=USER,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        for chunk in chunks:
            spec.chunk(chunk.to_dict())
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


# -- money ----------------------------------------------------------------------------------
def test_balance_drops_by_exactly_the_reported_cost(
    gateway: GatewayProcess, client: OpenAI, funded: tuple[str, str]
) -> None:
    account_id = funded[0]
    before = gateway.balance(account_id)
    completion = client.chat.completions.create(model="text-prime", messages=USER, max_tokens=10)
    assert completion.usage is not None
    cost = price_of(gateway, "sim-beta", "text-prime").cost(
        completion.usage.prompt_tokens, completion.usage.completion_tokens
    )
    assert cost > 0
    gateway.assert_balance(account_id, before - cost)
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.cost == cost and record.billed
    assert record.supplier == "sim-beta" and record.upstream_model == "sim/prime-b"
    assert record.input_tokens == completion.usage.prompt_tokens
    assert record.output_tokens == completion.usage.completion_tokens
    assert record.outcome == "ok" and record.status == 200
    assert record.instrument == "text-prime" and not record.usage_estimated


def test_a_streamed_answer_costs_exactly_its_reported_usage(
    gateway: GatewayProcess, client: OpenAI, funded: tuple[str, str]
) -> None:
    account_id = funded[0]
    before = gateway.balance(account_id)
    stream = client.chat.completions.create(
        model="text-prime",
        messages=USER,
        max_tokens=7,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = next(c.usage for c in stream if c.usage)
    cost = price_of(gateway, "sim-beta", "text-prime").cost(
        usage.prompt_tokens, usage.completion_tokens
    )
    gateway.assert_balance(account_id, before - cost)


def test_usage_cost_is_what_the_request_was_charged_plain_and_streamed(
    gateway: GatewayProcess, client: OpenAI, funded: tuple[str, str], spec: OpenAISpec
) -> None:
    """``usage.cost`` (gridgate's field; the SDK keeps it in ``model_extra``): USD with 9
    places, equal to the usage record's cost — a whole answer's and the last usage chunk of a
    stream's, read once the charge is settled."""
    account_id = funded[0]
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime", messages=USER, max_tokens=10
    )
    spec.completion(json.loads(raw.http_response.content))  # an extra usage field is allowed
    completion = raw.parse()
    assert completion.usage is not None
    plain = (completion.usage.model_extra or {})["cost"]
    [record] = wait_until(lambda: gateway.usage(account_id))
    assert plain == format_usd_fixed(record.cost) and record.cost > 0

    chunks = list(
        client.chat.completions.create(
            model="text-prime",
            messages=USER,
            max_tokens=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    for chunk in chunks:
        spec.chunk(chunk.to_dict())
    last = chunks[-1].usage
    assert last is not None and all(c.usage is None for c in chunks[:-1])
    [streamed] = wait_until(
        lambda: [r for r in gateway.usage(account_id) if r.stream and r.outcome == "ok"] or None
    )
    assert (last.model_extra or {})["cost"] == format_usd_fixed(streamed.cost)
    assert streamed.cost == price_of(gateway, "sim-beta", "text-prime").cost(
        last.prompt_tokens, last.completion_tokens
    )


def test_402_when_the_balance_is_too_low(
    sdk: Callable[[str], OpenAI], gateway: GatewayProcess
) -> None:
    account_id, secret = gateway.new_account("0.000000100")
    client = sdk(secret)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="text-prime", messages=USER, max_tokens=1000)
    assert caught.value.status_code == 402
    assert "balance" in caught.value.message
    assert gateway.balance(account_id) == nanos("0.000000100")


def test_max_tokens_is_clamped_to_what_the_balance_affords(
    sdk: Callable[[str], OpenAI], gateway: GatewayProcess
) -> None:
    """A balance that affords exactly 40 output tokens (after the prompt's upper bound) at
    sim-beta's price gets a 40-token answer cut for length, not a 402 and not 1,000 tokens."""
    body = {"model": "text-prime", "messages": USER, "max_tokens": 1000}
    bound = measure_prompt(decode_chat_request(json.dumps(body).encode())).upper_bound
    price = price_of(gateway, "sim-beta", "text-prime")
    balance = price.cost(bound, 40)
    assert price.cost(bound, 41) > balance
    account_id, secret = gateway.new_account(format_usd(balance))
    client = sdk(secret)
    completion = client.chat.completions.create(model="text-prime", messages=USER, max_tokens=1000)
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 40
    assert completion.choices[0].finish_reason == "length"
    record = wait_until(lambda: gateway.usage(account_id))[0]
    gateway.assert_balance(account_id, balance - record.cost)
    assert gateway.balance(account_id) >= 0


def test_a_failed_upstream_is_not_charged(
    sdk: Callable[[str], OpenAI], gateway: GatewayProcess
) -> None:
    account_id, secret = gateway.new_account("1")
    client = sdk(secret)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="text-prime",
            messages=[{"role": "user", "content": "hi [[sim:mode=status,status=500]]"}],
        )
    assert caught.value.status_code == 502
    assert gateway.balance(account_id) == nanos("1")
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "upstream_error" and not record.billed and record.cost == 0


def test_failover_before_the_first_byte_is_invisible(
    sdk: Callable[[str], OpenAI], gateway: GatewayProcess
) -> None:
    """sim-beta (cheapest) fails with 503; the caller gets sim-alpha's answer, charged at its
    price only."""
    account_id, secret = gateway.new_account("1")
    client = sdk(secret)
    beta = gateway.sims["sim-beta"]
    gateway.run(beta_fault(beta.base_url, {"mode": "status", "status": 503, "count": 1}))
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime", messages=USER, max_tokens=5
    )
    completion = raw.parse()
    assert raw.headers["x-gridgate-supplier"] == "sim-alpha"
    assert completion.usage is not None
    cost = price_of(gateway, "sim-alpha", "text-prime").cost(
        completion.usage.prompt_tokens, completion.usage.completion_tokens
    )
    gateway.assert_balance(account_id, nanos("1") - cost)


async def beta_fault(base_url: str, fault: dict[str, Any]) -> None:
    import aiohttp

    root = base_url.removesuffix("/v1")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{root}/sim/faults", json=fault) as response,
    ):
        assert response.status in (200, 201), await response.text()


# -- keys -----------------------------------------------------------------------------------
def test_unknown_and_malformed_keys_are_401(
    sdk: Callable[[str], OpenAI], gateway: GatewayProcess
) -> None:
    for key in ("gg_" + "A" * 43, "not-a-key"):
        client = sdk(key)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="text-prime", messages=USER)


def test_a_key_revoked_through_the_cli_fails_on_the_next_request(
    sdk: Callable[[str], OpenAI],
    gateway: GatewayProcess,
) -> None:
    account_id, secret = gateway.new_account("1")
    client = sdk(secret)
    client.chat.completions.create(model="text-prime", messages=USER, max_tokens=2)  # cached
    key_id = gateway.run(gateway.store.list_keys(account_id))[0].id
    result = gateway.cli("keys", "revoke", key_id, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["is_active"] is False
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="text-prime", messages=USER, max_tokens=2)
    assert "revoked" in caught.value.message
    assert gateway.balance(account_id) == nanos("1") - sum(
        r.cost for r in gateway.usage(account_id)
    )


def test_an_expired_key_is_401(sdk: Callable[[str], OpenAI], gateway: GatewayProcess) -> None:
    from gridgate.core.credentials import mint_key

    account_id, _ = gateway.new_account("1")
    minted = mint_key()
    gateway.run(
        gateway.store.create_key(
            account_id=account_id,
            name="old",
            prefix=minted.prefix,
            secret_hash=minted.secret_hash,
            expires_us=1,
        )
    )
    client = sdk(minted.secret)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="text-prime", messages=USER)
    assert "expired" in caught.value.message


def test_unknown_instrument_is_404_in_both_envelopes(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-5.2", messages=USER)
    body = caught.value.body
    assert isinstance(body, dict)
    assert "gpt-5.2" in caught.value.message
    response = caught.value.response.json()
    assert response["errors"]["detail"] == response["error"]["message"]
    assert response["error"]["param"] == "model"


def test_models_lists_instruments_with_limits_and_best_price(
    gateway: GatewayProcess, client: OpenAI
) -> None:
    models = {m.id: m for m in client.models.list()}
    assert {"text-standard", "text-prime", "text-max"} <= set(models)
    prime = models["text-prime"].model_dump()
    assert prime["context_length"] == 196_608
    assert prime["max_completion_tokens"] == 131_072
    assert prime["max_input_tokens"] == 120_000
    assert prime["pricing"] == {
        "usd_per_1m_input_tokens": "0.08",
        "usd_per_1m_output_tokens": "0.3",
    }
    assert prime["capabilities"]["tools"] is True
    assert prime["reasoning"]["supported_efforts"] == ["low", "medium", "high"]
    assert models["text-max"].model_dump()["architecture"]["input_modalities"] == ["text", "image"]
