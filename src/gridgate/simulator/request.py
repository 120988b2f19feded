"""A loose, typed view of a chat completion request body.

The simulator stands upstream of a gateway that has already validated the request, so it
reads only the fields it honours, tolerates everything else, and refuses only values it
cannot work with (400, OpenAI error shape, naming the field).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from gridgate.simulator.errors import SimulatorError

MAX_CHOICES = 128
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True, slots=True)
class ChatRequest:
    body: dict[str, Any]
    """The decoded body, as received (kept for ``/sim/stats``)."""
    model: str
    messages: list[Any]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    """``max_completion_tokens``, else ``max_tokens``; ``None`` when neither is given."""
    stop: tuple[str, ...]
    n: int
    logprobs: bool
    top_logprobs: int
    tools: tuple[dict[str, Any], ...]
    """Function tools (``{"type": "function", "function": {...}}``) only."""
    tool_choice: object
    parallel_tool_calls: bool
    response_format: dict[str, Any] | None
    reasoning_effort: str | None
    seed: int | None


_decoder = msgspec.json.Decoder()


def decode_body(raw: bytes) -> object:
    """The JSON body, decoded once (400 when it is not JSON)."""
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise SimulatorError(
            400, f"We could not parse the JSON body of your request: {exc}"
        ) from exc


def read_request(body: object) -> ChatRequest:
    if not isinstance(body, dict):
        raise SimulatorError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise SimulatorError(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise SimulatorError(400, "'messages' is a required property", param="messages")
    stream = _bool(body, "stream")
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    max_tokens = _int(body, "max_completion_tokens", low=1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", low=1)
    n = _int(body, "n", low=1, high=MAX_CHOICES)
    top_logprobs = _int(body, "top_logprobs", low=0, high=MAX_TOP_LOGPROBS)
    parallel = body.get("parallel_tool_calls")
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise SimulatorError(400, "'response_format' must be an object", param="response_format")
    effort = body.get("reasoning_effort")
    return ChatRequest(
        body=body,
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        stop=_stop(body.get("stop")),
        n=1 if n is None else n,
        logprobs=_bool(body, "logprobs"),
        top_logprobs=top_logprobs or 0,
        tools=_tools(body.get("tools")),
        tool_choice=body.get("tool_choice"),
        parallel_tool_calls=parallel is not False,
        response_format=response_format,
        reasoning_effort=effort if isinstance(effort, str) else None,
        seed=_int(body, "seed"),
    )


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SimulatorError(400, f"'{name}' must be a boolean", param=name)
    return value


def _int(
    body: dict[str, Any], name: str, *, low: int | None = None, high: int | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SimulatorError(400, f"'{name}' must be an integer", param=name)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SimulatorError(400, f"'{name}' must be {bounds}, got {value}", param=name)
    return value


def _stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item for item in value if item)
    raise SimulatorError(400, "'stop' must be a string or an array of strings", param="stop")


def _tools(value: object) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SimulatorError(400, "'tools' must be an array", param="tools")
    tools: list[dict[str, Any]] = []
    for position, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise SimulatorError(400, "each tool must be an object", param=f"tools.{position}")
        function = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            continue
        if not isinstance(function.get("name"), str):
            raise SimulatorError(
                400, "a function tool needs a name", param=f"tools.{position}.function.name"
            )
        tools.append(tool)
    return tuple(tools)
