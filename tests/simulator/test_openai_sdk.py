"""The official ``openai`` SDK against the simulator: async and sync clients, faults included."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel

from gridgate.simulator import RunningSimulator
from tests.openai_spec import OpenAISpec
from tests.simulator.conftest import StartSim, simulator_in_thread
from tests.simulator.helpers import eventually, stats

HELLO: list[Any] = [{"role": "user", "content": "Say hello."}]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 2},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": ["integer", "null"], "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
    },
}
BOOKING = {
    "type": "function",
    "function": {
        "name": "book_table",
        "parameters": {
            "type": "object",
            "properties": {
                "guests": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "email": {"type": "string", "format": "email"},
                        },
                        "required": ["name", "email"],
                        "additionalProperties": False,
                    },
                    "minItems": 1,
                },
                "at": {"type": "string", "format": "date-time"},
            },
            "required": ["guests", "at"],
            "additionalProperties": False,
        },
    },
}
TOOLS: list[Any] = [WEATHER, BOOKING]


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON the SDK received (fields it did not get stay out)."""
    return model.model_dump(mode="json", exclude_unset=True)


def arguments_valid(tool: dict[str, Any], arguments: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(arguments)
    schema = tool["function"]["parameters"]
    checker = Draft202012Validator.FORMAT_CHECKER
    Draft202012Validator(schema, format_checker=checker).validate(parsed)
    return parsed


@pytest.fixture
async def client(sim: RunningSimulator) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=sim.base_url, api_key="sk-any", max_retries=0) as client:
        yield client


@pytest.fixture
def sync_client(threaded_sim: RunningSimulator) -> Iterator[OpenAI]:
    with OpenAI(base_url=threaded_sim.base_url, api_key="sk-any", max_retries=0) as client:
        yield client


# -- async client ---------------------------------------------------------------------------


async def test_plain(client: AsyncOpenAI, spec: OpenAISpec) -> None:
    completion = await client.chat.completions.create(model="sim-model", messages=HELLO)
    spec.completion(dump(completion))
    assert completion.model == "sim-model"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 64


async def test_stream_without_usage(client: AsyncOpenAI, spec: OpenAISpec) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=HELLO, stream=True, max_tokens=8
    )
    text = ""
    chunks = [chunk async for chunk in stream]
    for chunk in chunks:
        spec.chunk(dump(chunk))
        assert chunk.usage is None
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert chunks[-1].choices[0].finish_reason == "length"
    plain = await client.chat.completions.create(model="m", messages=HELLO, max_tokens=8)
    assert text == plain.choices[0].message.content


async def test_stream_with_usage(client: AsyncOpenAI, spec: OpenAISpec) -> None:
    stream = await client.chat.completions.create(
        model="m",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=5,
    )
    chunks = [chunk async for chunk in stream]
    for chunk in chunks:
        spec.chunk(dump(chunk))
    usage = chunks[-1].usage
    assert usage is not None
    assert chunks[-1].choices == []
    assert usage.completion_tokens == 5
    assert usage.total_tokens == usage.prompt_tokens + 5


async def test_n_logprobs_stop_and_length(client: AsyncOpenAI, spec: OpenAISpec) -> None:
    many = await client.chat.completions.create(
        model="m", messages=HELLO, n=3, max_tokens=4, logprobs=True, top_logprobs=2
    )
    spec.completion(dump(many))
    assert len({c.message.content for c in many.choices}) == 3
    assert many.usage is not None
    assert many.usage.completion_tokens == 12
    for choice in many.choices:
        assert choice.finish_reason == "length"
        assert choice.logprobs is not None
        assert choice.logprobs.content is not None
        assert len(choice.logprobs.content) == 4
        assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    text = many.choices[0].message.content
    assert text is not None
    stop = text.split(" ")[2]
    cut = await client.chat.completions.create(model="m", messages=HELLO, stop=stop)
    spec.completion(dump(cut))
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


