"""Which tools an answer calls, from ``tools``, ``tool_choice`` and the conversation.

- ``tool_choice: "none"`` (or no function tools): no call.
- ``"required"``: the first tool; but when the last message is a tool result, the last tool (the
  model goes on to its next step rather than repeat the first: when a caller asks an
  Anthropic-format supplier for structured output beside its own tools, the gateway forces a
  tool call with the answer tool appended last, so the loop ends with the answer).
- ``{"type": "function", "function": {"name": N}}``: tool ``N`` (400 if there is none).
- ``{"type": "allowed_tools", "allowed_tools": {"mode", "tools"}}``: as ``required`` / ``auto``
  over the listed tools.
- ``"auto"`` or absent: no call when the last message is a tool result (the answer then quotes
  it); otherwise the tools the last user message names (all of them when
  ``parallel_tool_calls`` is not ``false``, else the first), or the first tool when it says
  the word "tool"; otherwise no call.

A call's arguments are a deterministic instance of the tool's ``parameters`` schema, unless the
last user message writes the call out as ``NAME({...})`` with a JSON object: then that object
(:func:`given_arguments`), whether or not it fits the schema. An agent under test (Codex CLI
runs the commands its ``exec_command`` tool is given) can so be made to run a harmless command:
``Call exec_command({"cmd": "echo hi"})``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from gridgate.simulator.errors import SimulatorError
from gridgate.simulator.prompt import Prompt
from gridgate.simulator.request import ChatRequest

_TOOL_WORD = re.compile(r"\btools?\b", re.IGNORECASE)


def tool_name(tool: dict[str, Any]) -> str:
    return str(tool["function"]["name"])


def given_arguments(text: str, name: str) -> dict[str, Any] | None:
    """The JSON object written after ``NAME(`` in ``text`` (the first such that parses), if any."""
    decoder = json.JSONDecoder()
    for match in re.finditer(rf"(?<![\w]){re.escape(name)}\(\s*", text):
        try:
            value, _ = decoder.raw_decode(text, match.end())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _listed_name(entry: object) -> str | None:
    """The name in an ``allowed_tools`` entry (``{"type": "function", "function": {"name"}}``)."""
    if not isinstance(entry, dict):
        return None
    function = entry.get("function")
    name = function.get("name") if isinstance(function, dict) else entry.get("name")
    return name if isinstance(name, str) else None


def choose_tools(request: ChatRequest, prompt: Prompt) -> tuple[dict[str, Any], ...]:
    tools = request.tools
    choice = request.tool_choice
    if not tools or choice == "none":
        return ()
    if choice == "required":
        return _required(tools, prompt)
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            function = choice.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            for tool in tools:
                if tool_name(tool) == name:
                    return (tool,)
            raise SimulatorError(
                400,
                f"Invalid value for 'tool_choice': no function named {name!r} is in 'tools'.",
                param="tool_choice",
            )
        if kind == "allowed_tools":
            allowed = choice.get("allowed_tools")
            allowed = allowed if isinstance(allowed, dict) else {}
            names = {_listed_name(t) for t in allowed.get("tools") or []}
            subset = tuple(t for t in tools if tool_name(t) in names)
            if allowed.get("mode") == "required":
                return _required(subset or tools, prompt)
            return _auto(subset, request, prompt)
    return _auto(tools, request, prompt)


def _required(tools: Sequence[dict[str, Any]], prompt: Prompt) -> tuple[dict[str, Any], ...]:
    return (tools[-1],) if prompt.last_role == "tool" else (tools[0],)


def _auto(
    tools: Sequence[dict[str, Any]], request: ChatRequest, prompt: Prompt
) -> tuple[dict[str, Any], ...]:
    if not tools or prompt.last_role == "tool":
        return ()
    text = prompt.last_user_text
    named = tuple(
        t for t in tools if re.search(rf"(?<![\w]){re.escape(tool_name(t))}(?![\w])", text)
    )
    if named:
        return named if request.parallel_tool_calls else named[:1]
    if _TOOL_WORD.search(text):
        return (tools[0],)
    return ()
