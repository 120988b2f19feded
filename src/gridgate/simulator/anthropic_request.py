"""A Messages API request body, read and refused as api.anthropic.com reads and refuses it.

The top level is a closed schema: a field it does not know is a 400 ("n: Extra inputs are not
permitted") — the classic mistake of a gateway that forwards OpenAI fields. Beyond shapes and
ranges, the rules Anthropic enforces that a gateway has to get right:

- ``max_tokens`` is required;
- ``thinking: {"type": "enabled", "budget_tokens": B}`` needs ``1024 <= B < max_tokens``, and
  with thinking on (``enabled`` or ``adaptive``): ``temperature`` only 1, no ``top_k``,
  ``top_p >= 0.95``, and no ``tool_choice`` that forces a tool (``any`` / ``tool``);
- ``tool_choice`` ``tool`` must name a tool in ``tools``; custom tool names match
  ``^[a-zA-Z0-9_-]{1,128}$``, are unique, and ``input_schema.type`` is ``"object"``;
- ``metadata`` holds only ``user_id``.

The request is then seen the way the OpenAI wire's planner reads one (:meth:`planner_view`),
so both wires plan the same answer: ``stop_sequences`` → ``stop``; custom tools → function
tools; ``tool_choice`` auto/any/tool/none → ``"auto"``/``"required"``/named/``"none"`` and
``disable_parallel_tool_use`` → ``parallel_tool_calls: false``; ``output_format`` (or
``output_config.format``) ``json_schema`` → ``response_format`` json_schema; and thinking →
``min(64, budget_tokens // 256)`` reasoning tokens (1024 → 4, 2048 → 8, 4096 → 16, 8192 → 32,
16384 → 64: the OpenAI wire's minimal … xhigh), ``adaptive`` → 16 (medium).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gridgate.simulator.anthropic_blocks import cache_ttl, check_block, refuse
from gridgate.simulator.request import ChatRequest

_FIELDS = frozenset(
    (
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "output_format",
        "output_config",
        "cache_control",
        "container",
        "context_management",
        "mcp_servers",
        "diagnostics",
        "inference_geo",
        "speed",
    )
)
_TOOL_FIELDS = frozenset(
    (
        "type",
        "name",
        "description",
        "input_schema",
        "cache_control",
        "strict",
        "allowed_callers",
        "defer_loading",
        "eager_input_streaming",
        "input_examples",
    )
)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_CHOICE_FIELDS: Mapping[str, frozenset[str]] = {
    "auto": frozenset(("type", "disable_parallel_tool_use")),
    "any": frozenset(("type", "disable_parallel_tool_use")),
    "tool": frozenset(("type", "name", "disable_parallel_tool_use")),
    "none": frozenset(("type",)),
}
_SERVICE_TIERS = ("auto", "standard_only")
MIN_THINKING_BUDGET = 1024
_TOKENS_PER_REASONING_TOKEN = 256
_MAX_REASONING_TOKENS = 64
_ADAPTIVE_REASONING_TOKENS = 16
_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    body: dict[str, Any]
    """The decoded body, as received."""
    model: str
    max_tokens: int
    messages: list[Any]
    """As sent; :mod:`.transcript` checks and reads them."""
    system: str | list[dict[str, Any]]
    """``""`` when absent; text blocks are checked."""
    stop_sequences: tuple[str, ...]
    tools: tuple[dict[str, Any], ...]
    """Every tool as sent (server tools included: they are part of the cached prefix)."""
    custom_tools: tuple[dict[str, Any], ...]
    """The client tools the model may call."""
    tool_choice: dict[str, Any] | None
    thinking: bool
    """Thinking is on (``enabled`` or ``adaptive``): assistant tool turns must start with it."""
    reasoning_length: int
    """Reasoning tokens to plan (0 without thinking)."""
    output_schema: object | None
    """The JSON schema of ``output_format`` / ``output_config.format``, if any."""
    cache_ttl: str | None
    """Top-level ``cache_control``: a breakpoint on the last block of the prompt."""
    stream: bool

    def planner_view(self, messages: list[dict[str, Any]]) -> ChatRequest:
        """The OpenAI-shaped request the planner reads, over the normalised ``messages``."""
        choice = self.tool_choice or {}
        kind = choice.get("type", "auto")
        tool_choice: object = {"any": "required", "none": "none"}.get(kind, "auto")
        if kind == "tool":
            tool_choice = {"type": "function", "function": {"name": choice["name"]}}
        response_format = None
        if self.output_schema is not None:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": self.output_schema},
            }
        return ChatRequest(
            body=self.body,
            model=self.model,
            messages=messages,
            stream=self.stream,
            include_usage=False,
            max_tokens=self.max_tokens,
            stop=self.stop_sequences,
            n=1,
            logprobs=False,
            top_logprobs=0,
            tools=tuple(_function_tool(tool) for tool in self.custom_tools),
            tool_choice=tool_choice,
            parallel_tool_calls=choice.get("disable_parallel_tool_use") is not True,
            response_format=response_format,
            reasoning_effort=None,
            seed=None,
        )


def _function_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def read_messages_request(body: object) -> MessagesRequest:
    if not isinstance(body, dict):
        raise refuse("Input should be a valid dictionary or object")
    for name in body:
        if name not in _FIELDS:
            raise refuse(f"{name}: Extra inputs are not permitted")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise refuse("model: Field required")
    max_tokens = _integer(body, "max_tokens", low=0)
    if max_tokens is None:
        raise refuse("max_tokens: Field required")
    messages = body.get("messages")
    if messages is None:
        raise refuse("messages: Field required")
    if not isinstance(messages, list):
        raise refuse("messages: Input should be a valid list")
    if not messages:
        raise refuse("messages: at least one message is required")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise refuse("stream: Input should be a valid boolean")
    tools, custom = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), custom)
    thinking, reasoning_length = _thinking(body.get("thinking"), max_tokens)
    temperature = _number(body, "temperature")
    top_p = _number(body, "top_p")
    top_k = _integer(body, "top_k", low=0)
    if thinking:
        if temperature is not None and temperature != 1:
            raise refuse(
                "`temperature` may only be set to 1 when thinking is enabled. Please consult "
                f"our documentation at {_THINKING_DOCS}#feature-compatibility"
            )
        if top_k is not None:
            raise refuse(
                "`top_k` must be unset when thinking is enabled. Please consult our "
                f"documentation at {_THINKING_DOCS}#feature-compatibility"
            )
        if top_p is not None and top_p < 0.95:
            raise refuse(
                "`top_p` must be greater than or equal to 0.95 or unset when thinking is "
                f"enabled. Please consult our documentation at {_THINKING_DOCS}"
                "#feature-compatibility"
            )
        if tool_choice is not None and tool_choice["type"] in ("any", "tool"):
            raise refuse("Thinking may not be enabled when tool_choice forces tool use.")
    _metadata(body.get("metadata"))
    tier = body.get("service_tier")
    if tier is not None and tier not in _SERVICE_TIERS:
        raise refuse("service_tier: Input should be 'auto' or 'standard_only'")
    return MessagesRequest(
        body=body,
        model=model,
        max_tokens=max_tokens,
        messages=messages,
        system=_system(body.get("system")),
        stop_sequences=_stop_sequences(body.get("stop_sequences")),
        tools=tools,
        custom_tools=custom,
        tool_choice=tool_choice,
        thinking=thinking,
        reasoning_length=reasoning_length,
        output_schema=_output_schema(body),
        cache_ttl=cache_ttl(body, "") if body.get("cache_control") is not None else None,
        stream=stream,
    )


def _integer(body: Mapping[str, Any], name: str, *, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise refuse(f"{name}: Input should be a valid integer")
    if value < low:
        raise refuse(f"{name}: Input should be greater than or equal to {low}")
    return value


def _number(body: Mapping[str, Any], name: str) -> float | None:
    """``temperature`` / ``top_p``: a number in [0, 1] (Anthropic's range, not OpenAI's 0–2)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refuse(f"{name}: Input should be a valid number")
    if not 0 <= value <= 1:
        raise refuse(
            f"{name}: Input should be less than or equal to 1 and greater than or equal to 0"
        )
    return float(value)


