"""A Responses API request (``POST /v1/responses``), read as the simulator's planner sees it.

The body is turned into the chat completion body the OpenAI wire's planner reads
(:mod:`.request`), so the same conversation plans the same answer on every wire:

    instructions                      a system message first
    input (string)                    one user message
    message items                     messages of their role; input_text / output_text parts
                                      are its text (images and files count for nothing)
    function_call items               an assistant message's tool calls (consecutive ones,
                                      and the assistant text before them, form one message)
    function_call_output items        tool messages (``call_id``)
    reasoning items                   nothing (the planner reads no earlier reasoning); an
                                      ``encrypted_content`` the simulator did not write, or
                                      altered, is refused with 400 as OpenAI refuses it
    tools (function)                  function tools; other tool types are ignored
    tool_choice, parallel_tool_calls  the same, named choice as ``{"type": "function", …}``
    text.format                       response_format
    reasoning.effort                  reasoning_effort
    max_output_tokens                 max_tokens

``store`` and ``previous_response_id``: the simulator keeps nothing, so ``previous_response_id``
is refused (400) — a gateway must send the whole conversation with ``store: false``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import msgspec

from gridgate.simulator.errors import SimulatorError
from gridgate.simulator.request import ChatRequest, read_request
from gridgate.simulator.signature import ThinkingSigner

_SEALED = "sim-enc1."


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    chat: ChatRequest
    """The planner's view (its ``body`` is the Responses body as received)."""
    summary: bool
    """``reasoning.summary`` asks for a summary: the reasoning is shown in it."""
    encrypted: bool
    """``include`` asks for ``reasoning.encrypted_content``."""
    echo: dict[str, Any]
    """The request's fields a ``Response`` repeats (instructions, tools, temperature…)."""


def seal_reasoning(signer: ThinkingSigner, item_id: str, text: str) -> str:
    """The ``encrypted_content`` of a reasoning item: its text, signed (not encrypted)."""
    payload = base64.urlsafe_b64encode(msgspec.json.encode({"id": item_id, "text": text}))
    body = payload.decode()
    return f"{_SEALED}{body}.{signer.sign(body)}"


def _check_sealed(signer: ThinkingSigner, value: str, param: str) -> None:
    body, _, signature = value.removeprefix(_SEALED).rpartition(".")
    valid = value.startswith(_SEALED) and body and signer.verify(body, signature)
    if valid:
        try:
            base64.urlsafe_b64decode(body)
        except (binascii.Error, ValueError):
            valid = False
    if not valid:
        raise SimulatorError(
            400,
            "The encrypted content for item could not be verified.",
            param=param,
            code="invalid_encrypted_content",
        )


def read_responses_request(body: object, signer: ThinkingSigner) -> ResponsesRequest:
    if not isinstance(body, dict):
        raise SimulatorError(400, "The request body must be a JSON object.")
    if body.get("previous_response_id") is not None:
        raise SimulatorError(
            400,
            f"Previous response with id '{body['previous_response_id']}' not found.",
            param="previous_response_id",
        )
    messages = _messages(body, signer)
    chat_body: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for name in ("stream", "parallel_tool_calls", "tool_choice"):
        if name in body:
            chat_body[name] = body[name]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat_body["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif isinstance(choice, dict):
        chat_body["tool_choice"] = "auto"
    if "max_output_tokens" in body and body["max_output_tokens"] is not None:
        chat_body["max_tokens"] = body["max_output_tokens"]
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise SimulatorError(400, "'tools' must be an array", param="tools")
        chat_body["tools"] = [_function_tool(tool) for tool in tools if _is_function(tool)]
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat_body["response_format"] = {
            "type": "json_schema",
            "json_schema": {k: v for k, v in fmt.items() if k != "type"},
        }
    elif isinstance(fmt, dict):
        chat_body["response_format"] = {"type": fmt.get("type", "text")}
    reasoning = body.get("reasoning")
    summary = False
    if isinstance(reasoning, dict):
        if isinstance(reasoning.get("effort"), str):
            chat_body["reasoning_effort"] = reasoning["effort"]
        summary = reasoning.get("summary") in ("auto", "concise", "detailed")
    chat = read_request(chat_body)
    include = body.get("include")
    encrypted = isinstance(include, list) and "reasoning.encrypted_content" in include
    echo = {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": chat.parallel_tool_calls,
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools or [],
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "reasoning": {
            "effort": chat.reasoning_effort,
            "summary": reasoning.get("summary") if isinstance(reasoning, dict) else None,
        },
        "store": body.get("store", True),
    }
    if isinstance(body.get("user"), str):
        echo["user"] = body["user"]
    return ResponsesRequest(chat=chat, summary=summary, encrypted=encrypted, echo=echo)


def _is_function(tool: object) -> bool:
    return isinstance(tool, dict) and tool.get("type") == "function"


def _function_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _messages(body: dict[str, Any], signer: ThinkingSigner) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    if not isinstance(items, list):
        raise SimulatorError(400, "'input' must be a string or an array", param="input")
    for position, item in enumerate(items):
        param = f"input[{position}]"
        if not isinstance(item, dict):
            raise SimulatorError(400, "each input item must be an object", param=param)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": str(item.get("role", "user")), "content": _text(item)})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant":
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            content = output if isinstance(output, str) else _parts_text(output)
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": content}
            )
        elif kind == "reasoning":
            sealed = item.get("encrypted_content")
            if isinstance(sealed, str):
                _check_sealed(signer, sealed, f"{param}.encrypted_content")
        else:
            raise SimulatorError(400, f"Invalid input item type: {kind!r}", param=f"{param}.type")
    return messages


def _text(item: dict[str, Any]) -> str:
    content = item.get("content")
    return content if isinstance(content, str) else _parts_text(content)


def _parts_text(parts: object) -> str:
    if not isinstance(parts, list):
        return ""
    texts = []
    for part in parts:
        if isinstance(part, dict):
            value = part.get("text", part.get("refusal"))
            if isinstance(value, str):
                texts.append(value)
    return "".join(texts)
