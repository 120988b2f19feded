"""The Anthropic Messages wire format: Anthropic's API and servers that speak it.

Core speaks the canonical form (OpenAI chat completions plus the extensions documented in
``protocol/openai_chat.py``). This adapter maps a ``ChatRequest`` to an Anthropic ``/messages``
body, and the answer — a ``message`` or its event stream — back to a canonical
``chat.completion`` body or ``chat.completion.chunk`` events, metered. The mapping tables are the
contract's (issue 5): stop reasons, usage, tool choice, tools, thinking budget, messages,
images, files, response_format as a forced tool.

What the request mapping does with each canonical field that Anthropic has no place for:

    field                               decision        why
    ─────────────────────────────────── ─────────────── ───────────────────────────────────────────
    n > 1                               Untranslatable  one answer per call; several would
                                                        change what the caller gets
    logprobs true / top_logprobs        Untranslatable  Anthropic returns no log probabilities
    logit_bias (non-empty)              Untranslatable  steers the tokens; without it the answer
                                                        is not what was asked for
    modalities containing "audio",      Untranslatable  no audio output
      audio (output parameters)
    web_search_options                  Untranslatable  search changes the answer; gridgate
                                                        carries no server-tool blocks
    audio input parts, file_id files,   Untranslatable  no audio input; no access to the
      assistant ``audio`` references                    caller's OpenAI files
    files other than PDF / plain text   Untranslatable  Anthropic documents are PDF or text
    images neither data: nor http(s),   Untranslatable  no source type for them
      or not jpeg/png/gif/webp
    tool call arguments not an object   Untranslatable  ``tool_use.input`` is a JSON object
    temperature > 1                     Untranslatable  Anthropic's range is 0..1; clamping
                                                        would change the sampling asked for
    thinking (explicit) with forced     Untranslatable  Anthropic cannot think while a tool
      tool use, temperature ≠ 1, top_k,                 call is forced or with those sampling
      or top_p < 0.95                                   settings; the caller asked for both
    a conversation of system messages   Untranslatable  Anthropic needs a user or assistant
      only                                              message
    seed                                dropped         best-effort determinism; no field
    frequency/presence_penalty          dropped         soft sampling hints; no field
    service_tier                        dropped         OpenAI's pricing tiers; the offer prices
    store, metadata                     dropped         OpenAI-side storage and its labels
    prompt_cache_key,                   dropped         cache routing hints; Anthropic caches by
      prompt_cache_retention                            ``cache_control`` breakpoints (carried)
    verbosity                           dropped         a style hint; no field
    prediction                          dropped         a latency hint: the answer is the same
                                                        without it (and no rejected prediction
                                                        tokens are billed)
    stream_options                      dropped         Anthropic streams always carry usage
    reasoning_effort                    → thinking      budget per the contract table; no
                                                        thinking when it would conflict with forced
                                                        tool use or the sampling settings above
                                                        (the effort is a hint, those are not)
    reasoning_content without           dropped         Anthropic takes earlier reasoning back
      thinking_blocks, thinking blocks                  only with its signature
      without a signature
    name (on messages)                  dropped         no per-message names
    image_url.detail                    dropped         a rendering hint
    empty text (content "" or parts)    dropped         Anthropic rejects empty text blocks; an
                                                        empty text says nothing
    provider, route, model, max_tokens, replaced        gateway fields; ``model`` is the offer's
      max_completion_tokens                             model, ``max_tokens`` the held max

Tool call ids the Anthropic wire cannot carry (it takes ``[a-zA-Z0-9_-]+``; other suppliers'
ids may hold ``.`` or ``:``) are replaced by a stable digest, the same in the ``tool_use`` and
its ``tool_result``. An explicit thinking budget under Anthropic's minimum (1024) is raised to it.

The answer: an unknown or server-tool content block (``server_tool_use``,
``web_search_tool_result``…) raises ``SupplierFailed`` naming its type, so the next offer serves:
gridgate never asks for those, and a block it cannot carry must not disappear. Citations on
text are not carried (gridgate never enables them; the text itself is complete). An unknown
stop reason maps to ``stop``. Unknown stream event types are ignored, as Anthropic's versioning
policy asks; ``ping`` makes no chunk; an ``error`` event is the supplier's failure.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final, Literal, NoReturn

import aiohttp
import msgspec

from gridgate.errors import SupplierFailed, SupplierTimeout, Untranslatable, UpstreamRejected
from gridgate.protocol.openai_chat import (
    UNSET,
    AssistantMessage,
    AudioPart,
    CacheControl,
    ChatRequest,
    ContentPart,
    DeveloperMessage,
    FilePart,
    ImagePart,
    Message,
    NamedToolChoice,
    RedactedThinkingBlock,
    RefusalPart,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    SystemMessage,
    TextPart,
    ThinkingBlock,
    ThinkingDisabled,
    ThinkingEnabled,
    ToolMessage,
    UnsetType,
    UserMessage,
)
from gridgate.protocol.sse import SSEEvent, SSEParser
from gridgate.protocol.tokens import tokens_for_bytes, utf8_length
from gridgate.providers.base import Chunk, Completion, UpstreamCall, Usage

# shared with the OpenAI wire until they move to a common module
from gridgate.providers.failures import error_message, translate_errors
from gridgate.settings import UpstreamSettings
from gridgate.storage.records import SupplierRecord

ANTHROPIC_VERSION: Final = "2023-06-01"
MIN_THINKING_BUDGET: Final = 1024
JSON_TOOL_DESCRIPTION: Final = "Respond with a JSON document"
JSON_OBJECT_TOOL: Final = "json_object"

# reasoning_effort → thinking budget (tokens); "none" means no thinking
EFFORT_BUDGET: Final[Mapping[str, int]] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 4096,
    "high": 8192,
    "xhigh": 16384,
    "max": 16384,
}
# Anthropic stop reason → canonical finish_reason ("tool_use" is decided per answer)
FINISH_REASON: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_TOOL_ID: Final = re.compile(r"[a-zA-Z0-9_-]+")
_PDF_BASE64: Final = "JVBERi0"  # base64 of "%PDF-"
_encoder: Final = msgspec.json.Encoder()


# -- the Anthropic request (only what gridgate sends) ----------------------------------------
class _Out(msgspec.Struct, omit_defaults=True, kw_only=True):
    pass


class _Base64Source(_Out, tag="base64", tag_field="type"):
    media_type: str
    data: str


class _URLSource(_Out, tag="url", tag_field="type"):
    url: str


class _TextSource(_Out, tag="text", tag_field="type"):
    media_type: str
    data: str


class _Text(_Out, tag="text", tag_field="type"):
    text: str
    cache_control: CacheControl | UnsetType = UNSET


class _Image(_Out, tag="image", tag_field="type"):
    source: _Base64Source | _URLSource
    cache_control: CacheControl | UnsetType = UNSET


class _Document(_Out, tag="document", tag_field="type"):
    source: _Base64Source | _TextSource
    title: str | UnsetType = UNSET
    cache_control: CacheControl | UnsetType = UNSET


class _Thinking(_Out, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class _RedactedThinking(_Out, tag="redacted_thinking", tag_field="type"):
    data: str


class _ToolUse(_Out, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


_ResultPart = _Text | _Image | _Document


class _ToolResult(_Out, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[_ResultPart] | UnsetType = UNSET
    is_error: bool | UnsetType = UNSET


_Block = _Text | _Image | _Document | _Thinking | _RedactedThinking | _ToolUse | _ToolResult


class _Message(_Out):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _Tool(_Out, kw_only=True):
    name: str
    description: str | UnsetType = UNSET
    input_schema: dict[str, Any]
    strict: bool | UnsetType = UNSET
    cache_control: CacheControl | UnsetType = UNSET


class _ToolChoice(_Out):
    type: Literal["auto", "any", "tool", "none"]
    name: str | UnsetType = UNSET
    disable_parallel_tool_use: bool | UnsetType = UNSET


class _ThinkingConfig(_Out):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | UnsetType = UNSET


class _Metadata(_Out):
    user_id: str


class _Body(_Out, kw_only=True):
    model: str
    max_tokens: int
    system: str | list[_Text] | UnsetType = UNSET
    messages: list[_Message]
    stop_sequences: list[str] | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    top_k: int | UnsetType = UNSET
    metadata: _Metadata | UnsetType = UNSET
    tools: list[_Tool] | UnsetType = UNSET
    tool_choice: _ToolChoice | UnsetType = UNSET
    thinking: _ThinkingConfig | UnsetType = UNSET
    stream: bool | UnsetType = UNSET


# -- the Anthropic answer (read leniently: every field optional, checked where used) ----------
class _OutputDetails(msgspec.Struct):
    thinking_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: _OutputDetails | None = None


class _ContentBlock(msgspec.Struct):
    type: str
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None


class _AnswerMessage(msgspec.Struct):
    id: str
    model: str
    content: list[_ContentBlock]
    type: str = "message"
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class _StartMessage(msgspec.Struct):
    id: str
    model: str
    usage: _Usage | None = None


class _StreamError(msgspec.Struct):
    type: str = "error"


class _Event(msgspec.Struct):
    type: str
    message: _StartMessage | None = None
    index: int | None = None
    content_block: _ContentBlock | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _StreamError | None = None


_answer_decoder: Final = msgspec.json.Decoder(_AnswerMessage)
_event_decoder: Final = msgspec.json.Decoder(_Event)


# -- pure mapping: the request -----------------------------------------------------------------
def map_request(call: UpstreamCall) -> bytes:
    """The Anthropic body for ``call``. Raises ``Untranslatable`` (naming the part) for anything
    the Anthropic wire cannot carry; nothing is sent then."""
    req = call.request
    _refuse_untranslatable_fields(req)
    system, messages = _map_messages(req.messages)
    tools, tool_choice = _map_tools(req)
    body = _Body(
        model=call.offer.model,
        max_tokens=call.max_output_tokens,
        system=system,
        messages=messages,
        thinking=_map_thinking(req, call.max_output_tokens, tool_choice),
    )
    if tools:
        body.tools = tools
    if tool_choice is not None:
        body.tool_choice = tool_choice
    stop = req.stop_list
    if stop:
        body.stop_sequences = stop
    if isinstance(req.temperature, float | int):
        if req.temperature > 1:
            _refuse("temperature", f"Anthropic accepts 0 to 1 (got {req.temperature})")
        body.temperature = req.temperature
    if isinstance(req.top_p, float | int):
        body.top_p = req.top_p
    if isinstance(req.top_k, int):
        body.top_k = req.top_k
    user = req.safety_identifier if isinstance(req.safety_identifier, str) else req.user
    if isinstance(user, str) and user:
        body.metadata = _Metadata(user_id=user)
    if call.stream:
        body.stream = True
    return _encoder.encode(body)


def json_tool_name(req: ChatRequest) -> str | None:
    """The name of the tool that carries a JSON answer (``response_format`` json_schema or
    json_object), or None when the caller asked for none."""
    fmt = req.response_format
    if isinstance(fmt, ResponseFormatJSONSchema):
        return fmt.json_schema.name
    if isinstance(fmt, ResponseFormatJSONObject):
        return JSON_OBJECT_TOOL
    return None


def _refuse(param: str, why: str) -> NoReturn:
    raise Untranslatable(f"{param}: {why}", param=param)


def _refuse_untranslatable_fields(req: ChatRequest) -> None:
    if isinstance(req.n, int) and req.n > 1:
        _refuse("n", f"an Anthropic-format supplier gives one answer per request (got {req.n})")
    if req.logprobs is True:
        _refuse("logprobs", "an Anthropic-format supplier returns no log probabilities")
    if isinstance(req.top_logprobs, int):
        _refuse("top_logprobs", "an Anthropic-format supplier returns no log probabilities")
    if req.logit_bias:
        _refuse("logit_bias", "an Anthropic-format supplier cannot bias tokens")
    if isinstance(req.modalities, list) and "audio" in req.modalities:
        _refuse("modalities", "an Anthropic-format supplier cannot answer with audio")
    if req.audio is not UNSET and req.audio is not None:
        _refuse("audio", "an Anthropic-format supplier cannot answer with audio")
    if req.web_search_options is not UNSET and req.web_search_options is not None:
        _refuse("web_search_options", "gridgate cannot carry an Anthropic-format web search")


# messages ---------------------------------------------------------------------------------------
def _map_messages(
    messages: list[Message],
) -> tuple[str | list[_Text] | UnsetType, list[_Message]]:
    """System and developer messages (wherever they are) become ``system``; the rest become
    alternating user/assistant turns (consecutive same-role messages merged)."""
    system: list[_Text] = []
    system_all_strings = True
    out: list[_Message] = []
    for i, message in enumerate(messages):
        match message:
            case SystemMessage() | DeveloperMessage():
                if isinstance(message.content, str):
                    if message.content:
                        system.append(_Text(text=message.content))
                else:
                    system_all_strings = False
                    system.extend(
                        _system_part(part, f"messages[{i}].content[{j}]")
                        for j, part in enumerate(message.content)
                        if not (isinstance(part, TextPart) and not part.text)
                    )
            case UserMessage():
                _push(out, "user", _user_content(message.content, f"messages[{i}]"))
            case AssistantMessage():
                _push(out, "assistant", _assistant_content(message, f"messages[{i}]"))
            case ToolMessage():
                _push(out, "user", [_tool_result(message, f"messages[{i}]")])
    if not out:
        _refuse("messages", "an Anthropic-format supplier needs a user or assistant message")
    if not system:
        return UNSET, out
    if system_all_strings:
        return "\n\n".join(block.text for block in system), out
    return system, out


def _push(
    out: list[_Message], role: Literal["user", "assistant"], content: str | list[_Block]
) -> None:
    if not content:
        return
    if out and out[-1].role == role:
        last = out[-1]
        blocks: list[_Block] = (
            [_Text(text=last.content)] if isinstance(last.content, str) else last.content
        )
        blocks.extend([_Text(text=content)] if isinstance(content, str) else content)
        last.content = blocks
    else:
        out.append(_Message(role=role, content=content))


def _cache(value: CacheControl | UnsetType | None) -> CacheControl | UnsetType:
    return value if isinstance(value, CacheControl) else UNSET


def _system_part(part: ContentPart, param: str) -> _Text:
    if isinstance(part, TextPart):
        return _Text(text=part.text, cache_control=_cache(part.cache_control))
    _refuse(param, f"a system message can only carry text (got '{part.__struct_config__.tag}')")


def _user_content(content: str | list[ContentPart], param: str) -> str | list[_Block]:
    if isinstance(content, str):
        return content
    blocks: list[_Block] = []
    for j, part in enumerate(content):
        block = _part(part, f"{param}.content[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _part(part: ContentPart, param: str) -> _Text | _Image | _Document | None:
    """A user (or tool result) content part as an Anthropic block; None for an empty text."""
    match part:
        case TextPart():
            if not part.text:
                return None
            return _Text(text=part.text, cache_control=_cache(part.cache_control))
        case ImagePart():
            return _Image(
                source=_image_source(part.image_url.url, f"{param}.image_url.url"),
                cache_control=_cache(part.cache_control),
            )
        case FilePart():
            return _document(part, param)
        case AudioPart():
            _refuse(param, "an Anthropic-format supplier cannot take audio input")
        case RefusalPart():
            _refuse(param, "a refusal part can only be in an assistant message")


def _data_url(url: str) -> tuple[str, str] | None:
    """``(media type, base64 data)`` of a base64 ``data:`` URL, else None."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    params = header.split(";")
    if not comma or "base64" not in params[1:]:
        return None
    return params[0].strip().lower(), data