def _system(value: object) -> str | list[dict[str, Any]]:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise refuse("system: Input should be a valid string or a list of text blocks")
    return [
        check_block(block, f"system.{k}", frozenset(("text",))) for k, block in enumerate(value)
    ]


def _stop_sequences(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise refuse("stop_sequences: Input should be a valid list of strings")
    return tuple(item for item in value if item)


def _tools(value: object) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """(every tool, the custom tools); a tool with another ``type`` is a server tool."""
    if value is None:
        return (), ()
    if not isinstance(value, list):
        raise refuse("tools: Input should be a valid list")
    tools: list[dict[str, Any]] = []
    custom: list[dict[str, Any]] = []
    for position, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise refuse(f"tools.{position}: Input should be a valid dictionary or object")
        tools.append(tool)
        if tool.get("type", "custom") != "custom":
            continue
        where = f"tools.{position}.custom"
        for name in tool:
            if name not in _TOOL_FIELDS:
                raise refuse(f"{where}.{name}: Extra inputs are not permitted")
        name = tool.get("name")
        if not isinstance(name, str):
            raise refuse(f"{where}.name: Field required")
        if not _TOOL_NAME.match(name):
            raise refuse(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise refuse(f"{where}.input_schema: Field required")
        if schema.get("type") != "object":
            raise refuse(f"{where}.input_schema.type: Input should be 'object'")
        cache_ttl(tool, where)
        custom.append(tool)
    names = [tool["name"] for tool in custom]
    if len(set(names)) != len(names):
        raise refuse("tools: Tool names must be unique.")
    return tuple(tools), tuple(custom)


def _tool_choice(value: object, tools: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(value, dict) or kind not in _TOOL_CHOICE_FIELDS:
        raise refuse(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'auto', 'any', 'tool', 'none'"
        )
    for name in value:
        if name not in _TOOL_CHOICE_FIELDS[str(kind)]:
            raise refuse(f"tool_choice.{kind}.{name}: Extra inputs are not permitted")
    parallel = value.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise refuse(
            f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean"
        )
    if kind in ("any", "tool") and not tools:
        raise refuse(
            f"tool_choice.{kind}: tool_choice may only be specified while providing tools."
        )
    if kind == "tool":
        name = value.get("name")
        if not isinstance(name, str):
            raise refuse("tool_choice.tool.name: Field required")
        if all(tool["name"] != name for tool in tools):
            raise refuse(f"tool_choice.tool.name: Tool '{name}' not found in tools.")
    return value


def _thinking(value: object, max_tokens: int) -> tuple[bool, int]:
    """(thinking on, reasoning tokens to plan)."""
    if value is None:
        return False, 0
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(value, dict) or kind not in ("enabled", "disabled", "adaptive"):
        raise refuse(
            f"thinking: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'adaptive', 'disabled', 'enabled'"
        )
    if kind == "disabled":
        return False, 0
    if kind == "adaptive":
        return True, _ADAPTIVE_REASONING_TOKENS
    budget = _integer(value, "budget_tokens", low=0)
    if budget is None:
        raise refuse("thinking.enabled.budget_tokens: Field required")
    if budget < MIN_THINKING_BUDGET:
        raise refuse(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{MIN_THINKING_BUDGET}"
        )
    if max_tokens <= budget:
        raise refuse(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            f"documentation at {_THINKING_DOCS}#max-tokens-and-context-window-size"
        )
    return True, min(_MAX_REASONING_TOKENS, budget // _TOKENS_PER_REASONING_TOKEN)


def _metadata(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise refuse("metadata: Input should be a valid dictionary or object")
    for name in value:
        if name != "user_id":
            raise refuse(f"metadata.{name}: Extra inputs are not permitted")
    user = value.get("user_id")
    if user is not None and not isinstance(user, str):
        raise refuse("metadata.user_id: Input should be a valid string")


def _output_schema(body: Mapping[str, Any]) -> object | None:
    output = body.get("output_format")
    config = body.get("output_config")
    if output is None and isinstance(config, dict):
        output = config.get("format")
    if output is None:
        return None
    if not isinstance(output, dict) or output.get("type") != "json_schema":
        raise refuse("output_format: Input tag does not match the expected tag: 'json_schema'")
    schema = output.get("schema")
    if not isinstance(schema, dict):
        raise refuse("output_format.json_schema.schema: Field required")
    return schema
