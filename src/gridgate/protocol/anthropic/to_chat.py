"""An Anthropic Messages request, translated into the canonical ``ChatRequest``.

``to_chat_request(request)`` is pure: no I/O, no clock, nothing shared. It is the contract's
"messages, canonical → Anthropic" table read backwards, so that a request sent on the Anthropic
surface reaches an Anthropic-format supplier as it was sent, up to what is listed as dropped:

- ``system`` → a leading system message (a string, or text parts keeping ``cache_control``);
  a mid-conversation ``{"role": "system"}`` message → a system message at its place.
- a user message → its ``tool_result`` blocks first, as tool messages (``tool_call_id``,
  content, ``is_error``), then the rest of its blocks as one user message, if any: text →
  text part, image → image part (a ``data:`` URL, or the http URL), a base64 PDF document → a
  file part (``file_data`` a ``data:application/pdf;base64,…`` URL, ``filename`` the title or
  ``document.pdf``), a plain-text document → a text part holding its text, a content document
  → its text and image parts. A document's ``context`` has no canonical place and is dropped;
  so is the title of a non-PDF document.
- an assistant message → one assistant message: ``content`` (a plain string for a single text
  block without ``cache_control``, else text parts; null when there is no text),
  ``tool_calls`` (``arguments`` is the compact JSON of ``input``, key order kept),
  ``thinking_blocks`` in order, with their signatures, and ``reasoning_content`` (the thinking
  texts joined by a blank line). Where text, thinking and tool_use blocks interleave, each kind
  keeps its own order (the canonical form holds them apart).
- ``cache_control`` stays on the part it marks. On a ``tool_result`` it moves to the last part
  of the tool message's content (the same cache prefix); on a ``tool_use`` block it has no
  canonical place and is dropped (a caching hint, not content).
- ``tools``, ``tool_choice`` (``disable_parallel_tool_use`` → ``parallel_tool_calls`` false),
  ``stop_sequences`` → ``stop``, ``temperature``, ``top_p``, ``top_k``, ``thinking`` (adaptive →
  ``reasoning_effort``: ``output_config.effort``, else "medium"), ``metadata.user_id`` →
  ``user``, ``output_format`` / ``output_config.format`` → a ``json_schema`` response format
  named "output", ``max_tokens``, ``model`` and the ``provider`` routing preferences (an
  extension) as they are. ``stream`` asks for usage too: the Anthropic surface always reports
  it.

What the canonical form cannot hold is refused with ``ValidationFailed`` naming the part: a
document given by URL (a file part holds data, not a link) and anything given by Files-API
``file_id`` (an id of one provider's storage). Everything else ``decode_messages_request``
accepts translates.
"""

from __future__ import annotations

import msgspec

from gridgate.errors import ValidationFailed
from gridgate.protocol.anthropic import request as am
from gridgate.protocol.openai_chat import (
    UNSET,
    AssistantMessage,
    CacheControl,
    ChatRequest,
    ContentPart,
    FilePart,
    FileRef,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    JSONSchemaFormat,
    Message,
    NamedToolChoice,
    ReasoningBlock,
    ReasoningEffort,
    RedactedThinkingBlock,
    ResponseFormatJSONSchema,
    StreamOptions,
    SystemMessage,
    TextPart,
    Thinking,
    ThinkingBlock,
    ThinkingDisabled,
    ThinkingEnabled,
    Tool,
    ToolCall,
    ToolChoiceFunction,
    ToolChoiceMode,
    ToolMessage,
    UnsetType,
    UserMessage,
)

__all__ = ["OUTPUT_FORMAT_NAME", "to_chat_request"]

OUTPUT_FORMAT_NAME = "output"  # the canonical json_schema name of an Anthropic output format
_DEFAULT_PDF_NAME = "document.pdf"
_ADAPTIVE_EFFORT: ReasoningEffort = "medium"


def to_chat_request(request: am.MessagesRequest) -> ChatRequest:
    """The canonical request for a (decoded, validated) Messages request."""
    messages: list[Message] = []
    system = request.system
    if isinstance(system, str):
        messages.append(SystemMessage(content=system))
    elif system:
        messages.append(SystemMessage(content=[_text_part(block) for block in system]))
    for i, message in enumerate(request.messages):
        _add_message(messages, message, f"messages[{i}]")

    tools = _tools(request.tools)
    tool_choice, parallel_tool_calls = _tool_choice(request.tool_choice, bool(tools))
    thinking, reasoning_effort = _thinking(request)
    output = request.output_json_format
    metadata = request.metadata
    stream = request.stream is True
    return ChatRequest(
        model=request.model,
        messages=messages,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        stop=request.stop_sequences,
        stream=True if stream else UNSET,
        stream_options=StreamOptions(include_usage=True) if stream else UNSET,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel_tool_calls,
        thinking=thinking,
        reasoning_effort=reasoning_effort,
        user=(
            metadata.user_id
            if isinstance(metadata, am.Metadata) and isinstance(metadata.user_id, str)
            else UNSET
        ),
        response_format=(
            ResponseFormatJSONSchema(
                json_schema=JSONSchemaFormat(name=OUTPUT_FORMAT_NAME, schema=output.schema)
            )
            if output is not None
            else UNSET
        ),
        provider=request.provider,
    )