def _image_source(url: str, param: str) -> _Base64Source | _URLSource:
    if url.startswith("data:"):
        parsed = _data_url(url)
        if parsed is None:
            _refuse(param, "an image data: URL must be base64 (data:<media type>;base64,…)")
        media_type, data = parsed
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if media_type not in _IMAGE_TYPES:
            _refuse(
                param,
                f"an Anthropic-format supplier takes jpeg, png, gif or webp images "
                f"(got {media_type!r})",
            )
        return _Base64Source(media_type=media_type, data=data)
    scheme = url[:8].lower()
    if scheme.startswith(("http://", "https://")):
        return _URLSource(url=url)
    _refuse(param, "an image must be a data: URL or an http(s) URL")


def _document(part: FilePart, param: str) -> _Document:
    file = part.file
    if isinstance(file.file_id, str):
        _refuse(f"{param}.file.file_id", "an Anthropic-format supplier cannot read file ids")
    data = file.file_data
    if not isinstance(data, str):
        _refuse(f"{param}.file", "must have file_data")
    title = file.filename if isinstance(file.filename, str) and file.filename else UNSET
    source: _Base64Source | _TextSource
    parsed = _data_url(data)
    if parsed is None and data.startswith(_PDF_BASE64):
        parsed = ("application/pdf", data)
    if parsed is not None and parsed[0] == "application/pdf":
        source = _Base64Source(media_type="application/pdf", data=parsed[1])
    elif parsed is not None and parsed[0] == "text/plain":
        try:
            text = base64.b64decode(parsed[1], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            _refuse(f"{param}.file.file_data", "is not base64 of UTF-8 text")
        source = _TextSource(media_type="text/plain", data=text)
    else:
        kind = repr(parsed[0]) if parsed is not None else "not a PDF"
        _refuse(
            f"{param}.file.file_data",
            f"an Anthropic-format supplier takes PDF or plain-text files (got {kind})",
        )
    return _Document(source=source, title=title, cache_control=_cache(part.cache_control))


def _assistant_content(message: AssistantMessage, param: str) -> str | list[_Block]:
    if message.audio is not UNSET and message.audio is not None:
        _refuse(f"{param}.audio", "an Anthropic-format supplier cannot take audio answers back")
    content = message.content
    if (
        isinstance(content, str)
        and not message.thinking_blocks
        and not message.tool_calls
        and not message.refusal
    ):
        return content
    blocks: list[_Block] = []
    for block in message.thinking_blocks or ():
        match block:
            case ThinkingBlock():
                if isinstance(block.signature, str) and block.signature:
                    blocks.append(_Thinking(thinking=block.thinking, signature=block.signature))
            case RedactedThinkingBlock():
                blocks.append(_RedactedThinking(data=block.data))
    if isinstance(content, str):
        if content:
            blocks.append(_Text(text=content))
    elif isinstance(content, list):
        for j, part in enumerate(content):
            match part:
                case TextPart():
                    if part.text:
                        blocks.append(
                            _Text(text=part.text, cache_control=_cache(part.cache_control))
                        )
                case RefusalPart():
                    if part.refusal:
                        blocks.append(_Text(text=part.refusal))
                case _:
                    _refuse(
                        f"{param}.content[{j}]",
                        "an assistant message can only carry text and refusal parts",
                    )
    if isinstance(message.refusal, str) and message.refusal:
        blocks.append(_Text(text=message.refusal))
    for k, call in enumerate(message.tool_calls or ()):
        blocks.append(
            _ToolUse(
                id=_tool_id(call.id),
                name=call.function.name,
                input=_tool_input(
                    call.function.arguments, f"{param}.tool_calls[{k}].function.arguments"
                ),
            )
        )
    return blocks


def _tool_id(value: str) -> str:
    """The id as Anthropic takes it: as is when it can, else a stable digest of it."""
    if _TOOL_ID.fullmatch(value):
        return value
    return "toolu_gg" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _tool_input(arguments: str, param: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}  # some clients send "" for a call without arguments
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        _refuse(param, "must be a JSON object (it is not valid JSON)")
    if not isinstance(value, dict):
        _refuse(param, "must be a JSON object for an Anthropic-format supplier")
    return value


def _tool_result(message: ToolMessage, param: str) -> _ToolResult:
    result = _ToolResult(tool_use_id=_tool_id(message.tool_call_id))
    content = message.content
    if isinstance(content, str):
        if content:
            result.content = content
    else:
        parts: list[_ResultPart] = []
        for j, part in enumerate(content):
            block = _part(part, f"{param}.content[{j}]")
            if block is not None:
                parts.append(block)
        if parts:
            result.content = parts
    if message.is_error is True:
        result.is_error = True
    return result


# tools, tool choice, response format -------------------------------------------------------------
def _object_schema(schema: dict[str, Any] | UnsetType, param: str) -> dict[str, Any]:
    if not isinstance(schema, dict) or not schema:
        return {"type": "object", "properties": {}}
    kind = schema.get("type", "object")
    if kind != "object":
        _refuse(param, f"an Anthropic-format supplier takes an object schema (got type {kind!r})")
    return schema if "type" in schema else {"type": "object", **schema}


def _map_tools(req: ChatRequest) -> tuple[list[_Tool], _ToolChoice | None]:
    tools = [
        _Tool(
            name=tool.function.name,
            description=tool.function.description,
            input_schema=_object_schema(
                tool.function.parameters, f"tools[{i}].function.parameters"
            ),
            strict=True if tool.function.strict is True else UNSET,
            cache_control=_cache(tool.cache_control),
        )
        for i, tool in enumerate(req.tools or ())
    ]
    choice = req.tool_choice
    tool_choice: _ToolChoice | None = None
    if isinstance(choice, NamedToolChoice):
        tool_choice = _ToolChoice(type="tool", name=choice.function.name)
    elif choice == "auto":
        tool_choice = _ToolChoice(type="auto")
    elif choice == "required":
        tool_choice = _ToolChoice(type="any")
    elif choice == "none":
        tool_choice = _ToolChoice(type="none")

    json_name = json_tool_name(req)
    if json_name is not None:
        param = (
            "response_format.json_schema"
            if isinstance(req.response_format, ResponseFormatJSONSchema)
            else "response_format"
        )
        if any(tool.name == json_name for tool in tools):
            _refuse(
                f"{param}.name" if param.endswith("json_schema") else param,
                f"the JSON answer is carried by a tool named {json_name!r}, and a tool of "
                "the request has that name",
            )
        fmt = req.response_format
        if isinstance(fmt, ResponseFormatJSONSchema):
            spec = fmt.json_schema
            json_tool = _Tool(
                name=json_name,
                description=spec.description
                if isinstance(spec.description, str)
                else JSON_TOOL_DESCRIPTION,
                input_schema=_object_schema(spec.schema, f"{param}.schema")
                if isinstance(spec.schema, dict)
                else {"type": "object"},
                strict=True if spec.strict is True else UNSET,
            )
        else:
            json_tool = _Tool(
                name=json_name, description=JSON_TOOL_DESCRIPTION, input_schema={"type": "object"}
            )
        if tool_choice is None or tool_choice.type != "tool":
            callers_tools_usable = bool(tools) and (
                tool_choice is None or tool_choice.type != "none"
            )
            tool_choice = (
                _ToolChoice(type="any")
                if callers_tools_usable
                else _ToolChoice(type="tool", name=json_name)
            )
        tools.append(json_tool)

    if not tools:
        return tools, None
    if req.parallel_tool_calls is False:
        if tool_choice is None:
            tool_choice = _ToolChoice(type="auto")
        if tool_choice.type != "none":
            tool_choice.disable_parallel_tool_use = True
    return tools, tool_choice


# thinking -----------------------------------------------------------------------------------------
def _map_thinking(
    req: ChatRequest, max_tokens: int, tool_choice: _ToolChoice | None
) -> _ThinkingConfig | UnsetType:
    """The Anthropic thinking budget (contract table), within ``1024 ≤ budget < max_tokens``."""
    explicit = req.thinking
    if isinstance(explicit, ThinkingDisabled):
        return _ThinkingConfig(type="disabled")
    if isinstance(explicit, ThinkingEnabled):
        budget = max(explicit.budget_tokens, MIN_THINKING_BUDGET)
    elif isinstance(req.reasoning_effort, str) and req.reasoning_effort in EFFORT_BUDGET:
        budget = EFFORT_BUDGET[req.reasoning_effort]
    else:
        return UNSET
    if max_tokens <= budget:
        budget = max_tokens - 1
    if budget < MIN_THINKING_BUDGET:
        return UNSET
    conflict = _thinking_conflict(req, tool_choice)
    if conflict is not None:
        if isinstance(explicit, ThinkingEnabled):
            _refuse(conflict[0], conflict[1])
        return UNSET  # reasoning_effort is a hint; the conflicting settings are not
    return _ThinkingConfig(type="enabled", budget_tokens=budget)


def _thinking_conflict(req: ChatRequest, tool_choice: _ToolChoice | None) -> tuple[str, str] | None:
    """What the caller asked for that Anthropic forbids while thinking: (param, why)."""
    if tool_choice is not None and tool_choice.type in ("any", "tool"):
        callers = req.tool_choice == "required" or isinstance(req.tool_choice, NamedToolChoice)
        param = "tool_choice" if callers else "response_format"
        return param, "an Anthropic-format supplier cannot think while a tool call is forced"
    if isinstance(req.temperature, float | int) and req.temperature != 1:
        return "temperature", "an Anthropic-format supplier takes only temperature 1 while thinking"
    if isinstance(req.top_k, int):
        return "top_k", "an Anthropic-format supplier takes no top_k while thinking"
    if isinstance(req.top_p, float | int) and req.top_p < 0.95:
        return "top_p", "an Anthropic-format supplier takes top_p of 0.95 to 1 while thinking"
    return None


# -- pure mapping: the answer ------------------------------------------------------------------
def _finish_reason(stop_reason: str | None, has_tool_calls: bool) -> str:
    if stop_reason == "tool_use" and not has_tool_calls:
        return "stop"  # the forced JSON tool was the whole answer
    return FINISH_REASON.get(stop_reason or "", "stop")


def _usage(raw: _Usage | None) -> Usage | None:
    """The metered usage, or None when the upstream reported no complete usage."""
    if raw is None or raw.input_tokens is None or raw.output_tokens is None:
        return None
    cached = raw.cache_read_input_tokens or 0
    return Usage(
        prompt_tokens=raw.input_tokens + cached + (raw.cache_creation_input_tokens or 0),
        completion_tokens=raw.output_tokens,
        reasoning_tokens=(raw.output_tokens_details.thinking_tokens or 0)
        if raw.output_tokens_details is not None
        else 0,
        cached_tokens=cached,
    )


def _estimated_usage(raw: _Usage | None, prompt_estimate: int, out_bytes: int) -> Usage:
    """Usage counted by gridgate (the upstream reported none, or no output count): the
    reported input if there is one, else gridgate's estimate; the output from its bytes."""
    usage = Usage(completion_tokens=tokens_for_bytes(out_bytes), estimated=True)
    if raw is not None and raw.input_tokens is not None:
        usage.cached_tokens = raw.cache_read_input_tokens or 0
        usage.prompt_tokens = (
            raw.input_tokens + usage.cached_tokens + (raw.cache_creation_input_tokens or 0)
        )
    else:
        usage.prompt_tokens = prompt_estimate
    return usage


def _usage_document(usage: Usage, raw: _Usage | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if raw is not None and not usage.estimated:
        document["prompt_tokens_details"] = {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": raw.cache_creation_input_tokens or 0,
        }
        if raw.output_tokens_details is not None:
            document["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return document


def _need(value: str | None, block: str, field: str) -> str:
    if value is None:
        raise SupplierFailed(f"the supplier sent a {block} block without {field}")
    return value


def map_response(
    body: bytes,
    *,
    request: ChatRequest,
    prompt_estimate: int,
    now: Callable[[], float] = time.time,
) -> Completion:
    """An Anthropic ``message`` as a canonical ``chat.completion`` body, metered."""
    try:
        message = _answer_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise SupplierFailed("the supplier sent a malformed answer") from exc
    if message.type != "message":
        raise SupplierFailed(f"the supplier sent a {message.type!r} instead of a message")
    json_name = json_tool_name(request)
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, str]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.content:
        match block.type:
            case "text":
                texts.append(_need(block.text, "text", "text"))
            case "thinking":
                thought = _need(block.thinking, "thinking", "thinking")
                reasoning.append(thought)
                thinking_blocks.append(
                    {
                        "type": "thinking",
                        "thinking": thought,
                        "signature": _need(block.signature, "thinking", "signature"),
                    }
                )
            case "redacted_thinking":
                thinking_blocks.append(
                    {
                        "type": "redacted_thinking",
                        "data": _need(block.data, "redacted_thinking", "data"),
                    }
                )
            case "tool_use":
                name = _need(block.name, "tool_use", "name")
                arguments = _encoder.encode(block.input if block.input is not None else {})
                if name == json_name:
                    texts.append(arguments.decode())
                else:
                    tool_calls.append(
                        {
                            "id": _need(block.id, "tool_use", "id"),
                            "type": "function",
                            "function": {"name": name, "arguments": arguments.decode()},
                        }
                    )
            case other:
                raise SupplierFailed(
                    f"the supplier sent an unsupported content block type {other!r}"
                )
    content: str | None = "".join(texts) if texts else (None if tool_calls else "")
    out_message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        out_message["thinking_blocks"] = thinking_blocks
    choice: dict[str, Any] = {
        "index": 0,
        "message": out_message,
        "logprobs": None,
        "finish_reason": _finish_reason(message.stop_reason, bool(tool_calls)),
    }
    if message.stop_reason == "stop_sequence" and message.stop_sequence is not None:
        choice["stop_reason"] = message.stop_sequence
    usage = _usage(message.usage)
    if usage is None:
        generated = sum(utf8_length(text) for text in (*texts, *reasoning)) + sum(
            utf8_length(call["function"]["name"]) + utf8_length(call["function"]["arguments"])
            for call in tool_calls
        )
        usage = _estimated_usage(message.usage, prompt_estimate, generated)
    document = {
        "id": message.id,
        "object": "chat.completion",
        "created": int(now()),
        "model": message.model,
        "choices": [choice],
        "usage": _usage_document(usage, message.usage),
    }
    return Completion(body=_encoder.encode(document), usage=usage, model=message.model)


# -- pure mapping: the stream ----------------------------------------------------------------------
_DONE_RAW: Final = b"data: [DONE]\n\n"
_CHUNK_TAIL: Final = b',"logprobs":null,"finish_reason":null}]}\n\n'


class _Open(msgspec.Struct):
    """A content block being streamed: what it is, and its tool call index if it is one."""

    kind: Literal["text", "thinking", "redacted_thinking", "tool", "json"]
    tool_index: int = -1


class StreamTranslator:
    """One Anthropic event stream → canonical ``chat.completion.chunk`` events, in order:
    a first chunk with the role, content / reasoning / thinking-block / tool-call chunks, the
    finish chunk (at ``message_delta``), then at ``message_stop`` a usage-only chunk and
    ``[DONE]``. ``feed`` raises ``SupplierFailed`` for an ``error`` event or a malformed one."""

    __slots__ = (
        "_blocks",
        "_finished",
        "_head",
        "_json_name",
        "_now",
        "_out_bytes",
        "_prompt_estimate",
        "_tools",
        "_usage",
        "_usage_reported",
        "done",
    )

    def __init__(
        self,
        *,
        request: ChatRequest,
        prompt_estimate: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._json_name = json_tool_name(request)
        self._prompt_estimate = prompt_estimate
        self._now = now
        self._head = b""  # ``data: {"id":…,"choices":[`` once message_start has come
        self._blocks: dict[int, _Open] = {}
        self._tools = 0  # tool calls started (the canonical tool call index)
        self._usage = _Usage()
        self._usage_reported = False  # a message_delta carried usage
        self._out_bytes = 0
        self._finished = False  # the finish chunk was made
        self.done = False  # message_stop: the answer is complete

    def feed(self, event: SSEEvent) -> list[Chunk]:
        try:
            parsed = _event_decoder.decode(event.data)
        except msgspec.DecodeError as exc:
            raise SupplierFailed("the supplier sent a malformed stream event") from exc
        match parsed.type:
            case "message_start":
                return self._start(parsed)
            case "content_block_start":
                return self._block_start(parsed)
            case "content_block_delta":
                return self._block_delta(parsed)
            case "content_block_stop":
                self._block(parsed)
                return []
            case "message_delta":
                return self._message_delta(parsed)
            case "message_stop":
                return self._stop()
            case "ping":
                return []
            case "error":
                kind = parsed.error.type if parsed.error is not None else "error"
                raise SupplierFailed(f"the supplier reported an error mid-stream ({kind})")
            case _:
                return []  # newer event types are to be ignored (Anthropic's versioning policy)

    # events --------------------------------------------------------------------------------
    def _start(self, event: _Event) -> list[Chunk]:
        if event.message is None:
            raise SupplierFailed("the supplier sent message_start without a message")
        if self._head:
            raise SupplierFailed("the supplier sent a second message_start")
        created = int(self._now())
        self._head = (
            b'data: {"id":'
            + _encoder.encode(event.message.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + _encoder.encode(event.message.model)
            + b',"choices":['
        )
        if event.message.usage is not None:
            self._update_usage(event.message.usage)
        return [Chunk(raw=self._delta(b'{"role":"assistant","content":""}'))]

    def _block_start(self, event: _Event) -> list[Chunk]:
        self._check_started()
        block = event.content_block
        if block is None or event.index is None:
            raise SupplierFailed("the supplier sent content_block_start without a block")
        if event.index in self._blocks:
            raise SupplierFailed("the supplier started a content block twice")
        match block.type:
            case "text":
                self._blocks[event.index] = _Open("text")
                return [self._text(block.text)] if block.text else []
            case "thinking":
                self._blocks[event.index] = _Open("thinking")
                chunks = [self._reasoning(block.thinking)] if block.thinking else []
                if block.signature:
                    chunks.append(self._signature(block.signature))
                return chunks
            case "redacted_thinking":
                self._blocks[event.index] = _Open("redacted_thinking")
                data = _need(block.data, "redacted_thinking", "data")
                item = {"type": "redacted_thinking", "data": data}
                return [Chunk(raw=self._delta(_encoder.encode({"thinking_blocks": [item]})))]
            case "tool_use":
                name = _need(block.name, "tool_use", "name")
                start = _encoder.encode(block.input).decode() if block.input else ""
                if name == self._json_name:
                    self._blocks[event.index] = _Open("json")
                    return [self._text(start)] if start else []
                self._blocks[event.index] = _Open("tool", self._tools)
                self._tools += 1
                call = {
                    "index": self._tools - 1,
                    "id": _need(block.id, "tool_use", "id"),
                    "type": "function",
                    "function": {"name": name, "arguments": start},
                }
                size = utf8_length(name) + utf8_length(start)
                self._out_bytes += size
                raw = self._delta(_encoder.encode({"tool_calls": [call]}))
                return [Chunk(raw=raw, output_bytes=size, deltas=1)]
            case other:
                raise SupplierFailed(
                    f"the supplier sent an unsupported content block type {other!r}"
                )

    def _block_delta(self, event: _Event) -> list[Chunk]:
        self._check_started()
        opened = self._block(event)
        delta = event.delta
        if delta is None:
            raise SupplierFailed("the supplier sent content_block_delta without a delta")
        match (delta.type, opened.kind):
            case ("text_delta", "text"):
                return [self._text(delta.text)] if delta.text else []
            case ("input_json_delta", "json"):
                return [self._text(delta.partial_json)] if delta.partial_json else []
            case ("input_json_delta", "tool"):
                if not delta.partial_json:
                    return []
                fragment = delta.partial_json
                call = {"index": opened.tool_index, "function": {"arguments": fragment}}
                size = utf8_length(fragment)
                self._out_bytes += size
                raw = self._delta(_encoder.encode({"tool_calls": [call]}))
                return [Chunk(raw=raw, output_bytes=size, deltas=1)]
            case ("thinking_delta", "thinking"):
                return [self._reasoning(delta.thinking)] if delta.thinking else []
            case ("signature_delta", "thinking"):
                return [self._signature(delta.signature)] if delta.signature else []
            case ("citations_delta", "text"):
                return []  # gridgate never enables citations; the text carries the answer
            case (kind, block):
                raise SupplierFailed(f"the supplier sent a {kind!r} delta for a {block} block")

    def _message_delta(self, event: _Event) -> list[Chunk]:
        self._check_started()
        if event.usage is not None:
            self._update_usage(event.usage)
            self._usage_reported = self._usage_reported or event.usage.output_tokens is not None
        delta = event.delta
        stop_reason = delta.stop_reason if delta is not None else None
        if stop_reason is None or self._finished:
            return []
        self._finished = True
        finish = _finish_reason(stop_reason, self._tools > 0)
        choice: dict[str, Any] = {
            "index": 0,
            "delta": {},
            "logprobs": None,
            "finish_reason": finish,
        }
        if stop_reason == "stop_sequence" and delta is not None and delta.stop_sequence is not None:
            choice["stop_reason"] = delta.stop_sequence
        raw = self._head + _encoder.encode(choice) + b"]}\n\n"
        return [Chunk(raw=raw, finish_reason=finish)]

    def _stop(self) -> list[Chunk]:
        self._check_started()
        if not self._finished:
            raise SupplierFailed("the supplier's stream stopped without a stop reason")
        self.done = True
        usage = _usage(self._usage) if self._usage_reported else None
        if usage is None:
            usage = _estimated_usage(self._usage, self._prompt_estimate, self._out_bytes)
        raw = (
            self._head
            + b'],"usage":'
            + _encoder.encode(_usage_document(usage, self._usage))
            + b"}\n\n"
        )
        return [
            Chunk(raw=raw, usage=usage, usage_only=True),
            Chunk(raw=_DONE_RAW, done=True),
        ]

    # helpers ---------------------------------------------------------------------------------
    def _check_started(self) -> None:
        if not self._head:
            raise SupplierFailed("the supplier's stream did not start with message_start")
        if self.done:
            raise SupplierFailed("the supplier sent events after message_stop")

    def _block(self, event: _Event) -> _Open:
        opened = self._blocks.get(event.index) if event.index is not None else None
        if opened is None:
            raise SupplierFailed("the supplier sent an event for a content block it never started")
        return opened

    def _update_usage(self, raw: _Usage) -> None:
        """Anthropic's stream usage is cumulative: a field present replaces the earlier one."""
        usage = self._usage
        if raw.input_tokens is not None:
            usage.input_tokens = raw.input_tokens
        if raw.output_tokens is not None:
            usage.output_tokens = raw.output_tokens
        if raw.cache_creation_input_tokens is not None:
            usage.cache_creation_input_tokens = raw.cache_creation_input_tokens
        if raw.cache_read_input_tokens is not None:
            usage.cache_read_input_tokens = raw.cache_read_input_tokens
        if raw.output_tokens_details is not None:
            usage.output_tokens_details = raw.output_tokens_details

    def _delta(self, delta: bytes) -> bytes:
        return self._head + b'{"index":0,"delta":' + delta + _CHUNK_TAIL

    def _text(self, text: str) -> Chunk:
        size = utf8_length(text)
        self._out_bytes += size
        raw = self._delta(b'{"content":' + _encoder.encode(text) + b"}")
        return Chunk(raw=raw, output_bytes=size, deltas=1)

    def _reasoning(self, text: str) -> Chunk:
        size = utf8_length(text)
        self._out_bytes += size
        raw = self._delta(b'{"reasoning_content":' + _encoder.encode(text) + b"}")
        return Chunk(raw=raw, output_bytes=size, deltas=1)

    def _signature(self, signature: str) -> Chunk:
        item = {"type": "thinking", "thinking": "", "signature": signature}
        return Chunk(raw=self._delta(_encoder.encode({"thinking_blocks": [item]})))


# -- errors ------------------------------------------------------------------------------------------
def upstream_error(
    status: int, body: bytes, *, secret: str | None
) -> SupplierFailed | UpstreamRejected:
    """Translate a non-200 answer (``{"type":"error","error":{"type","message"}}``). The
    caller's fault — 400 invalid_request_error, 413 request_too_large, 422, and any other 4xx
    not listed below — is surfaced with the upstream's message (secret redacted, clipped).
    401/403 (the supplier's credentials), 402 (its billing), 404 (a model the supplier does not
    have: a configuration fault), 409, 429 and 5xx/529 are the supplier's; 408/504 its
    timeouts."""
    if 400 <= status < 500 and status not in (401, 402, 403, 404, 408, 409, 429):
        message = (
            error_message(body, secret) or f"the supplier rejected the request (HTTP {status})"
        )
        return UpstreamRejected(message, status=400 if status == 415 else status)
    if status in (408, 504):
        return SupplierTimeout(f"the supplier timed out (HTTP {status})")
    return SupplierFailed(f"the supplier failed (HTTP {status})")


# -- the adapter ---------------------------------------------------------------------------------------
class AnthropicAdapter:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: UpstreamSettings,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._settings = settings
        self._environ = os.environ if environ is None else environ
        self._connect = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout_seconds
        )
        # per supplier (and credential variable) and answer kind, built once; never mutated
        self._header_cache: dict[tuple[str, str | None, bool], dict[str, str]] = {}

    def _secret(self, supplier: SupplierRecord) -> str | None:
        return self._environ.get(supplier.api_key_env) if supplier.api_key_env else None

    def _headers(self, supplier: SupplierRecord, *, stream: bool) -> dict[str, str]:
        key = (supplier.name, supplier.api_key_env, stream)
        headers = self._header_cache.get(key)
        if headers is None:
            accept = "text/event-stream" if stream else "application/json"
            headers = {
                "Content-Type": "application/json",
                "Accept": accept,
                "anthropic-version": ANTHROPIC_VERSION,
            }
            secret = self._secret(supplier)
            if secret:
                headers["x-api-key"] = secret
            self._header_cache[key] = headers
        return headers

    async def complete(self, call: UpstreamCall) -> Completion:
        url = call.supplier.base_url + "/messages"
        data = map_request(call)
        with translate_errors():
            async with asyncio.timeout(self._settings.total_timeout_seconds):
                async with self._session.post(
                    url,
                    data=data,
                    headers=self._headers(call.supplier, stream=False),
                    timeout=self._connect,
                ) as response:
                    body = await response.read()
                    status = response.status
        if status != 200:
            raise upstream_error(status, body, secret=self._secret(call.supplier))
        return map_response(body, request=call.request, prompt_estimate=call.prompt_estimate)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[list[Chunk]]:
        url = call.supplier.base_url + "/messages"
        data = map_request(call)
        headers = self._headers(call.supplier, stream=True)
        settings = self._settings
        with translate_errors():
            async with asyncio.timeout(settings.first_byte_timeout_seconds):
                response = await self._session.post(
                    url, data=data, headers=headers, timeout=self._connect
                )
        completed = False
        try:
            if response.status != 200:
                with translate_errors():
                    async with asyncio.timeout(settings.first_byte_timeout_seconds):
                        body = await response.read()
                raise upstream_error(response.status, body, secret=self._secret(call.supplier))
            parser = SSEParser()
            translator = StreamTranslator(
                request=call.request, prompt_estimate=call.prompt_estimate
            )
            pieces = response.content.iter_any().__aiter__()
            wait = settings.first_byte_timeout_seconds
            while True:
                try:
                    async with asyncio.timeout(wait):
                        piece = await anext(pieces)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise SupplierTimeout("the supplier went silent mid-answer") from exc
                except (aiohttp.ClientError, OSError) as exc:
                    raise SupplierFailed("the supplier connection failed mid-answer") from exc
                wait = settings.idle_timeout_seconds
                batch, error = _batch(translator, parser.feed(piece))
                if batch:
                    yield batch
                if translator.done:
                    completed = True
                    return
                if error is not None:
                    raise error
            batch, error = _batch(translator, parser.flush())
            if batch:
                yield batch
            if error is not None:
                raise error
            if not translator.done:
                raise SupplierFailed("the supplier's stream ended before the answer did")
            completed = True
        finally:
            if completed:
                response.release()
            else:
                response.close()  # stop the upstream: it sees the connection go


def _batch(
    translator: StreamTranslator, events: list[SSEEvent]
) -> tuple[list[Chunk], SupplierFailed | None]:
    """The chunks of the events that arrived together, up to and including ``message_stop``;
    and the failure that ended them early, if one did (what came before it is still relayed)."""
    batch: list[Chunk] = []
    for event in events:
        if not event.data:
            continue
        try:
            batch.extend(translator.feed(event))
        except SupplierFailed as exc:
            return batch, exc
        if translator.done:
            break
    return batch, None
