"""How a canonical ``ChatRequest`` becomes an Anthropic ``/messages`` body (pure).

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

``dropped_fields(request)`` lists the parameters a request sets that this mapping would leave
out (the rows "dropped" above that are request parameters, plus a ``reasoning_effort`` that
yields no thinking and a ``user`` hidden by ``safety_identifier``), so routing can honour a
caller's ``provider.require_parameters`` without mapping the request first.

Tool call ids the Anthropic wire cannot carry (it takes ``[a-zA-Z0-9_-]+``; other suppliers'
ids may hold ``.`` or ``:``) are replaced by a stable digest, the same in the ``tool_use`` and
its ``tool_result``. An explicit thinking budget under Anthropic's minimum (1024) is raised to it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any, Final, Literal, NoReturn

import msgspec

from gridgate.errors import Untranslatable
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
from gridgate.providers.anthropic.wire import (
    _IMAGE_TYPES,
    _TOOL_ID,
    MIN_THINKING_BUDGET,
    _Base64Source,
    _Block,
    _Body,
    _Document,
    _encoder,
    _Image,
    _Message,
    _Metadata,
    _RedactedThinking,
    _ResultPart,
    _Text,
    _TextSource,
    _Thinking,
    _ThinkingConfig,
    _Tool,
    _ToolChoice,
    _ToolResult,
    _ToolUse,
    _URLSource,
)
from gridgate.providers.base import UpstreamCall

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
_PDF_BASE64: Final = "JVBERi0"  # base64 of "%PDF-"
# request parameters with no place on the Anthropic wire (the "dropped" rows of the table)
_DROPPED: Final = (
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "service_tier",
    "store",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_retention",
    "verbosity",
    "prediction",
)


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


def dropped_fields(req: ChatRequest) -> frozenset[str]:
    """The parameters ``req`` sets (not null) that ``map_request`` would drop. Pure and cheap:
    no mapping is done. (What it would refuse instead is ``Untranslatable``, not listed.)"""
    dropped = [name for name in _DROPPED if getattr(req, name) not in (UNSET, None)]
    if isinstance(req.reasoning_effort, str) and _effort_dropped(req):
        dropped.append("reasoning_effort")
    if isinstance(req.safety_identifier, str) and isinstance(req.user, str) and req.user:
        dropped.append("user")  # one metadata.user_id: the safety identifier wins
    return frozenset(dropped)


def _effort_dropped(req: ChatRequest) -> bool:
    """``reasoning_effort`` (set) yields no thinking: an explicit ``thinking`` decides instead,
    the max tokens leave no room for the minimum budget, or the request forbids thinking."""
    if req.thinking is not UNSET and req.thinking is not None:
        return True
    if req.reasoning_effort not in EFFORT_BUDGET:
        return False  # "none": no thinking is what was asked
    requested = req.effective_max_tokens
    if requested is not None and requested <= MIN_THINKING_BUDGET:
        return True
    forced = (
        json_tool_name(req) is not None
        or req.tool_choice == "required"
        or isinstance(req.tool_choice, NamedToolChoice)
    )
    return _thinking_conflict(req, _ToolChoice(type="any") if forced else None) is not None


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
