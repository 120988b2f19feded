"""The official ``anthropic`` SDK against the simulator: async and sync clients, ``create`` and
the ``stream`` helpers, tool use, thinking signatures sent back, errors and faults."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic import Anthropic, AsyncAnthropic

from gridgate.simulator import RunningSimulator
from tests.simulator.conftest import StartSim, simulator_in_thread

KEY = "sk-ant-sim-0123456789"
MODEL = "claude-sim"
HELLO: list[Any] = [{"role": "user", "content": "Say hello."}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


@pytest.fixture
async def client(start_sim: StartSim) -> Any:
    sim = await start_sim(api_key=KEY)
    async with AsyncAnthropic(base_url=sim.root_url, api_key=KEY, max_retries=0) as client:
        yield client


async def test_create(client: AsyncAnthropic) -> None:
    message = await client.messages.create(model=MODEL, max_tokens=20, messages=HELLO)
    assert message.model == MODEL
    assert message.stop_reason == "max_tokens"
    (block,) = message.content
    assert block.type == "text"
    assert len(block.text.split()) == 20
    assert message.usage.input_tokens == 7
    assert message.usage.output_tokens == 20
    assert message.usage.cache_read_input_tokens == 0


async def test_stream_helpers_match_create(client: AsyncAnthropic) -> None:
    kwargs: Any = {
        "model": MODEL,
        "max_tokens": 3000,
        "messages": [{"role": "user", "content": "Check get_weather for me."}],
        "tools": [WEATHER],
        "thinking": THINKING,
    }
    created = await client.messages.create(**kwargs)
    kinds: list[str] = []
    async with client.messages.stream(**kwargs) as stream:
        async for event in stream:
            kinds.append(event.type)
        streamed = await stream.get_final_message()
    assert [block.model_dump() for block in streamed.content] == [
        block.model_dump() for block in created.content
    ]
    assert streamed.stop_reason == created.stop_reason == "tool_use"
    assert streamed.usage.output_tokens == created.usage.output_tokens
    assert streamed.usage.input_tokens == created.usage.input_tokens
    for kind in ("message_start", "thinking", "signature", "input_json", "message_stop"):
        assert kind in kinds, kind
    thinking, use = streamed.content
    assert thinking.type == "thinking" and len(thinking.thinking.split()) == 8
    assert use.type == "tool_use" and use.name == "get_weather"
    assert isinstance(use.input, dict) and use.input["unit"] in ("celsius", "fahrenheit")


async def test_text_stream(client: AsyncAnthropic) -> None:
    created = await client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert created.content[0].type == "text"
    assert text == created.content[0].text


async def test_tool_round_trip_with_thinking(client: AsyncAnthropic) -> None:
    """The SDK's own content blocks go back as they came (thinking signed, tool_use), and the
    answer quotes the tool result."""
    messages: Any = [{"role": "user", "content": "Use get_weather."}]
    first = await client.messages.create(
        model=MODEL, max_tokens=3000, messages=messages, tools=[WEATHER], thinking=THINKING
    )
    use = first.content[-1]
    assert use.type == "tool_use"
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C"}],
        },
    ]
    second = await client.messages.create(
        model=MODEL, max_tokens=3000, messages=messages, tools=[WEATHER], thinking=THINKING
    )
    assert [block.type for block in second.content] == ["thinking", "text"]
    assert second.content[1].type == "text"
    assert second.content[1].text == 'The tool returned: "18 C".'
    assert second.stop_reason == "end_turn"
    # the same loop without the thinking block is what Anthropic refuses
    messages[1]["content"] = [use]
    with pytest.raises(anthropic.BadRequestError, match="Expected `thinking`"):
        await client.messages.create(
            model=MODEL, max_tokens=3000, messages=messages, tools=[WEATHER], thinking=THINKING
        )


async def test_errors(client: AsyncAnthropic, start_sim: StartSim) -> None:
    def hello(directive: str) -> Any:
        return [{"role": "user", "content": f"Hi {directive}"}]

    cases: list[tuple[str, type[anthropic.APIStatusError], str]] = [
        ("[[sim:mode=status,status=429]]", anthropic.RateLimitError, "rate_limit_error"),
        ("[[sim:mode=status,status=529]]", anthropic.OverloadedError, "overloaded_error"),
        ("[[sim:mode=status,status=500]]", anthropic.InternalServerError, "api_error"),
        ("[[sim:mode=status,status=403]]", anthropic.PermissionDeniedError, "permission_error"),
    ]
    for directive, error, kind in cases:
        with pytest.raises(error) as caught:
            await client.messages.create(model=MODEL, max_tokens=5, messages=hello(directive))
        assert caught.value.type == kind
        assert caught.value.request_id is not None
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client.messages.create(
            model=MODEL,
            max_tokens=5,
            messages=HELLO,
            thinking={"type": "enabled", "budget_tokens": 10},
        )
    assert bad.value.type == "invalid_request_error"
    sim = await start_sim(api_key=KEY)
    async with AsyncAnthropic(base_url=sim.root_url, api_key="wrong", max_retries=0) as other:
        with pytest.raises(anthropic.AuthenticationError) as auth:
            await other.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    assert auth.value.api_message == "invalid x-api-key"


async def test_error_mid_stream(client: AsyncAnthropic) -> None:
    messages: Any = [{"role": "user", "content": "Hi [[sim:mode=error,after=5,status=529]]"}]
    received: list[str] = []

    async def read_all() -> None:
        async with client.messages.stream(model=MODEL, max_tokens=50, messages=messages) as stream:
            async for text in stream.text_stream:
                received.append(text)

    with pytest.raises(anthropic.APIStatusError) as caught:
        await read_all()
    assert caught.value.type == "overloaded_error"
    assert len(received) == 2  # message_start, ping, block start, two deltas: then the error


def test_sync_client() -> None:
    with simulator_in_thread(api_key=KEY) as sim:
        client = Anthropic(base_url=sim.root_url, api_key=KEY, max_retries=0)
        first = client.messages.create(
            model=MODEL, max_tokens=3000, messages=HELLO, thinking=THINKING
        )
        assert [block.type for block in first.content] == ["thinking", "text"]
        messages: Any = [
            *HELLO,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": "Again."},
        ]
        with client.messages.stream(
            model=MODEL, max_tokens=3000, messages=messages, thinking=THINKING
        ) as stream:
            second = stream.get_final_message()
        assert second.stop_reason == "end_turn"
        assert [block.type for block in second.content] == ["thinking", "text"]
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(
                model=MODEL,
                max_tokens=5,
                messages=[{"role": "user", "content": "[[sim:mode=status,status=429]]"}],
            )
        client.close()
        assert _stats(sim)["by_endpoint"] == {"/v1/messages": 3}


def _stats(sim: RunningSimulator) -> dict[str, Any]:
    return sim.state.stats.snapshot()
