"""``POST /v1/messages`` over real HTTP (aiohttp client): the Anthropic wire's shapes, events,
auth, refusals, thinking signatures and stats."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic.types
import pydantic
import pytest

from gridgate.simulator import RunningSimulator
from gridgate.simulator.stats import sha256_hex
from tests.simulator.conftest import StartSim
from tests.simulator.facts import MODEL, anthropic_message
from tests.simulator.helpers import post, post_messages, stats
from tests.simulator.sse import assemble, sse_events

HELLO: list[Any] = [{"role": "user", "content": "Say hello."}]
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
}
_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)


def ask(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": HELLO, **extra}


def valid_message(raw: bytes) -> dict[str, Any]:
    """The body, checked against the SDK's ``Message`` model."""
    body: dict[str, Any] = json.loads(raw)
    anthropic.types.Message.model_validate(body)
    return body


def valid_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = sse_events(raw)
    for name, data in events:
        if name != "ping":
            _EVENT.validate_python(data)
    return events


# -- plain --------------------------------------------------------------------------------------


async def test_plain_message_shape(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    status, headers, raw = await post_messages(
        http, sim, ask(), headers={"anthropic-version": "2023-06-01"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["request-id"].startswith("req_011C")
    body = valid_message(raw)
    assert list(body) == [
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    ]
    assert body["id"].startswith("msg_01") and len(body["id"]) == 28
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", MODEL)
    (block,) = body["content"]
    assert block["type"] == "text"
    assert len(block["text"].split()) == 64  # the default length, as on the OpenAI wire
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    assert body["usage"] == {
        "input_tokens": 3 + 4,  # ceil(len("Say hello.") / 4) + 4 per message
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 64,
        "service_tier": "standard",
    }


async def test_stop_reasons(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    _, _, raw = await post_messages(http, sim, ask(max_tokens=7))
    cut = valid_message(raw)
    assert (cut["stop_reason"], cut["stop_sequence"]) == ("max_tokens", None)
    assert cut["usage"]["output_tokens"] == 7
    text = cut["content"][0]["text"]
    stop = " " + text.split(" ")[3]
    _, _, raw = await post_messages(http, sim, ask(max_tokens=7, stop_sequences=["nope", stop]))
    stopped = valid_message(raw)
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", stop)
    assert stopped["content"] == [{"type": "text", "text": text[: text.index(stop)]}]
    assert stopped["usage"]["output_tokens"] == 4
    # a sequence at the very start leaves no text, so no text block
    first = text.split(" ")[0]
    _, _, raw = await post_messages(http, sim, ask(stop_sequences=[first]))
    empty = valid_message(raw)
    assert empty["content"] == []
    assert (empty["stop_reason"], empty["stop_sequence"], empty["usage"]["output_tokens"]) == (
        "stop_sequence",
        first,
        1,
    )


async def test_tool_use_and_thinking_blocks(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    body = ask(
        messages=[{"role": "user", "content": "Use get_weather, please."}],
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 2048},
        max_tokens=4096,
    )
    _, _, raw = await post_messages(http, sim, body)
    message = valid_message(raw)
    thinking, use = message["content"]
    assert list(thinking) == ["type", "thinking", "signature"]
    assert len(thinking["thinking"].split()) == 8
    assert len(thinking["signature"]) == 64
    assert use["type"] == "tool_use" and use["name"] == "get_weather"
    assert use["id"].startswith("toolu_01") and len(use["id"]) == 30
    assert set(use["input"]) == {"city", "days"}
    assert message["stop_reason"] == "tool_use"
    arguments = json.dumps(use["input"], separators=(",", ":"))
    assert message["usage"]["output_tokens"] == 8 + 1 + -(-len(arguments) // 4)
    # the same request plans the same answer: ids and the signature too
    _, _, again = await post_messages(http, sim, body)
    assert json.loads(again)["content"] == message["content"]


# -- streams ------------------------------------------------------------------------------------


async def test_stream_events_and_framing(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    status, headers, raw = await post_messages(http, sim, ask(stream=True, max_tokens=5))
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["request-id"].startswith("req_")
    events = valid_events(raw)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["usage"]["output_tokens"] == 1
    assert start["usage"]["input_tokens"] == 7
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
        "usage": {
            "input_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 5,
        },
    }
    streamed = assemble(events)
    _, _, plain = await post_messages(http, sim, ask(max_tokens=5))
    expected = json.loads(plain)
    for key in ("content", "stop_reason", "stop_sequence", "model", "role", "type"):
        assert streamed[key] == expected[key], key
    assert streamed["usage"]["output_tokens"] == expected["usage"]["output_tokens"]


async def test_stream_thinking_then_tool(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    body = ask(
        messages=[{"role": "user", "content": "Use get_weather."}],
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 1024},
        max_tokens=2000,
    )
    _, _, raw = await post_messages(http, sim, {**body, "stream": True})
    events = valid_events(raw)
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert deltas[:5] == ["thinking_delta"] * 4 + ["signature_delta"]
    assert set(deltas[5:]) == {"input_json_delta"}
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert starts[0] == {"type": "thinking", "thinking": "", "signature": ""}
    assert starts[1]["type"] == "tool_use" and starts[1]["input"] == {}
    streamed = assemble(events)
    _, _, plain = await post_messages(http, sim, body)
    assert streamed["content"] == json.loads(plain)["content"]
    assert streamed["stop_reason"] == "tool_use"


# -- thinking signatures --------------------------------------------------------------------


async def first_turn(http: aiohttp.ClientSession, sim: RunningSimulator) -> dict[str, Any]:
    return await anthropic_message(
        http,
        sim,
        {
            "messages": HELLO,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "max_tokens": 3000,
        },
        stream=False,
    )


def second_turn(content: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return ask(
        messages=[
            *HELLO,
            {"role": "assistant", "content": content},
            {"role": "user", "content": "More."},
        ],
        **extra,
    )


async def test_signature_round_trip(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    content = (await first_turn(http, sim))["content"]
    thinking = {"type": "enabled", "budget_tokens": 2048}
    status, _, raw = await post_messages(
        http, sim, second_turn(content, thinking=thinking, max_tokens=3000)
    )
    assert status == 200, raw
    # thinking off: past thinking is still checked, and still accepted
    status, _, _ = await post_messages(http, sim, second_turn(content))
    assert status == 200
    # a redacted block is carried as it is
    redacted = [{"type": "redacted_thinking", "data": "opaque"}, *content[1:]]
    status, _, _ = await post_messages(http, sim, second_turn(redacted))
    assert status == 200


@pytest.mark.parametrize("change", ["signature", "thinking"])
async def test_a_changed_thinking_block_is_refused(
    sim: RunningSimulator, http: aiohttp.ClientSession, change: str
) -> None:
    thinking, text = (await first_turn(http, sim))["content"]
    tampered = dict(thinking)
    tampered[change] = tampered[change][:-1] + ("A" if tampered[change][-1] != "A" else "B")
    status, headers, raw = await post_messages(http, sim, second_turn([tampered, text]))
    assert status == 400
    assert json.loads(raw) == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages.1.content.0: Invalid `signature` in `thinking` block",
        },
        "request_id": headers["request-id"],
    }


async def test_signatures_belong_to_the_simulator(start_sim: StartSim) -> None:
    alpha = await start_sim(name="alpha")
    twin = await start_sim(name="alpha")
    beta = await start_sim(name="beta")
    async with aiohttp.ClientSession() as http:
        content = (await first_turn(http, alpha))["content"]
        assert (await post_messages(http, twin, second_turn(content)))[0] == 200
        assert (await post_messages(http, beta, second_turn(content)))[0] == 400


# -- auth, refusals -------------------------------------------------------------------------


async def test_auth(start_sim: StartSim) -> None:
    sim = await start_sim(api_key="sk-secret")
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": "Bearer wrong"}):
            status, answer_headers, raw = await post_messages(http, sim, ask(), headers=headers)
            assert status == 401
            assert json.loads(raw) == {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                "request_id": answer_headers["request-id"],
            }
        for headers in ({"x-api-key": "sk-secret"}, {"Authorization": "Bearer sk-secret"}):
            assert (await post_messages(http, sim, ask(), headers=headers))[0] == 200
        await post_messages(http, sim, ask(), headers={"x-api-key": "sk-secret"})
        seen = await stats(http, sim)
    assert seen["x_api_key"] == {"present": True, "sha256": sha256_hex("sk-secret")}
    assert "sk-secret" not in json.dumps(seen)
    assert seen["by_status"] == {"401": 3, "200": 3}


async def test_unknown_model_is_not_found(start_sim: StartSim) -> None:
    sim = await start_sim(models=("known",))
    async with aiohttp.ClientSession() as http:
        status, _, raw = await post_messages(http, sim, ask(model="other"))
    assert status == 404
    assert json.loads(raw)["error"] == {"type": "not_found_error", "message": "model: other"}


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != name}


TOOL_TURN: list[Any] = [
    {"role": "user", "content": "Weather?"},
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
    },
]
REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "no max_tokens": (_without(ask(), "max_tokens"), "max_tokens: Field required"),
    "an OpenAI field": (ask(n=1), "n: Extra inputs are not permitted"),
    "a system message": (
        ask(messages=[{"role": "system", "content": "x"}, *HELLO]),
        'Unexpected role "system"',
    ),
    "a name on a message": (
        ask(messages=[{"role": "user", "content": "x", "name": "ann"}]),
        "messages.0.name: Extra inputs are not permitted",
    ),
    "an OpenAI detail on an image": (
        ask(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://x/y.png"},
                            "detail": "low",
                        }
                    ],
                }
            ]
        ),
        "messages.0.content.0.image.detail: Extra inputs are not permitted",
    ),
    "an image of the wrong media type": (
        ask(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "x"},
                        }
                    ],
                }
            ]
        ),
        "messages.0.content.0.image.source.base64.media_type: Input should be",
    ),
    "an unknown block": (
        ask(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
        "Input tag 'input_audio' found using 'type' does not match",
    ),
    "an empty text block": (
        ask(
            messages=[
                *HELLO,
                {"role": "assistant", "content": [{"type": "text", "text": ""}]},
                *HELLO,
            ]
        ),
        "messages.1.content.0: text content blocks must contain non-whitespace text",
    ),
    "empty content": (
        ask(messages=[{"role": "user", "content": ""}]),
        "messages.0: all messages must have non-empty content",
    ),
    "a final assistant ending in whitespace": (
        ask(messages=[*HELLO, {"role": "assistant", "content": "Sure "}]),
        "final assistant content cannot end with trailing whitespace",
    ),
    "a thinking budget under 1024": (
        ask(thinking={"type": "enabled", "budget_tokens": 1023}),
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    ),
    "a thinking budget not under max_tokens": (
        ask(thinking={"type": "enabled", "budget_tokens": 1024}),
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    "a temperature over 1": (ask(temperature=1.5), "temperature: Input should be less than"),
    "a temperature with thinking": (
        ask(max_tokens=2000, temperature=0.5, thinking={"type": "enabled", "budget_tokens": 1024}),
        "`temperature` may only be set to 1 when thinking is enabled",
    ),
    "a forced tool with thinking": (
        ask(
            max_tokens=2000,
            tools=[WEATHER],
            tool_choice={"type": "any"},
            thinking={"type": "enabled", "budget_tokens": 1024},
        ),
        "Thinking may not be enabled when tool_choice forces tool use.",
    ),
    "a tool_choice naming no tool": (
        ask(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_time"}),
        "tool_choice.tool.name: Tool 'get_time' not found",
    ),
    "a bad tool name": (
        ask(tools=[{**WEATHER, "name": "get.weather"}]),
        "tools.0.custom.name: String should match pattern",
    ),
    "OpenAI metadata": (
        ask(metadata={"user_id": "u", "team": "a"}),
        "metadata.team: Extra inputs are not permitted",
    ),
    "a tool_use without its result": (
        ask(tools=[WEATHER], messages=[*TOOL_TURN, {"role": "user", "content": "and?"}]),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_1.",
    ),
    "a result for no tool_use": (
        ask(
            messages=[
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "Hm."},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}],
                },
            ]
        ),
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9.",
    ),
    "a thinking tool loop without its thinking": (
        ask(
            tools=[WEATHER],
            max_tokens=2000,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[
                *TOOL_TURN,
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}],
                },
            ],
        ),
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        "`tool_use`.",
    ),
    "five cache breakpoints": (
        ask(
            system=[
                {"type": "text", "text": f"rule {i}", "cache_control": {"type": "ephemeral"}}
                for i in range(5)
            ]
        ),
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    ),
    "a cache TTL Anthropic does not offer": (
        ask(
            system=[
                {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1d"}}
            ]
        ),
        "system.0.text.cache_control.ephemeral.ttl: Input should be '5m' or '1h'",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
async def test_refusals(sim: RunningSimulator, http: aiohttp.ClientSession, case: str) -> None:
    body, message = REFUSALS[case]
    status, headers, raw = await post_messages(http, sim, body)
    assert status == 400, raw
    answer = json.loads(raw)
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    assert message in answer["error"]["message"]
    assert answer["request_id"] == headers["request-id"]


async def test_bad_json(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sim.base_url}/messages", data=b"{nope") as resp:
        assert resp.status == 400
        answer = await resp.json()
    assert answer["error"]["type"] == "invalid_request_error"


async def test_stats_count_both_wires(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    await post_messages(http, sim, ask())
    await post_messages(http, sim, ask(stream=True))
    await post(http, sim, {"model": "m", "messages": HELLO})
    seen = await stats(http, sim)
    assert seen["requests_total"] == 3
    assert seen["by_endpoint"] == {"/v1/messages": 2, "/v1/chat/completions": 1}
    assert (seen["streams_started"], seen["streams_completed"]) == (1, 1)
    assert seen["last_request_body"] == {"model": "m", "messages": HELLO}
