"""The simulator's Responses wire (``POST /v1/responses``) with the official ``openai`` SDK:
answers and events checked against the spec's ``Response`` / ``ResponseStreamEvent`` schemas
and the SDK's types; tool calls, reasoning with encrypted content sent back, and the faults."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gridgate.protocol.sse import SSEParser
from gridgate.simulator import RunningSimulator
from tests.openai_spec import OpenAISpec, load_spec
from tests.simulator.conftest import StartSim

KEY = "sk-sim-responses-0123456789"
MODEL = "gpt-sim"
EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def spec() -> OpenAISpec:
    return load_spec()


@pytest.fixture
async def sim(start_sim: StartSim) -> RunningSimulator:
    return await start_sim(api_key=KEY)


@pytest.fixture
async def client(sim: RunningSimulator) -> Any:
    async with AsyncOpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0) as client:
        yield client


async def post(sim: RunningSimulator, body: dict[str, Any]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sim.base_url + "/responses", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as answer,
    ):
        return answer.status, await answer.read()


async def stream_events(
    sim: RunningSimulator, spec: OpenAISpec, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every event of a streamed answer, each checked against the spec and the SDK."""
    status, raw = await post(sim, {**body, "stream": True})
    assert status == 200, raw
    events = []
    for event in SSEParser().feed(raw):
        data = json.loads(event.data)
        assert event.event == data["type"]
        spec.check("ResponseStreamEvent", data)
        EVENT.validate_python(data)
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


async def drain(client: AsyncOpenAI, text: str) -> None:
    async with await client.responses.create(model=MODEL, input=text, stream=True) as stream:
        async for _ in stream:
            pass


def check_response(spec: OpenAISpec, body: dict[str, Any]) -> Response:
    spec.check("Response", body)
    return Response.model_validate(body)


async def test_a_plain_answer(sim: RunningSimulator, spec: OpenAISpec) -> None:
    status, raw = await post(sim, {"model": MODEL, "input": "Say hello.", "store": False})
    assert status == 200
    response = check_response(spec, json.loads(raw))
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens == len(response.output_text.split())
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


async def test_the_sdk_reads_a_cut_answer_as_incomplete(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model=MODEL, input="Say hello.", max_output_tokens=5, instructions="Be terse."
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert len(response.output_text.split()) == 5
    assert response.instructions == "Be terse."


async def test_the_stream_carries_the_plain_answer(
    sim: RunningSimulator, spec: OpenAISpec, client: AsyncOpenAI
) -> None:
    body: dict[str, Any] = {"model": MODEL, "input": "Say hello.", "max_output_tokens": 40}
    plain = await client.responses.create(**body)
    events = await stream_events(sim, spec, body)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete" if plain.status == "incomplete" else "response.completed",
    ]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == plain.output_text
    final = check_response(spec, events[-1]["response"])
    assert final.output_text == plain.output_text
    assert final.usage == plain.usage
    async with await client.responses.create(**body, stream=True) as stream:
        seen = [event.type async for event in stream]
    assert seen == kinds


async def test_a_function_call_round_trip(
    sim: RunningSimulator, spec: OpenAISpec, client: AsyncOpenAI
) -> None:
    ask = [{"role": "user", "content": "Check get_weather for me."}]
    first = await client.responses.create(model=MODEL, input=ask, tools=[WEATHER])
    status, raw = await post(sim, {"model": MODEL, "input": ask, "tools": [WEATHER]})
    assert status == 200
    [again] = check_response(spec, json.loads(raw)).output
    assert again.model_dump(exclude={"id"}) == first.output[0].model_dump(exclude={"id"})
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.call_id.startswith("call_") and call.id is not None
    assert json.loads(call.arguments)["unit"] in ("celsius", "fahrenheit")
    assert first.status == "completed"

    events = await stream_events(sim, spec, {"model": MODEL, "input": ask, "tools": [WEATHER]})
    arguments = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    assert arguments == call.arguments
    [done] = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done["name"] == "get_weather" and done["arguments"] == call.arguments

    second = await client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        input=[
            *ask,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "22 and sunny"},
        ],
    )
    assert "22 and sunny" in second.output_text


async def test_reasoning_with_its_encrypted_content_sent_back(
    sim: RunningSimulator, spec: OpenAISpec, client: AsyncOpenAI
) -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "input": "Think first.",
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
    }
    first = await client.responses.create(**body)
    reasoning, message = first.output
    assert reasoning.type == "reasoning" and message.type == "message"
    [summary] = reasoning.summary
    assert len(summary.text.split()) == 8  # "low" plans 8 reasoning tokens
    assert reasoning.encrypted_content
    assert first.usage is not None and first.usage.output_tokens_details.reasoning_tokens == 8

    events = await stream_events(sim, spec, body)
    deltas = [e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    assert "".join(deltas) == summary.text
    [done] = [
        e
        for e in events
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning"
    ]
    assert done["item"]["encrypted_content"]

    turn = [
        {"role": "user", "content": "Think first."},
        reasoning.model_dump(mode="json", exclude_none=True),
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "And again."},
    ]
    second = await client.responses.create(**{**body, "input": turn})
    assert second.output_text
    turn[1] = {**turn[1], "encrypted_content": reasoning.encrypted_content[:-2] + "xx"}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(**{**body, "input": turn})
    assert caught.value.code == "invalid_encrypted_content"
    # without a summary asked for, the reasoning is done but not shown
    quiet = await client.responses.create(**{**body, "reasoning": {"effort": "low"}})
    assert quiet.output[0].type == "reasoning" and quiet.output[0].summary == []
    assert quiet.usage is not None and quiet.usage.output_tokens_details.reasoning_tokens == 8