# --------------------------------------------------------------------------------------------
# Messages


def _add_message(out: list[Message], message: am.InputMessage, path: str) -> None:
    content = message.content
    match message:
        case am.UserMessage():
            if isinstance(content, str):
                out.append(UserMessage(content=content))
            else:
                _add_user_blocks(out, content, path)
        case am.AssistantMessage():
            out.append(_assistant_message(content, path))
        case am.SystemMessage():
            if isinstance(content, str):
                out.append(SystemMessage(content=content))
            else:
                out.append(SystemMessage(content=_text_parts(content, path, "system")))


def _add_user_blocks(out: list[Message], blocks: list[am.ContentBlock], path: str) -> None:
    parts: list[ContentPart] = []
    for j, block in enumerate(blocks):
        where = f"{path}.content[{j}]"
        match block:
            case am.ToolResultBlock():
                out.append(_tool_message(block, where))
            case am.TextBlock():
                parts.append(_text_part(block))
            case am.ImageBlock():
                parts.append(_image_part(block, where))
            case am.DocumentBlock():
                parts.extend(_document_parts(block, where))
            case _:
                raise _not_allowed(block, where, "user")
    if parts:
        out.append(UserMessage(content=parts))


def _assistant_message(content: str | list[am.ContentBlock], path: str) -> AssistantMessage:
    if isinstance(content, str):
        return AssistantMessage(content=content)
    texts: list[am.TextBlock] = []
    tool_calls: list[ToolCall] = []
    reasoning: list[ReasoningBlock] = []
    for j, block in enumerate(content):
        match block:
            case am.TextBlock():
                texts.append(block)
            case am.ToolUseBlock():
                arguments = msgspec.json.encode(block.input).decode()
                tool_calls.append(
                    ToolCall(
                        id=block.id,
                        type="function",
                        function=FunctionCall(name=block.name, arguments=arguments),
                    )
                )
            case am.ThinkingBlock():
                reasoning.append(ThinkingBlock(thinking=block.thinking, signature=block.signature))
            case am.RedactedThinkingBlock():
                reasoning.append(RedactedThinkingBlock(data=block.data))
            case _:
                raise _not_allowed(block, f"{path}.content[{j}]", "assistant")

    text: str | list[ContentPart] | None = None
    if len(texts) == 1 and not isinstance(texts[0].cache_control, CacheControl):
        text = texts[0].text
    elif texts:
        text = [_text_part(block) for block in texts]
    thoughts = [block.thinking for block in reasoning if type(block) is ThinkingBlock]
    return AssistantMessage(
        content=text,
        tool_calls=tool_calls or UNSET,
        thinking_blocks=reasoning or UNSET,
        reasoning_content="\n\n".join(thoughts) if any(thoughts) else UNSET,
    )


def _tool_message(block: am.ToolResultBlock, path: str) -> ToolMessage:
    content: str | list[ContentPart]
    given = block.content
    if isinstance(given, str):
        content = given
    elif isinstance(given, list) and given:
        content = _text_and_images(given, f"{path}.content")
    else:
        content = ""  # no content, or an empty list: the canonical form needs some
    cache = _cache(block.cache_control)
    if isinstance(cache, CacheControl) and content:
        parts = [TextPart(text=content)] if isinstance(content, str) else content
        content = [*parts[:-1], msgspec.structs.replace(parts[-1], cache_control=cache)]
    return ToolMessage(content=content, tool_call_id=block.tool_use_id, is_error=block.is_error)


def _text_and_images(blocks: list[am.TextBlock | am.ImageBlock], path: str) -> list[ContentPart]:
    parts: list[ContentPart] = []
    for k, block in enumerate(blocks):
        if isinstance(block, am.TextBlock):
            parts.append(_text_part(block))
        else:
            parts.append(_image_part(block, f"{path}[{k}]"))
    return parts


def _text_parts(blocks: list[am.ContentBlock], path: str, role: str) -> list[ContentPart]:
    parts: list[ContentPart] = []
    for j, block in enumerate(blocks):
        if not isinstance(block, am.TextBlock):
            raise _not_allowed(block, f"{path}.content[{j}]", role)
        parts.append(_text_part(block))
    return parts


# --------------------------------------------------------------------------------------------
# Parts


