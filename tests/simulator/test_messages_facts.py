"""Both wires carry the same facts: for one conversation said in the OpenAI and the Anthropic
dialect, plain and streamed, the text, reasoning, tool calls, stop reason and sequence and the
token counts agree (prompt tokens = input + cache creation + cache read on the Anthropic wire).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from gridgate.simulator import RunningSimulator
from tests.simulator.facts import (
    Facts,
    anthropic_facts,
    anthropic_message,
    openai_facts,
)

SYSTEM = "You are terse."
QUESTION = "Tell me about the weather in Lisbon."
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "number", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
BOOKING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "guests": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "at": {"type": "string", "format": "date-time"},
    },
    "required": ["guests", "at"],
}


def openai_tool(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": f"The {name} tool.", "parameters": schema},
    }


def anthropic_tool(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": f"The {name} tool.", "input_schema": schema}


OPENAI_TOOLS = [
    openai_tool("get_weather", WEATHER_SCHEMA),
    openai_tool("book_table", BOOKING_SCHEMA),
]
ANTHROPIC_TOOLS = [
    anthropic_tool("get_weather", WEATHER_SCHEMA),
    anthropic_tool("book_table", BOOKING_SCHEMA),
]
WEATHER_ARGS = {"city": "Lisbon", "unit": "celsius", "days": 2}
BOOKING_ARGS = {"guests": ["Ana"], "at": "2030-01-01T20:00:00Z"}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Conversation:
    openai: dict[str, Any]
    anthropic: dict[str, Any]
    stop: str


def tool_turn_openai(*results: tuple[str, Any]) -> list[dict[str, Any]]:
    calls = [("call_1", "get_weather", WEATHER_ARGS), ("call_2", "book_table", BOOKING_ARGS)]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Check the weather and book a table."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": compact(a)}}
                for i, n, a in calls[: len(results)]
            ],
        },
    ]
    for (call_id, _, _), (_, content) in zip(calls, results, strict=False):
        messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
    return messages


CASES: dict[str, Conversation] = {
    "text": Conversation(
        openai={
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION},
            ],
            "max_tokens": 100,
        },
        anthropic={
            "system": SYSTEM,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 100,
        },
        stop="end_turn",
    ),
    "system blocks, several turns, a prefill": Conversation(
        openai={
            "messages": [
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": SYSTEM},
                        {"type": "text", "text": " Be kind."},
                    ],
                },
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": "It is warm."},
                {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
                {"role": "assistant", "content": "Tomorrow"},
            ],
            "max_tokens": 100,
        },
        anthropic={
            "system": [
                {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": " Be kind."},
            ],
            "messages": [
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": [{"type": "text", "text": "It is warm."}]},
                {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
                {"role": "assistant", "content": "Tomorrow"},
            ],
            "max_tokens": 100,
        },
        stop="end_turn",
    ),
    "max tokens": Conversation(
        openai={"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 5},
        anthropic={"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 5},
        stop="max_tokens",
    ),
    "an image": Conversation(
        openai={
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
                        },
                    ],
                }
            ],
            "max_tokens": 100,
        },
        anthropic={
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        },
                    ],
                }
            ],
            "max_tokens": 100,
        },
        stop="end_turn",
    ),
    "a forced tool": Conversation(
        openai={
            "messages": [{"role": "user", "content": QUESTION}],
            "tools": OPENAI_TOOLS,
            "tool_choice": "required",
            "max_tokens": 300,
        },
        anthropic={
            "messages": [{"role": "user", "content": QUESTION}],
            "tools": ANTHROPIC_TOOLS,
            "tool_choice": {"type": "any"},
            "max_tokens": 300,
        },
        stop="tool_use",
    ),
    "a named tool": Conversation(
        openai={
            "messages": [{"role": "user", "content": QUESTION}],
            "tools": OPENAI_TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "book_table"}},
            "max_tokens": 300,
        },
        anthropic={
            "messages": [{"role": "user", "content": QUESTION}],
            "tools": ANTHROPIC_TOOLS,
            "tool_choice": {"type": "tool", "name": "book_table"},
            "max_tokens": 300,
        },
        stop="tool_use",
    ),
    "two tools in parallel": Conversation(
        openai={
            "messages": [{"role": "user", "content": "Use get_weather and book_table."}],
            "tools": OPENAI_TOOLS,
            "max_tokens": 300,
        },
        anthropic={
            "messages": [{"role": "user", "content": "Use get_weather and book_table."}],
            "tools": ANTHROPIC_TOOLS,
            "max_tokens": 300,
        },
        stop="tool_use",
    ),
    "parallel tool use off": Conversation(
        openai={
            "messages": [{"role": "user", "content": "Use get_weather and book_table."}],
            "tools": OPENAI_TOOLS,
            "parallel_tool_calls": False,
            "max_tokens": 300,
        },
        anthropic={
            "messages": [{"role": "user", "content": "Use get_weather and book_table."}],
            "tools": ANTHROPIC_TOOLS,
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
            "max_tokens": 300,
        },
        stop="tool_use",
    ),
    "tool choice none": Conversation(
        openai={
            "messages": [{"role": "user", "content": "Use get_weather."}],
            "tools": OPENAI_TOOLS,
            "tool_choice": "none",
            "max_tokens": 100,
        },
        anthropic={
            "messages": [{"role": "user", "content": "Use get_weather."}],
            "tools": ANTHROPIC_TOOLS,
            "tool_choice": {"type": "none"},
            "max_tokens": 100,
        },
        stop="end_turn",
    ),
    "a tool cut by max tokens": Conversation(
        openai={
            "messages": [{"role": "user", "content": QUESTION}],
            "tools": OPENAI_TOOLS,
            "tool_choice": "required",
            "max_tokens": 4,
        },
        anthropic={
            "messages": [{"role": "user", "content": QUESTION}],
            "tools": ANTHROPIC_TOOLS,
            "tool_choice": {"type": "any"},
            "max_tokens": 4,
        },
        stop="max_tokens",
    ),
    "tool results": Conversation(
        openai={
            "messages": tool_turn_openai(("a", "22 degrees"), ("b", "booked for 20:00")),
            "tools": OPENAI_TOOLS,
            "max_tokens": 60,
        },
        anthropic={
            "messages": [
                {"role": "user", "content": "Check the weather and book a table."},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "call_1",
                            "name": "get_weather",
                            "input": WEATHER_ARGS,
                        },
                        {
                            "type": "tool_use",
                            "id": "call_2",
                            "name": "book_table",
                            "input": BOOKING_ARGS,
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "22 degrees"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": "booked for 20:00",
                        },
                    ],
                },
            ],
            "tools": ANTHROPIC_TOOLS,
            "max_tokens": 60,
        },
        stop="end_turn",
    ),
    "a tool result in blocks, an error, then user text": Conversation(
        openai={
            "messages": [
                {"role": "user", "content": "Check the weather."},
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": compact(WEATHER_ARGS)},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "content": [{"type": "text", "text": "station offline"}],
                },
                {"role": "user", "content": "Then guess."},
            ],
            "max_tokens": 100,
        },
        anthropic={
            "messages": [
                {"role": "user", "content": "Check the weather."},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": "call_1",
                            "name": "get_weather",
                            "input": WEATHER_ARGS,
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": [
                                {"type": "text", "text": "station offline"},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/png",
                                        "data": PIXEL,
                                    },
                                },
                            ],
                            "is_error": True,
                        },
                        {"type": "text", "text": "Then guess."},
                    ],
                },
            ],
            "max_tokens": 100,
        },
        stop="end_turn",
    ),
    "reasoning then a tool": Conversation(
        openai={
            "messages": [{"role": "user", "content": "Use get_weather."}],
            "tools": OPENAI_TOOLS,
            "reasoning_effort": "low",
            "max_completion_tokens": 3000,
        },
        anthropic={
            "messages": [{"role": "user", "content": "Use get_weather."}],
            "tools": ANTHROPIC_TOOLS,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "max_tokens": 3000,
        },
        stop="tool_use",
    ),
    "structured output": Conversation(
        openai={
            "messages": [{"role": "user", "content": "Describe the weather."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": WEATHER_SCHEMA},
            },
            "max_tokens": 200,
        },
        anthropic={
            "messages": [{"role": "user", "content": "Describe the weather."}],
            "output_format": {"type": "json_schema", "schema": WEATHER_SCHEMA},
            "max_tokens": 200,
        },
        stop="end_turn",
    ),
}


async def all_paths(
    http: aiohttp.ClientSession, sim: RunningSimulator, conversation: Conversation
) -> Facts:
    """The facts of the four paths (two wires, plain and streamed), checked equal."""
    results = {
        ("openai", stream): await openai_facts(http, sim, conversation.openai, stream=stream)
        for stream in (False, True)
    }
    for stream in (False, True):
        results["anthropic", stream] = await anthropic_facts(
            http, sim, conversation.anthropic, stream=stream
        )
    first = results["openai", False]
    for path, facts in results.items():
        assert facts == first, f"{path} differs:\n{facts}\n{first}"
    assert first.stop == conversation.stop
    return first


@pytest.mark.parametrize("case", CASES)
async def test_same_facts(sim: RunningSimulator, http: aiohttp.ClientSession, case: str) -> None:
    facts = await all_paths(http, sim, CASES[case])
    assert facts.prompt_tokens > 0
    assert facts.completion_tokens > 0
    if facts.stop == "tool_use":
        assert facts.tool_calls and not facts.text


async def test_tool_results_are_quoted_and_parallel_off_calls_one(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    quoted = await all_paths(http, sim, CASES["tool results"])
    assert quoted.text == 'The tool returned: "booked for 20:00".'
    both = await all_paths(http, sim, CASES["two tools in parallel"])
    assert [name for name, _ in both.tool_calls] == ["get_weather", "book_table"]
    one = await all_paths(http, sim, CASES["parallel tool use off"])
    assert [name for name, _ in one.tool_calls] == ["get_weather"]
    named = await all_paths(http, sim, CASES["a named tool"])
    assert [name for name, _ in named.tool_calls] == ["book_table"]


async def test_stop_sequence(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    full = await all_paths(http, sim, CASES["text"])
    words = full.text.split(" ")
    stop = " " + words[4]
    conversation = CASES["text"]
    facts = await all_paths(
        http,
        sim,
        Conversation(
            openai={**conversation.openai, "stop": ["zzz", stop]},
            anthropic={**conversation.anthropic, "stop_sequences": ["zzz", stop]},
            stop="stop_sequence",
        ),
    )
    assert facts.stop_sequence == stop
    assert facts.text == full.text[: full.text.index(stop)]
    assert facts.completion_tokens == 5  # the stop word was generated


@pytest.mark.parametrize(
    ("budget", "effort", "tokens"),
    [
        (1024, "minimal", 4),
        (2048, "low", 8),
        (4096, "medium", 16),
        (8192, "high", 32),
        (16384, "xhigh", 64),
    ],
)
async def test_thinking_budget_plans_the_reasoning_of_an_effort(
    sim: RunningSimulator, http: aiohttp.ClientSession, budget: int, effort: str, tokens: int
) -> None:
    facts = await all_paths(
        http,
        sim,
        Conversation(
            openai={
                "messages": [{"role": "user", "content": QUESTION}],
                "reasoning_effort": effort,
                "max_completion_tokens": budget + 100,
            },
            anthropic={
                "messages": [{"role": "user", "content": QUESTION}],
                "thinking": {"type": "enabled", "budget_tokens": budget},
                "max_tokens": budget + 100,
            },
            stop="end_turn",
        ),
    )
    assert len(facts.reasoning.split()) == tokens
    assert facts.completion_tokens == tokens + len(facts.text.split())


async def test_adaptive_thinking_is_medium(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    body = {
        "messages": [{"role": "user", "content": QUESTION}],
        "thinking": {"type": "adaptive"},
        "max_tokens": 100,
    }
    facts = await anthropic_facts(http, sim, body, stream=False)
    medium = await openai_facts(
        http,
        sim,
        {"messages": body["messages"], "reasoning_effort": "medium", "max_tokens": 100},
        stream=False,
    )
    assert facts == medium


async def test_tool_loop_with_thinking(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    """The second turn of a thinking tool loop (its signed thinking block sent back) carries the
    same facts as the OpenAI conversation without the reasoning, which that wire never sees."""
    first = {
        "messages": [{"role": "user", "content": "Use get_weather."}],
        "tools": ANTHROPIC_TOOLS,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "max_tokens": 3000,
    }
    message = await anthropic_message(http, sim, first, stream=True)
    thinking, use = message["content"]
    assert thinking["type"] == "thinking" and use["type"] == "tool_use"
    anthropic = {
        **first,
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": message["content"]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "sunny"}],
            },
        ],
    }
    openai = {
        "messages": [
            {"role": "user", "content": "Use get_weather."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": use["id"],
                        "type": "function",
                        "function": {"name": use["name"], "arguments": compact(use["input"])},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": use["id"], "content": "sunny"},
        ],
        "tools": OPENAI_TOOLS,
        "reasoning_effort": "low",
        "max_completion_tokens": 3000,
    }
    facts = await all_paths(http, sim, Conversation(openai, anthropic, stop="end_turn"))
    assert facts.text == 'The tool returned: "sunny".'
    assert len(facts.reasoning.split()) == 8
