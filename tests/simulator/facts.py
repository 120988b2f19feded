"""What an answer says, wire-neutral: read from either wire, plain or streamed, over raw HTTP.

Stop reasons are said in the Messages API's words (``end_turn``, ``stop_sequence``,
``max_tokens``, ``tool_use``); an OpenAI answer's ``finish_reason`` is mapped, with vLLM's
``stop_reason`` telling a stop sequence from a natural end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gridgate.simulator import RunningSimulator
from tests.simulator.helpers import post, post_messages
from tests.simulator.sse import assemble, sse_chunks, sse_events

MODEL = "sim-model"
_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


@dataclass
class Facts:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)
    stop: str = ""
    stop_sequence: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}  # a cut argument: the Anthropic wire gives {} for it


def _stop(finish: str, stop_reason: Any) -> tuple[str, str | None]:
    if finish == "stop" and isinstance(stop_reason, str):
        return "stop_sequence", stop_reason
    return _FINISH[finish], None


async def openai_facts(
    http: aiohttp.ClientSession, sim: RunningSimulator, body: dict[str, Any], *, stream: bool
) -> Facts:
    body = {"model": MODEL, **body}
    if stream:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    status, _, raw = await post(http, sim, body)
    assert status == 200, raw
    facts = Facts()
    if not stream:
        answer = json.loads(raw)
        (choice,) = answer["choices"]
        message = choice["message"]
        facts.text = message["content"] or ""
        facts.reasoning = message.get("reasoning_content", "")
        facts.tool_calls = [
            (call["function"]["name"], _arguments(call["function"]["arguments"]))
            for call in message.get("tool_calls", [])
        ]
        facts.stop, facts.stop_sequence = _stop(choice["finish_reason"], choice.get("stop_reason"))
        facts.prompt_tokens = answer["usage"]["prompt_tokens"]
        facts.completion_tokens = answer["usage"]["completion_tokens"]
        return facts
    calls: dict[int, list[str]] = {}
    for chunk in sse_chunks(raw):
        if chunk.get("usage"):
            facts.prompt_tokens = chunk["usage"]["prompt_tokens"]
            facts.completion_tokens = chunk["usage"]["completion_tokens"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            facts.text += delta.get("content") or ""
            facts.reasoning += delta.get("reasoning_content", "")
            for call in delta.get("tool_calls", []):
                entry = calls.setdefault(call["index"], ["", ""])
                entry[0] += call["function"].get("name", "")
                entry[1] += call["function"].get("arguments", "")
            if choice["finish_reason"] is not None:
                facts.stop, facts.stop_sequence = _stop(
                    choice["finish_reason"], choice.get("stop_reason")
                )
    facts.tool_calls = [(name, _arguments(args)) for name, args in calls.values()]
    return facts


async def anthropic_message(
    http: aiohttp.ClientSession, sim: RunningSimulator, body: dict[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The message of a successful request, plain or assembled from its stream."""
    status, _, raw = await post_messages(http, sim, {"model": MODEL, **body, "stream": stream})
    assert status == 200, raw
    if stream:
        return assemble(sse_events(raw))
    message: dict[str, Any] = json.loads(raw)
    return message


def message_facts(message: dict[str, Any]) -> Facts:
    facts = Facts()
    for block in message["content"]:
        if block["type"] == "text":
            facts.text += block["text"]
        elif block["type"] == "thinking":
            facts.reasoning += block["thinking"]
        else:
            assert block["type"] == "tool_use", block
            facts.tool_calls.append((block["name"], block["input"]))
    facts.stop = message["stop_reason"]
    facts.stop_sequence = message["stop_sequence"]
    usage = message["usage"]
    facts.prompt_tokens = (
        usage["input_tokens"]
        + usage["cache_creation_input_tokens"]
        + usage["cache_read_input_tokens"]
    )
    facts.completion_tokens = usage["output_tokens"]
    return facts


async def anthropic_facts(
    http: aiohttp.ClientSession, sim: RunningSimulator, body: dict[str, Any], *, stream: bool
) -> Facts:
    return message_facts(await anthropic_message(http, sim, body, stream=stream))
