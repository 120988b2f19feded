"""How the canonical messages become Anthropic's ``system`` and its user/assistant turns (pure).

``map_messages`` is the messages half of ``map_request`` (``request.py``, whose docstring holds
the decision table): system and developer messages become ``system``; user, assistant and tool
messages become alternating turns of text, image, document, thinking, ``tool_use`` and
``tool_result`` blocks. What the Anthropic wire cannot carry is refused with ``Untranslatable``
naming the part (``refuse``); ``cache_control`` stays on the block it marks
(``cache_control_of``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Final, Literal, NoReturn

import msgspec

from gridgate.errors import Untranslatable
from gridgate.protocol.openai_chat import (
    UNSET,
    AssistantMessage,
    AudioPart,
    CacheControl,
    ContentPart,
    DeveloperMessage,
    FilePart,
    ImagePart,
    Message,
    RedactedThinkingBlock,
    RefusalPart,
    SystemMessage,
    TextPart,
    ThinkingBlock,
    ToolMessage,
    UnsetType,
    UserMessage,
)
from gridgate.providers.anthropic.wire import (
    _IMAGE_TYPES,
    _TOOL_ID,
    _Base64Source,
    _Block,
    _Document,
    _Image,
    _Message,
    _RedactedThinking,
    _ResultPart,
    _Text,
    _TextSource,
    _Thinking,
    _ToolResult,
    _ToolUse,
    _URLSource,
)
from gridgate.providers.openai_responses.reasoning import SIGNATURE_PREFIX as RESPONSES_REASONING

_PDF_BASE64: Final = "JVBERi0"  # base64 of "%PDF-"


def refuse(param: str, why: str) -> NoReturn:
    raise Untranslatable(f"{param}: {why}", param=param)


def cache_control_of(value: CacheControl | UnsetType | None) -> CacheControl | UnsetType:
    return value if isinstance(value, CacheControl) else UNSET


def map_messages(
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
        refuse("messages", "an Anthropic-format supplier needs a user or assistant message")
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


def _system_part(part: ContentPart, param: str) -> _Text:
    if isinstance(part, TextPart):
        return _Text(text=part.text, cache_control=cache_control_of(part.cache_control))
    refuse(param, f"a system message can only carry text (got '{part.__struct_config__.tag}')")


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
            return _Text(text=part.text, cache_control=cache_control_of(part.cache_control))
        case ImagePart():
            return _Image(
                source=_image_source(part.image_url.url, f"{param}.image_url.url"),
                cache_control=cache_control_of(part.cache_control),
            )
        case FilePart():
            return _document(part, param)
        case AudioPart():
            refuse(param, "an Anthropic-format supplier cannot take audio input")
        case RefusalPart():
            refuse(param, "a refusal part can only be in an assistant message")


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
            refuse(param, "an image data: URL must be base64 (data:<media type>;base64,…)")
        media_type, data = parsed
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if media_type not in _IMAGE_TYPES:
            refuse(
                param,
                f"an Anthropic-format supplier takes jpeg, png, gif or webp images "
                f"(got {media_type!r})",
            )
        return _Base64Source(media_type=media_type, data=data)
    scheme = url[:8].lower()
    if scheme.startswith(("http://", "https://")):
        return _URLSource(url=url)
    refuse(param, "an image must be a data: URL or an http(s) URL")


def _document(part: FilePart, param: str) -> _Document:
    file = part.file
    if isinstance(file.file_id, str):
        refuse(f"{param}.file.file_id", "an Anthropic-format supplier cannot read file ids")
    data = file.file_data
    if not isinstance(data, str):
        refuse(f"{param}.file", "must have file_data")
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
            refuse(f"{param}.file.file_data", "is not base64 of UTF-8 text")
        source = _TextSource(media_type="text/plain", data=text)
    else:
        kind = repr(parsed[0]) if parsed is not None else "not a PDF"
        refuse(
            f"{param}.file.file_data",
            f"an Anthropic-format supplier takes PDF or plain-text files (got {kind})",
        )
    return _Document(source=source, title=title, cache_control=cache_control_of(part.cache_control))


def _assistant_content(message: AssistantMessage, param: str) -> str | list[_Block]:
    if message.audio is not UNSET and message.audio is not None:
        refuse(f"{param}.audio", "an Anthropic-format supplier cannot take audio answers back")
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
                if (
                    isinstance(block.signature, str)
                    and block.signature
                    and not block.signature.startswith(RESPONSES_REASONING)
                ):
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
                            _Text(
                                text=part.text, cache_control=cache_control_of(part.cache_control)
                            )
                        )
                case RefusalPart():
                    if part.refusal:
                        blocks.append(_Text(text=part.refusal))
                case _:
                    refuse(
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
        refuse(param, "must be a JSON object (it is not valid JSON)")
    if not isinstance(value, dict):
        refuse(param, "must be a JSON object for an Anthropic-format supplier")
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