def _text_part(block: am.TextBlock) -> TextPart:
    return TextPart(text=block.text, cache_control=_cache(block.cache_control))


def _image_part(block: am.ImageBlock, path: str) -> ImagePart:
    source = block.source
    match source:
        case am.Base64Source():
            url = f"data:{source.media_type};base64,{source.data}"
        case am.URLSource():
            url = source.url
        case am.FileSource():
            raise _file_id_refused(f"{path}.source")
    return ImagePart(image_url=ImageURL(url=url), cache_control=_cache(block.cache_control))


def _document_parts(block: am.DocumentBlock, path: str) -> list[ContentPart]:
    source = block.source
    cache = _cache(block.cache_control)
    match source:
        case am.Base64Source():
            title = block.title
            ref = FileRef(
                file_data=f"data:{source.media_type};base64,{source.data}",
                filename=title if isinstance(title, str) and title else _DEFAULT_PDF_NAME,
            )
            return [FilePart(file=ref, cache_control=cache)]
        case am.PlainTextSource():
            return [TextPart(text=source.data, cache_control=cache)]
        case am.ContentSource():
            given = source.content
            if isinstance(given, str):
                return [TextPart(text=given, cache_control=cache)]
            parts = _text_and_images(given, f"{path}.source.content")
            if isinstance(cache, CacheControl) and parts:
                parts[-1] = msgspec.structs.replace(parts[-1], cache_control=cache)
            return parts
        case am.URLSource():
            raise ValidationFailed(
                f"{path}.source: documents given by URL are not supported by this exchange;"
                " send the PDF as base64 data",
                param=f"{path}.source",
            )
        case am.FileSource():
            raise _file_id_refused(f"{path}.source")


def _cache(value: CacheControl | UnsetType | None) -> CacheControl | UnsetType:
    """``cache_control: null`` means no breakpoint: leave it out."""
    return value if isinstance(value, CacheControl) else UNSET


def _file_id_refused(param: str) -> ValidationFailed:
    return ValidationFailed(
        f"{param}: files given by file_id are not supported by this exchange; send the data"
        " inline (base64)",
        param=param,
    )


def _not_allowed(block: msgspec.Struct, path: str, role: str) -> ValidationFailed:
    param = f"{path}.type"
    return ValidationFailed(
        f"{param}: '{block.__struct_config__.tag}' blocks are not allowed in {role} messages",
        param=param,
    )


# --------------------------------------------------------------------------------------------
# Options


def _tools(tools: list[am.Tool] | UnsetType) -> list[Tool] | UnsetType:
    if isinstance(tools, UnsetType):
        return UNSET
    out: list[Tool] = []
    for i, tool in enumerate(tools):
        if isinstance(tool.type, str) and tool.type != "custom":
            param = f"tools[{i}].type"
            raise ValidationFailed(
                f"{param}: server tools are not supported by this exchange", param=param
            )
        function = FunctionDefinition(
            name=tool.name,
            description=tool.description,
            parameters=tool.input_schema,
            strict=tool.strict,
        )
        out.append(
            Tool(type="function", function=function, cache_control=_cache(tool.cache_control))
        )
    return out


def _tool_choice(
    choice: am.ToolChoice | UnsetType, has_tools: bool
) -> tuple[ToolChoiceMode | NamedToolChoice | UnsetType, bool | UnsetType]:
    """The canonical ``tool_choice`` and ``parallel_tool_calls``. ``auto`` without tools is
    the default anyway and is left out (the canonical form wants tools beside a choice)."""
    mapped: ToolChoiceMode | NamedToolChoice | UnsetType
    match choice:
        case am.ToolChoiceAuto():
            mapped = "auto" if has_tools else UNSET
        case am.ToolChoiceAny():
            mapped = "required"
        case am.ToolChoiceTool():
            mapped = NamedToolChoice(type="function", function=ToolChoiceFunction(name=choice.name))
        case am.ToolChoiceNone():
            mapped = "none"
        case _:
            return UNSET, UNSET
    disable = getattr(choice, "disable_parallel_tool_use", UNSET)
    return mapped, (False if disable is True and has_tools else UNSET)


def _thinking(
    request: am.MessagesRequest,
) -> tuple[Thinking | UnsetType, ReasoningEffort | UnsetType]:
    match request.thinking:
        case am.ThinkingConfigEnabled(budget_tokens=budget):
            return ThinkingEnabled(budget_tokens=budget), UNSET
        case am.ThinkingConfigDisabled():
            return ThinkingDisabled(), UNSET
        case am.ThinkingConfigAdaptive():
            config = request.output_config
            effort = config.effort if isinstance(config, am.OutputConfig) else None
            return UNSET, effort if isinstance(effort, str) else _ADAPTIVE_EFFORT
        case _:
            return UNSET, UNSET
