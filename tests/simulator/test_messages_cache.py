"""Prompt caching on the Anthropic wire: what is written, what is read, and that input +
creation + read is always the OpenAI wire's ``prompt_tokens``. Prefix sizes are measured on
the OpenAI wire (the prompt tokens of the prefix alone)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from gridgate.simulator import RunningSimulator
from tests.simulator.facts import MODEL
from tests.simulator.helpers import post, post_messages
from tests.simulator.sse import assemble, sse_events

SYSTEM = "You are a careful assistant who answers about the weather. " * 3
EPHEMERAL = {"type": "ephemeral"}


async def prompt_tokens(
    http: aiohttp.ClientSession, sim: RunningSimulator, messages: list[dict[str, Any]]
) -> int:
    """The OpenAI wire's prompt tokens for these (OpenAI-shaped) messages."""
    status, _, raw = await post(http, sim, {"model": MODEL, "messages": messages, "max_tokens": 1})
    assert status == 200, raw
    tokens: int = json.loads(raw)["usage"]["prompt_tokens"]
    return tokens


async def usage(
    http: aiohttp.ClientSession, sim: RunningSimulator, body: dict[str, Any]
) -> dict[str, Any]:
    status, _, raw = await post_messages(http, sim, {"model": MODEL, "max_tokens": 5, **body})
    assert status == 200, raw
    found: dict[str, Any] = json.loads(raw)["usage"]
    return found


def counts(found: dict[str, Any]) -> tuple[int, int, int]:
    """(input, cache creation, cache read)."""
    return (
        found["input_tokens"],
        found["cache_creation_input_tokens"],
        found["cache_read_input_tokens"],
    )


def cached_system(question: str, **extra: Any) -> dict[str, Any]:
    return {
        "system": [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": question}],
        **extra,
    }


async def test_a_cached_system_prompt(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    prefix = await prompt_tokens(http, sim, [{"role": "system", "content": SYSTEM}])
    total = await prompt_tokens(
        http, sim, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi?"}]
    )
    first = await usage(http, sim, cached_system("Hi?"))
    assert counts(first) == (total - prefix, prefix, 0)
    assert first["cache_creation"] == {
        "ephemeral_5m_input_tokens": prefix,
        "ephemeral_1h_input_tokens": 0,
    }
    assert counts(await usage(http, sim, cached_system("Hi?"))) == (total - prefix, 0, prefix)
    # another question after the same system prompt reads it too
    other = await usage(http, sim, cached_system("And in Porto, what is the weather like?"))
    assert other["cache_read_input_tokens"] == prefix
    assert other["cache_creation_input_tokens"] == 0
    # another model has its own cache
    elsewhere = await usage(http, sim, cached_system("Hi?", model="other-model"))
    assert counts(elsewhere) == (total - prefix, prefix, 0)
    # so do other tools: they come first in the prefix
    tool = {"name": "t", "input_schema": {"type": "object"}}
    with_tools = await usage(http, sim, cached_system("Hi?", tools=[tool]))
    assert counts(with_tools) == (total - prefix, prefix, 0)


async def test_no_breakpoint_no_cache(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = {"system": SYSTEM, "messages": [{"role": "user", "content": "Hi?"}]}
    total = await prompt_tokens(
        http, sim, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi?"}]
    )
    for _ in range(2):
        assert counts(await usage(http, sim, body)) == (total, 0, 0)


async def test_a_growing_conversation_reads_the_last_turn(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """Turn 2 marks only its last block; Anthropic's lookback finds turn 1's breakpoint."""
    question = {"type": "text", "text": "What is the weather in Lisbon today?"}
    turn_one = [{"role": "user", "content": [{**question, "cache_control": EPHEMERAL}]}]
    one = await prompt_tokens(http, sim, [{"role": "user", "content": question["text"]}])
    assert counts(await usage(http, sim, {"messages": turn_one})) == (0, one, 0)
    turn_two = [
        {"role": "user", "content": [question]},
        {"role": "assistant", "content": "Sunny."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And tomorrow?", "cache_control": EPHEMERAL}],
        },
    ]
    two = await prompt_tokens(
        http,
        sim,
        [
            {"role": "user", "content": question["text"]},
            {"role": "assistant", "content": "Sunny."},
            {"role": "user", "content": "And tomorrow?"},
        ],
    )
    assert counts(await usage(http, sim, {"messages": turn_two})) == (0, two - one, one)
    assert counts(await usage(http, sim, {"messages": turn_two})) == (0, 0, two)


async def test_lookback_reaches_twenty_blocks(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """A cached prefix is found up to 20 blocks before a breakpoint, not 21."""
    head = {"type": "text", "text": "Opening words."}
    cached = [{"role": "user", "content": [{**head, "cache_control": EPHEMERAL}]}]
    one = counts(await usage(http, sim, {"messages": cached}))[1]

    def request(blocks: int) -> dict[str, Any]:
        middle = [{"type": "text", "text": f"word{i} "} for i in range(1, blocks - 1)]
        last = {"type": "text", "text": "last", "cache_control": EPHEMERAL}
        return {"messages": [{"role": "user", "content": [head, *middle, last]}]}

    assert (await usage(http, sim, request(21)))["cache_read_input_tokens"] == one
    assert (await usage(http, sim, request(22)))["cache_read_input_tokens"] == 0


async def test_ttls_split_the_creation(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = {
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {**EPHEMERAL, "ttl": "1h"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi?", "cache_control": {**EPHEMERAL, "ttl": "5m"}}
                ],
            }
        ],
    }
    prefix = await prompt_tokens(http, sim, [{"role": "system", "content": SYSTEM}])
    total = await prompt_tokens(
        http, sim, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi?"}]
    )
    found = await usage(http, sim, body)
    assert counts(found) == (0, total, 0)
    assert found["cache_creation"] == {
        "ephemeral_5m_input_tokens": total - prefix,
        "ephemeral_1h_input_tokens": prefix,
    }


async def test_top_level_cache_control_marks_the_last_block(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    body = {
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "Hi?"}],
        "cache_control": EPHEMERAL,
    }
    total = await prompt_tokens(
        http, sim, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi?"}]
    )
    assert counts(await usage(http, sim, body)) == (0, total, 0)
    assert counts(await usage(http, sim, body)) == (0, 0, total)


async def test_stream_reports_the_cache_and_reset_empties_it(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "max_tokens": 5, "stream": True, **cached_system("Hi?")}
    prefix = await prompt_tokens(http, sim, [{"role": "system", "content": SYSTEM}])
    for read in (False, True):
        _, _, raw = await post_messages(http, sim, body)
        events = sse_events(raw)
        start = events[0][1]["message"]["usage"]
        end = events[-2][1]["usage"]
        expected = (0, prefix) if read else (prefix, 0)
        for found in (start, end):
            pair = (found["cache_creation_input_tokens"], found["cache_read_input_tokens"])
            assert pair == expected
        assert assemble(events)["usage"]["output_tokens"] == 5
    async with http.post(f"{sim.root_url}/sim/reset"):
        pass
    assert counts(await usage(http, sim, cached_system("Hi?")))[1] == prefix
