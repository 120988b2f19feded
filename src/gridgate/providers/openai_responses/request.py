"""How a canonical ``ChatRequest`` becomes a Responses API ``POST /responses`` body (pure).

canonical field                     Responses request               why / note
─────────────────────────────────── ─────────────────────────────── ─────────────────────────
messages: system / developer        input message, same role        parts: input_text
messages: user                      input message, role user        text → input_text, image
                                                                    → input_image, file →
                                                                    input_file
messages: assistant                 its reasoning items (sealed in  see ``reasoning.py``;
                                    thinking_blocks), a message     thinking blocks not
                                    (its text, refusals as text),   sealed by this wire and
                                    function_call items (call_id,   bare reasoning_content
                                    name, arguments)
                                                                    are dropped
messages: tool                      function_call_output (call_id)  text or input_text /
                                                                    input_image parts; a
                                                                    failed tool's output
                                                                    says "Error:"
tools                               function tools (flat)           ``strict`` always sent
                                                                    (the Responses default
                                                                    is true, chat's false)
tool_choice, parallel_tool_calls    same (named → {type, name})
response_format                     text.format                     json_schema flattened
verbosity                           text.verbosity
reasoning_effort / thinking         reasoning.effort, summary auto  a thinking budget → the
                                                                    closest effort
max tokens                          max_output_tokens               the held max, always
temperature, top_p, service_tier,   same
  metadata, prompt_cache_key,
  prompt_cache_retention,
  safety_identifier, user
stream                              stream, stream_options          usage comes with
                                    {include_obfuscation: false}    response.completed
(always)                            store: false, include:          gridgate stores, the
                                    ["reasoning.encrypted_content"] supplier does not; the
                                                                    reasoning comes back
n > 1, stop, logprobs,              Untranslatable                  the Responses API has no
  top_logprobs, logit_bias, audio                                   place for them; without
  output, web_search_options,                                   them the answer is not
  audio input parts, assistant                                  what was asked
  ``audio`` references
seed, frequency/presence_penalty,   dropped                         soft hints with no field
  top_k, prediction, stream_options,
  cache_control, thinking disabled,
  message ``name``
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

import msgspec

from gridgate.errors import Untranslatable
from gridgate.protocol.openai_chat import (
    UNSET,
    AssistantMessage,
    AudioPart,
    ChatRequest,
    Content,
    DeveloperMessage,
    FilePart,
    ImagePart,
    NamedToolChoice,
    RefusalPart,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    ResponseFormatText,
    SystemMessage,
    TextPart,
    ThinkingDisabled,
    ThinkingEnabled,
    ToolMessage,
    UserMessage,
)
from gridgate.providers.base import UpstreamCall
from gridgate.providers.openai import effort_for_budget
from gridgate.providers.openai_responses.reasoning import items_of

INCLUDE: Final = ("reasoning.encrypted_content",)
_encoder: Final = msgspec.json.Encoder()
# set (not null) → dropped: no field on the Responses wire
_DROPPED: Final = ("seed", "frequency_penalty", "presence_penalty", "top_k", "prediction")
_PASSED: Final = (
    "temperature",
    "top_p",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "user",
)


def refuse(param: str, why: str) -> NoReturn:
    raise Untranslatable(f"{param}: {why}", param=param)


def dropped_fields(req: ChatRequest) -> frozenset[str]:
    """The parameters ``req`` sets (not null) that ``map_request`` would drop."""
    dropped = {name for name in _DROPPED if getattr(req, name) not in (UNSET, None)}
    if isinstance(req.thinking, ThinkingDisabled) or (
        isinstance(req.thinking, ThinkingEnabled) and req.reasoning_effort not in (UNSET, None)
    ):
        dropped.add("thinking")
    return frozenset(dropped)


def map_request(call: UpstreamCall) -> bytes:
    """The Responses body for ``call`` (raises ``Untranslatable`` before anything is sent)."""
    req = call.request
    _refuse_untranslatable_fields(req)
    body: dict[str, Any] = {
        "model": call.offer.model,
        "input": map_input(req),
        "max_output_tokens": call.max_output_tokens,
        "store": False,
        "include": list(INCLUDE),
    }
    for name in _PASSED:
        value = getattr(req, name)
        if value is not UNSET and value is not None:
            body[name] = value
    if isinstance(req.metadata, dict) and not call.supplier.zero_retention:
        body["metadata"] = req.metadata
    if req.tools:
        body["tools"] = [_tool(tool.function) for tool in req.tools]
    choice = req.tool_choice
    if isinstance(choice, NamedToolChoice):
        body["tool_choice"] = {"type": "function", "name": choice.function.name}
    elif isinstance(choice, str):
        body["tool_choice"] = choice
    if isinstance(req.parallel_tool_calls, bool):
        body["parallel_tool_calls"] = req.parallel_tool_calls
    text = _text(req)
    if text:
        body["text"] = text
    effort = _effort(req)
    if effort == "none":
        body["reasoning"] = {"effort": effort}  # nothing to summarise
    elif effort is not None:
        body["reasoning"] = {"effort": effort, "summary": "auto"}
    if call.stream:
        body["stream"] = True
        # the deltas are re-encoded, never relayed: padding against length side channels
        # between gridgate and the supplier only costs bytes
        body["stream_options"] = {"include_obfuscation": False}
    return _encoder.encode(body)


def _refuse_untranslatable_fields(req: ChatRequest) -> None:
    if isinstance(req.n, int) and req.n > 1:
        refuse("n", f"a Responses-API supplier gives one answer per request (got {req.n})")
    if req.stop not in (UNSET, None, [], ""):
        refuse("stop", "a Responses-API supplier takes no stop sequences")
    if req.logprobs is True:
        refuse(
            "logprobs", "gridgate does not carry log probabilities from a Responses-API supplier"
        )
    if isinstance(req.top_logprobs, int):
        refuse(
            "top_logprobs",
            "gridgate does not carry log probabilities from a Responses-API supplier",
        )
    if req.logit_bias:
        refuse("logit_bias", "a Responses-API supplier cannot bias tokens")
    if isinstance(req.modalities, list) and "audio" in req.modalities:
        refuse("modalities", "a Responses-API supplier cannot answer with audio")
    if req.audio is not UNSET and req.audio is not None:
        refuse("audio", "a Responses-API supplier cannot answer with audio")
    if req.web_search_options is not UNSET and req.web_search_options is not None:
        refuse("web_search_options", "gridgate does not carry a Responses-API web search")


def _effort(req: ChatRequest) -> str | None:
    if isinstance(req.reasoning_effort, str):
        return req.reasoning_effort
    if isinstance(req.thinking, ThinkingEnabled):
        return effort_for_budget(req.thinking.budget_tokens)
    return None


def _tool(function: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "type": "function",
        "name": function.name,
        "parameters": function.parameters
        if isinstance(function.parameters, dict)
        else {"type": "object", "properties": {}},
        "strict": function.strict is True,
    }
    if isinstance(function.description, str):
        tool["description"] = function.description
    return tool


def _text(req: ChatRequest) -> dict[str, Any]:
    text: dict[str, Any] = {}
    fmt = req.response_format
    if isinstance(fmt, ResponseFormatText):
        text["format"] = {"type": "text"}
    elif isinstance(fmt, ResponseFormatJSONObject):
        text["format"] = {"type": "json_object"}
    elif isinstance(fmt, ResponseFormatJSONSchema):
        spec = fmt.json_schema
        schema: dict[str, Any] = {
            "type": "json_schema",
            "name": spec.name,
            "schema": spec.schema if isinstance(spec.schema, dict) else {"type": "object"},
        }
        if isinstance(spec.description, str):
            schema["description"] = spec.description
        if isinstance(spec.strict, bool):
            schema["strict"] = spec.strict
        text["format"] = schema
    if isinstance(req.verbosity, str):
        text["verbosity"] = req.verbosity
    return text


# the conversation ------------------------------------------------------------------------------
def map_input(req: ChatRequest) -> list[dict[str, Any]]:
    """The messages as Responses input items, in order."""
    items: list[dict[str, Any]] = []
    for i, message in enumerate(req.messages):
        param = f"messages[{i}]"
        match message:
            case SystemMessage() | DeveloperMessage():
                role = "system" if isinstance(message, SystemMessage) else "developer"
                items.append(_message(role, _parts(message.content, param, role="system")))
            case UserMessage():
                items.append(_message("user", _parts(message.content, param, role="user")))
            case AssistantMessage():
                items.extend(_assistant(message, param))
            case ToolMessage():
                items.append(_tool_output(message, param))
    return items


def _message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content}


def _parts(content: Content, param: str, *, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        match part:
            case TextPart():
                parts.append({"type": "input_text", "text": part.text})
            case ImagePart():
                image: dict[str, Any] = {"type": "input_image", "image_url": part.image_url.url}
                image["detail"] = (
                    part.image_url.detail if isinstance(part.image_url.detail, str) else "auto"
                )
                parts.append(image)
            case FilePart():
                ref = part.file
                file: dict[str, Any] = {"type": "input_file"}
                for key in ("file_data", "file_id", "filename"):
                    value = getattr(ref, key)
                    if isinstance(value, str):
                        file[key] = value
                parts.append(file)
            case AudioPart():
                refuse(where, "gridgate does not carry audio input to a Responses-API supplier")
            case RefusalPart():
                parts.append({"type": "input_text", "text": part.refusal})
    return parts


def _assistant(message: AssistantMessage, param: str) -> list[dict[str, Any]]:
    if message.audio is not UNSET and message.audio is not None:
        refuse(f"{param}.audio", "a Responses-API supplier cannot take audio answers back")
    items: list[dict[str, Any]] = list(items_of(message.thinking_blocks or []))
    # an easy input message: the spec's assistant output message needs the id the supplier
    # gave it, which the canonical form does not keep (store is false: no id is looked up)
    texts: list[str] = []
    content = message.content
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, RefusalPart):
                texts.append(part.refusal)
    if isinstance(message.refusal, str):
        texts.append(message.refusal)
    text = "".join(texts)
    if text or not (items or message.tool_calls):
        # a turn that said nothing keeps its place in the conversation, empty
        items.append({"type": "message", "role": "assistant", "content": text})
    for call in message.tool_calls or ():
        items.append(
            {
                "type": "function_call",
                "call_id": call.id,
                "name": call.function.name,
                "arguments": call.function.arguments,
            }
        )
    return items


def _tool_output(message: ToolMessage, param: str) -> dict[str, Any]:
    failed = message.is_error is True
    content = message.content
    output: str | list[dict[str, Any]]
    if isinstance(content, str):
        output = "Error: " + content if failed else content
    else:
        output = _parts(content, param, role="tool")
        if failed:
            output.insert(0, {"type": "input_text", "text": "Error:"})
    return {"type": "function_call_output", "call_id": message.tool_call_id, "output": output}
