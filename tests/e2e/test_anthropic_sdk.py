"""The official anthropic SDK (sync, async, streaming helpers, tool use) against a running
`gridgate serve`, on the session gateway (whose suppliers speak the OpenAI wire: every answer
here is translated both ways)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx
import jsonschema
import pytest
from anthropic import Anthropic, AsyncAnthropic, beta_tool

from gridgate.money import Price, format_usd_fixed
from tests.harness import GatewayProcess, nanos, wait_until

WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "days"],
        "additionalProperties": False,
    },
}
USER: Any = [{"role": "user", "content": "Say something about the weather."}]


def root(gateway: GatewayProcess) -> str:
    return gateway.base_url.removesuffix("/v1")


@pytest.fixture
def funded(gateway: GatewayProcess) -> tuple[str, str]:
    return gateway.new_account("5")


@pytest.fixture
def client(gateway: GatewayProcess, funded: tuple[str, str]) -> Iterator[Anthropic]:
    with Anthropic(base_url=root(gateway), api_key=funded[1], max_retries=0) as sdk:
        yield sdk


def test_create_returns_a_message(client: Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model="text-prime", max_tokens=12, messages=USER)
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "text-prime"  # the instrument the caller named
    [block] = message.content
    assert block.type == "text" and block.text
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 12
    assert message.usage.input_tokens > 0


def test_system_prompt_as_blocks_and_multi_turn(client: Anthropic) -> None:
    message = client.messages.create(
        model="text-prime",
        max_tokens=200,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
        ],
    )
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"


def test_stream_helpers_deliver_text_and_the_final_message(client: Anthropic) -> None:
    with client.messages.stream(model="text-prime", max_tokens=20, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    [block] = final.content
    assert block.type == "text" and block.text == "".join(pieces)
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 20


def test_raw_stream_events_come_in_order(client: Anthropic) -> None:
    events = list(
        client.messages.create(model="text-prime", max_tokens=6, messages=USER, stream=True)
    )
    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}


def test_tool_use_round_trip(client: Anthropic) -> None:
    first = client.messages.create(
        model="text-prime",
        max_tokens=300,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    assert first.stop_reason == "tool_use"
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather"
    jsonschema.validate(call.input, WEATHER_TOOL["input_schema"])

    second = client.messages.create(
        model="text-prime",
        max_tokens=300,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 degrees"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    [block] = second.content
    assert block.type == "text" and "sunny, 21 degrees" in block.text


def test_the_sdks_tool_runner_completes_a_tool_loop(
    client: Anthropic, caplog: pytest.LogCaptureFixture
) -> None:
    """``client.beta.messages.tool_runner`` with its defaults: it asks for a server-held thread
    (``thread``, beta ``message-threads-2026-08-12``), is refused with Anthropic's
    ``thread_unsupported_request`` and resends without one; the simulator calls the tool on the
    first turn and answers from its result on the second."""
    calls: list[str] = []

    @beta_tool
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: the city's name
        """
        calls.append(city)
        return "sunny, 21 degrees"

    caplog.set_level(logging.INFO, logger="anthropic")
    runner = client.beta.messages.tool_runner(
        model="text-prime",
        max_tokens=300,
        tools=[get_weather],
        messages=[{"role": "user", "content": "Call get_weather for Oslo, please."}],
    )
    replies = list(runner)
    assert [reply.stop_reason for reply in replies] == ["tool_use", "end_turn"]
    [call] = [block for block in replies[0].content if block.type == "tool_use"]
    assert call.name == "get_weather" and len(calls) == 1
    [block] = replies[1].content
    assert block.type == "text" and "sunny, 21 degrees" in block.text
    assert "continuing without a thread" in caplog.text  # the fallback, not a lucky guess