async def test_tool_required_and_named(client: AsyncOpenAI, spec: OpenAISpec) -> None:
    required = await client.chat.completions.create(
        model="m", messages=HELLO, tools=TOOLS, tool_choice="required"
    )
    spec.completion(dump(required))
    choice = required.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments_valid(WEATHER, call.function.arguments)

    named = await client.chat.completions.create(
        model="m",
        messages=HELLO,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "book_table"}},
    )
    spec.completion(dump(named))
    assert named.choices[0].message.tool_calls is not None
    (call,) = named.choices[0].message.tool_calls
    assert call.function.name == "book_table"
    booking = arguments_valid(BOOKING, call.function.arguments)
    assert booking["guests"]


async def test_streamed_tool_call_arguments_arrive_in_fragments(
    client: AsyncOpenAI, spec: OpenAISpec
) -> None:
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Book a table with the tool."}],
        tools=[BOOKING],
        stream=True,
    )
    fragments: list[str] = []
    name = None
    finish = None
    async for chunk in stream:
        spec.chunk(dump(chunk))
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for part in choice.delta.tool_calls or []:
            assert part.index == 0
            if part.function and part.function.name:
                name = part.function.name
            if part.function and part.function.arguments:
                fragments.append(part.function.arguments)
    assert name == "book_table"
    assert finish == "tool_calls"
    assert len(fragments) > 3
    arguments_valid(BOOKING, "".join(fragments))


async def test_tool_round_trip(client: AsyncOpenAI, spec: OpenAISpec) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the weather? Use get_weather."}]
    first = await client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    spec.completion(dump(first))
    calls = first.choices[0].message.tool_calls
    assert calls is not None
    (call,) = calls
    assert call.function.name == "get_weather"
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    result = '{"temperature": 21, "sky": "clear"}'
    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    second = await client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    spec.completion(dump(second))
    answer = second.choices[0]
    assert answer.finish_reason == "stop"
    assert answer.message.tool_calls is None
    assert answer.message.content is not None
    assert result in answer.message.content


async def test_auto_without_tool_words_answers_text(client: AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(model="m", messages=HELLO, tools=TOOLS)
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


class Ingredient(BaseModel):
    name: str
    grams: int | None


class Recipe(BaseModel):
    title: str
    servings: int
    ingredients: list[Ingredient]
    vegetarian: bool


async def test_json_schema_response_format(client: AsyncOpenAI, spec: OpenAISpec) -> None:
    schema = {
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
            "when": {"type": "string", "format": "date"},
        },
        "required": ["summary", "score", "tags", "when"],
        "additionalProperties": False,
    }
    reply = await client.chat.completions.create(
        model="m",
        messages=HELLO,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "review", "strict": True, "schema": schema},
        },
    )
    spec.completion(dump(reply))
    content = reply.choices[0].message.content
    assert content is not None
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        json.loads(content)
    )
    # The SDK's own structured-output helper builds a strict schema and parses the answer.
    raw = await client.chat.completions.with_raw_response.parse(
        model="m", messages=HELLO, response_format=Recipe
    )
    spec.completion(raw.http_response.json())
    parsed = raw.parse()
    recipe = parsed.choices[0].message.parsed
    assert isinstance(recipe, Recipe)
    assert recipe.ingredients


async def test_determinism_through_the_sdk(client: AsyncOpenAI) -> None:
    async def text(seed: int) -> str | None:
        reply = await client.chat.completions.create(model="m", messages=HELLO, seed=seed)
        return reply.choices[0].message.content

    assert await text(5) == await text(5)
    assert await text(5) != await text(6)


# -- faults through the SDK ------------------------------------------------------------------


def directive(text: str) -> list[Any]:
    return [{"role": "user", "content": f"Hi {text}"}]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_status_faults(
    client: AsyncOpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error) as caught:
        await client.chat.completions.create(
            model="m", messages=directive(f"[[sim:mode=status,status={status}]]")
        )
    assert caught.value.status_code == status
    assert "simulated" in caught.value.message.lower()