async def test_faults(sim: RunningSimulator, spec: OpenAISpec, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        await client.responses.create(model=MODEL, input="[[sim:mode=status,status=429]] hi")
    assert limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model=MODEL, input="[[sim:mode=error,status=500]] hi")

    status, raw = await post(
        sim,
        {
            "model": MODEL,
            "input": "[[sim:mode=error,after=4,status=529,code=overloaded]] hi",
            "stream": True,
        },
    )
    assert status == 200
    events = [json.loads(e.data) for e in SSEParser().feed(raw)]
    assert len(events) == 5 and events[-1]["type"] == "error"
    spec.check("ResponseStreamEvent", events[-1])
    assert events[-1]["code"] == "overloaded" and events[-1]["sequence_number"] == 4
    with pytest.raises(openai.APIError, match="529"):
        await drain(client, "[[sim:mode=error,after=3,status=529]] hi")

    status, raw = await post(sim, {"model": MODEL, "input": "[[sim:malformed]] hi"})
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    status, raw = await post(
        sim, {"model": MODEL, "input": "[[sim:mode=malformed,after=2]] hi", "stream": True}
    )
    pieces = raw.split(b"\n\n")
    assert b"msg_garbage" in pieces[2]

    status, raw = await post(sim, {"model": MODEL, "input": "[[sim:no_usage]] hi"})
    assert "usage" not in json.loads(raw)
    events = await stream_events(sim, spec, {"model": MODEL, "input": "[[sim:no_usage]] hi"})
    assert "usage" not in events[-1]["response"]

    with pytest.raises(openai.APIConnectionError):
        await client.responses.create(model=MODEL, input="[[sim:drop]] hi")
    with pytest.raises(openai.APIConnectionError):
        await drain(client, "[[sim:mode=drop,after=3]] hi")
    assert sim.state.stats.snapshot()["by_endpoint"]["/v1/responses"] >= 9


async def test_refusals(sim: RunningSimulator, client: AsyncOpenAI) -> None:
    async with AsyncOpenAI(base_url=sim.base_url, api_key="sk-wrong-key-123", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.responses.create(model=MODEL, input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="hi", previous_response_id="resp_x")
    assert caught.value.param == "previous_response_id"
    status, raw = await post(sim, {"model": MODEL, "input": [{"type": "nonsense"}]})
    assert status == 400 and json.loads(raw)["error"]["param"] == "input[0].type"


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


async def test_hang_and_stall(sim: RunningSimulator) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(TimeoutError):
            async with http.post(
                sim.base_url + "/responses",
                json={"model": MODEL, "input": "[[sim:hang]] hi"},
                headers=headers(),
                timeout=aiohttp.ClientTimeout(total=0.3),
            ) as answer:
                await answer.read()
        body = {"model": MODEL, "input": "[[sim:mode=hang,after=3,seconds=0.3]] hi"}
        async with http.post(
            sim.base_url + "/responses",
            json={**body, "stream": True, "max_output_tokens": 4},
            headers=headers(),
        ) as answer:
            head = b""
            while head.count(b"\n\n") < 3:
                head += await answer.content.readline()
            stalled_at = time.monotonic()
            rest = await answer.read()
            assert time.monotonic() - stalled_at >= 0.25
    events = [json.loads(e.data) for e in SSEParser().feed(head + rest)]
    assert [e["type"] for e in events[:3]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
    ]
    assert events[-1]["type"] == "response.incomplete"


async def test_slow_overrun_and_standing_faults(sim: RunningSimulator, client: AsyncOpenAI) -> None:
    started = time.monotonic()
    await client.responses.create(
        model=MODEL, input="[[sim:mode=slow,ttft_ms=150,tps=100]] hi", max_output_tokens=6
    )
    assert time.monotonic() - started >= 0.15 + 6 / 100 - 0.01
    started = time.monotonic()
    async with await client.responses.create(
        model=MODEL, input="[[sim:mode=slow,ttft_ms=200]] hi", stream=True
    ) as stream:
        first = await anext(aiter(stream))
        assert first.type == "response.created"
        assert time.monotonic() - started >= 0.2
    overrun = await client.responses.create(
        model=MODEL, input="[[sim:mode=overrun,length=30]] hi", max_output_tokens=5
    )
    assert overrun.usage is not None and overrun.usage.output_tokens == 30
    assert overrun.status == "completed"

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sim.root_url}/sim/faults", json={"mode": "status", "status": 503, "count": 1}
        ) as made,
    ):
        assert made.status == 201
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model=MODEL, input="hi")
    assert (await client.responses.create(model=MODEL, input="hi")).status == "completed"