def test_streamed_tool_input_arrives_complete(client: Anthropic) -> None:
    with client.messages.stream(
        model="text-prime",
        max_tokens=300,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        partial = "".join(event.partial_json for event in stream if event.type == "input_json")
        final = stream.get_final_message()
    [call] = [block for block in final.content if block.type == "tool_use"]
    assert json.loads(partial) == call.input
    jsonschema.validate(call.input, WEATHER_TOOL["input_schema"])


async def test_async_client_plain_and_stream(
    gateway: GatewayProcess, funded: tuple[str, str]
) -> None:
    async with AsyncAnthropic(base_url=root(gateway), api_key=funded[1], max_retries=0) as client:
        message = await client.messages.create(model="text-standard", max_tokens=6, messages=USER)
        assert message.usage.output_tokens == 6
        async with client.messages.stream(
            model="text-standard", max_tokens=6, messages=USER
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
        assert text and final.usage.output_tokens == 6


def test_bearer_auth_is_accepted_too(gateway: GatewayProcess, funded: tuple[str, str]) -> None:
    with Anthropic(base_url=root(gateway), auth_token=funded[1], max_retries=0) as client:
        message = client.messages.create(model="text-prime", max_tokens=3, messages=USER)
    assert message.usage.output_tokens == 3


def test_the_balance_drops_by_exactly_the_reported_usage(
    gateway: GatewayProcess, client: Anthropic, funded: tuple[str, str]
) -> None:
    account = funded[0]
    before = gateway.balance(account)
    raw = client.messages.with_raw_response.create(model="text-prime", max_tokens=10, messages=USER)
    message = raw.parse()
    offer = next(
        o
        for o in gateway.offers
        if o.supplier == raw.headers["x-gridgate-supplier"] and o.instrument == "text-prime"
    )
    cost = Price(nanos(offer.usd_in), nanos(offer.usd_out)).cost(
        message.usage.input_tokens, message.usage.output_tokens
    )
    gateway.assert_balance(account, before - cost)


def test_usage_cost_is_what_the_request_was_charged_plain_and_streamed(
    gateway: GatewayProcess, client: Anthropic, funded: tuple[str, str]
) -> None:
    """``usage.cost`` (gridgate's field; the SDK keeps unknown fields): USD with 9 places,
    equal to the usage record's cost — in a message's usage, and in a stream's
    ``message_delta`` usage."""
    account = funded[0]
    message = client.messages.create(model="text-prime", max_tokens=10, messages=USER)
    [record] = wait_until(lambda: gateway.usage(account))
    assert (message.usage.model_extra or {})["cost"] == format_usd_fixed(record.cost)
    assert record.cost > 0

    with client.messages.stream(model="text-prime", max_tokens=7, messages=USER) as stream:
        deltas = [event for event in stream if event.type == "message_delta"]
    [delta] = deltas
    [streamed] = wait_until(
        lambda: [r for r in gateway.usage(account) if r.stream and r.outcome == "ok"] or None
    )
    assert (delta.usage.model_extra or {})["cost"] == format_usd_fixed(streamed.cost)
    assert delta.usage.output_tokens == streamed.output_tokens == 7


def test_count_tokens_is_gridgates_estimate(client: Anthropic) -> None:
    counted = client.messages.count_tokens(model="text-prime", messages=USER)
    assert counted.input_tokens > 0
    longer = client.messages.count_tokens(
        model="text-prime", system="Be brief. " * 50, messages=USER
    )
    assert longer.input_tokens > counted.input_tokens


# -- errors, in Anthropic's shape ---------------------------------------------------------------


def test_errors_have_anthropics_shape_and_status(
    gateway: GatewayProcess, client: Anthropic
) -> None:
    with (
        Anthropic(base_url=root(gateway), api_key="gg_nope", max_retries=0) as stranger,
        pytest.raises(anthropic.AuthenticationError) as unauthorized,
    ):
        stranger.messages.create(model="text-prime", max_tokens=3, messages=USER)
    body = unauthorized.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"

    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(model="no-such-instrument", max_tokens=3, messages=USER)
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]

    # a value out of range: 400 as on Anthropic's API (422 on the OpenAI surface)
    with pytest.raises(anthropic.BadRequestError) as invalid:
        client.messages.create(
            model="text-prime", max_tokens=3, messages=USER, extra_body={"temperature": 1.5}
        )
    assert invalid.value.status_code == 400
    error = invalid.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("temperature")


def test_a_missing_key_names_the_header(gateway: GatewayProcess) -> None:
    response = httpx.post(
        f"{gateway.base_url}/messages",
        json={"model": "text-prime", "max_tokens": 3, "messages": USER},
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert "x-api-key" in response.json()["error"]["message"]
    assert response.headers["request-id"] == response.json()["request_id"]


def test_402_when_the_balance_is_too_low(gateway: GatewayProcess) -> None:
    account, key = gateway.new_account("0")
    with (
        Anthropic(base_url=root(gateway), api_key=key, max_retries=0) as client,
        pytest.raises(anthropic.APIStatusError) as caught,
    ):
        client.messages.create(model="text-prime", max_tokens=3, messages=USER)
    assert caught.value.status_code == 402
    assert caught.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    records = wait_until(lambda: gateway.usage(account) or None)
    assert records[0].cost == 0


# ---- /v1/models in Anthropic's shape (the SDK sends anthropic-version) ----------------------


def openai_models(gateway: GatewayProcess) -> dict[str, dict[str, Any]]:
    """The OpenAI-shaped list, as a caller without ``anthropic-version`` gets it."""
    body = httpx.get(f"{gateway.base_url}/models").json()
    assert body["object"] == "list"
    return {m["id"]: m for m in body["data"]}


def test_models_list_is_anthropic_shaped(gateway: GatewayProcess, client: Anthropic) -> None:
    openai = openai_models(gateway)
    page = client.models.list()
    assert [m.id for m in page.data] == list(openai)  # same instruments, same order
    assert page.has_more is False
    assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id
    for model in page.data:
        assert model.type == "model"
        assert model.created_at == datetime(1970, 1, 1, tzinfo=UTC)
        assert model.lifecycle == "active"
        assert model.display_name == openai[model.id]["display_name"]
        assert model.max_input_tokens == openai[model.id]["max_input_tokens"]
        assert model.max_tokens == openai[model.id]["max_completion_tokens"]
    raw = client.models.with_raw_response.list()
    assert raw.headers["request-id"].startswith("req_")
    assert set(raw.http_response.json()) == {"data", "has_more", "first_id", "last_id"}


def test_models_retrieve_is_anthropic_shaped(gateway: GatewayProcess, client: Anthropic) -> None:
    model = client.models.retrieve("Text-Prime")  # ids are matched ignoring case, as elsewhere
    assert model.type == "model" and model.id == "text-prime"
    assert model.created_at.isoformat() == "1970-01-01T00:00:00+00:00"
    assert model.max_input_tokens == openai_models(gateway)["text-prime"]["max_input_tokens"]
    assert model.max_tokens == 131_072
    assert model.capabilities is None and model.line is None and model.deprecated_at is None


def test_models_pages_forward_and_back(gateway: GatewayProcess, client: Anthropic) -> None:
    ids = list(openai_models(gateway))
    assert len(ids) >= 3
    first = client.models.list(limit=1)
    assert [m.id for m in first.data] == ids[:1]
    assert first.has_more is True and first.first_id == first.last_id == ids[0]
    assert [m.id for m in client.models.list(limit=2)] == ids  # the SDK follows last_id
    second = client.models.list(after_id=ids[0], limit=1)
    assert [m.id for m in second.data] == ids[1:2] and second.has_more is (len(ids) > 2)
    last = client.models.list(after_id=ids[-1])
    assert last.data == [] and last.has_more is False
    assert last.first_id is None and last.last_id is None
    back = client.models.list(before_id=ids[-1], limit=2)
    assert [m.id for m in back.data] == ids[-3:-1]
    assert back.has_more is (len(ids) > 3) and back.first_id == ids[-3]
    # backwards through every page: the SDK follows first_id while before_id pages
    backwards = client.models.list(before_id=ids[-1], limit=1)
    assert [m.id for m in backwards] == ids[-2::-1]
    # a cursor is a position in the id order: one past every id still pages
    assert [m.id for m in client.models.list(before_id="zzz", limit=1000).data] == ids
    assert client.models.list(lifecycle=["retired"]).data == []
    assert [m.id for m in client.models.list(lifecycle=["active"]).data] == ids


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after_id": "a", "before_id": "b"}, "before_id"),
        ({"lifecycle": ["dormant"]}, "lifecycle"),
    ],
)
def test_bad_models_params_are_anthropic_400s(
    client: Anthropic, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.models.list(**params)
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert param in body["error"]["message"]
    assert body["request_id"] == caught.value.request_id


def test_unknown_model_is_an_anthropic_404(gateway: GatewayProcess, client: Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "no-such-model" in body["error"]["message"]
    # without anthropic-version, the same miss keeps OpenAI's envelope
    plain = httpx.get(f"{gateway.base_url}/models/no-such-model")
    assert plain.status_code == 404
    assert plain.json()["error"]["code"] == "model_not_found"
    assert httpx.get(f"{gateway.base_url}/models?limit=0").status_code == 200  # OpenAI ignores it