async def test_drop_plain_is_a_connection_error(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=directive("[[sim:drop]]"))


async def test_drop_mid_stream_errors(client: AsyncOpenAI, spec: OpenAISpec) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=directive("[[sim:mode=drop,after=4]]"), stream=True
    )
    received = []

    async def read_all() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises((httpx.TransportError, openai.APIError)):
        await read_all()
    assert len(received) == 4
    for chunk in received:
        spec.chunk(dump(chunk))


async def test_malformed_stream_errors(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=directive("[[sim:mode=malformed,after=2]]"), stream=True
    )
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|delimiter"):
        async for _ in stream:
            pass


async def test_hang_times_out(sim: RunningSimulator, spec: OpenAISpec) -> None:
    async with AsyncOpenAI(
        base_url=sim.base_url, api_key="k", max_retries=0, timeout=0.3
    ) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=directive("[[sim:hang]]"))
        assert time.monotonic() - started < 2


async def test_no_usage_reaches_the_sdk(client: AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(model="m", messages=directive("[[sim:no_usage]]"))
    assert reply.usage is None


async def test_disconnect_mid_stream_is_counted(
    start_sim: StartSim, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    sim = await start_sim(tokens_per_second=40, default_max_tokens=400)
    async with AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        count = 0
        async for chunk in stream:
            spec.chunk(dump(chunk))
            count += 1
            if count == 3:
                break
        await stream.close()

    async def seen() -> bool:
        return bool((await stats(http, sim))["client_disconnects"] == 1)

    await eventually(seen)
    snapshot = await stats(http, sim)
    assert snapshot["streams_started"] == 1
    assert snapshot["streams_completed"] == 0


async def test_sdk_sends_the_key_and_only_request_fields(start_sim: StartSim) -> None:
    sim = await start_sim(api_key="sk-supplier")
    async with AsyncOpenAI(base_url=sim.base_url, api_key="sk-supplier", max_retries=0) as client:
        await client.chat.completions.create(model="m", messages=HELLO, max_completion_tokens=7)
    snapshot = sim.state.stats.snapshot()
    assert snapshot["authorization"]["present"] is True
    body = snapshot["last_request_body"]
    assert set(body) == {"model", "messages", "max_completion_tokens"}
    async with AsyncOpenAI(base_url=sim.base_url, api_key="sk-wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="m", messages=HELLO)


# -- sync client (simulator in a background thread) ------------------------------------------


def test_sync_plain_and_stream(sync_client: OpenAI, spec: OpenAISpec) -> None:
    reply = sync_client.chat.completions.create(model="m", messages=HELLO, max_tokens=6)
    spec.completion(dump(reply))
    text = ""
    with sync_client.chat.completions.create(
        model="m", messages=HELLO, max_tokens=6, stream=True, stream_options={"include_usage": True}
    ) as stream:
        for chunk in stream:
            spec.chunk(dump(chunk))
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
    assert text == reply.choices[0].message.content


def test_sync_tools_and_faults(sync_client: OpenAI, spec: OpenAISpec) -> None:
    reply = sync_client.chat.completions.create(
        model="m", messages=HELLO, tools=TOOLS, tool_choice="required"
    )
    spec.completion(dump(reply))
    calls = reply.choices[0].message.tool_calls
    assert calls is not None
    arguments_valid(WEATHER, calls[0].function.arguments)
    with pytest.raises(openai.RateLimitError) as caught:
        sync_client.chat.completions.create(
            model="m", messages=directive("[[sim:mode=status,status=429,retry_after=3]]")
        )
    assert caught.value.response.headers["retry-after"] == "3"


def test_sync_hang_times_out() -> None:
    with (
        simulator_in_thread() as sim,
        OpenAI(base_url=sim.base_url, api_key="k", max_retries=0, timeout=0.3) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.chat.completions.create(model="m", messages=directive("[[sim:hang]]"))
