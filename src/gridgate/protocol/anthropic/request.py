"""The Anthropic Messages request (``POST /v1/messages``): wire schema, decoding and validation.

``decode_messages_request(body)`` is the one entry point, built like the OpenAI surface's
``decode_chat_request``: one msgspec pass decodes and type-checks the body
(``MESSAGES_REQUEST_DECODER``), then a cheap Python pass checks bounds and cross-field rules in
one walk over the messages. It raises only:

- ``BadRequest`` (400): the body is not JSON, not a JSON object, a field has the wrong JSON
  type (``"temperature": "hot"``, ``"messages": {}``, ``"max_tokens": 1.5``), or a top-level
  field is one Anthropic's API does not know (``"frobnicate: Extra inputs are not permitted"``,
  its words). ``ThreadUnsupported`` (400, a ``BadRequest``): the request has ``thread``.
- ``ValidationFailed`` (422): well-typed but out of range or structurally invalid: a missing
  required field, a bound, an unknown enum value, role or block type, a block in a role that
  cannot carry it, a cross-field rule (``tool_choice`` naming an unknown tool, a
  ``tool_result`` answering no earlier ``tool_use``, the thinking budget against
  ``max_tokens``), anything malformed inside the option objects ``tools``, ``tool_choice``,
  ``thinking``, ``output_format``, ``output_config`` and ``provider``, and features this
  exchange cannot carry to its suppliers: ``mcp_servers``, ``container`` and server tools (a
  tool whose ``type`` is not ``"custom"``, such as ``web_search_20250305``).

Both carry ``param``, the path of the offending field in the OpenAI surface's style
(``messages[1].content[0].source.media_type``), and a message that starts with it.

The schema follows Anthropic's current SDK types (``anthropic.types.MessageCreateParams``):
user, assistant and (mid-conversation) system messages; text, image, document, tool_use,
tool_result, thinking and redacted_thinking blocks; the beta ``output_format`` beside
``output_config.format``. A top-level field Anthropic's API does not know is refused, as
Anthropic refuses it; those it knows that change nothing this exchange routes or bills
(``speed``, ``inference_geo``, the top-level automatic ``cache_control``,
``context_management`` and the like) are accepted and ignored, as are unknown fields nested in
the messages and options (``citations``…). ``thread`` (the server holding the conversation
between turns) is refused with Anthropic's ``thread_unsupported_request``, on which the SDKs'
tool runners resend the whole conversation without it. ``service_tier`` is validated and
ignored (the exchange picks the supplier). One extension: ``provider``, the
caller's routing preferences, as on the OpenAI surface (``protocol/provider_preferences.py``;
the Anthropic SDK sends it with ``extra_body``). Image and document media types are
plain strings checked in the Python pass, where the kind of block is known, so the message names
the values that block takes.

The messages and their content blocks are declared in ``content.py`` and re-exported here, so
this module stays the one import for the whole request. Translation into the canonical
``ChatRequest`` lives in ``to_chat.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from gridgate.errors import ThreadUnsupported
from gridgate.protocol.anthropic.content import (
    DOCUMENT_MEDIA_TYPE,
    IMAGE_MEDIA_TYPES,
    TEXT_MEDIA_TYPE,
    AssistantMessage,
    Base64Source,
    ContentBlock,
    ContentSource,
    DocumentBlock,
    DocumentSource,
    FileSource,
    ImageBlock,
    ImageSource,
    InputMessage,
    PlainTextSource,
    RedactedThinkingBlock,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolResultContent,
    ToolUseBlock,
    URLSource,
    UserMessage,
    Wire,
)
from gridgate.protocol.openai_content import CacheControl
from gridgate.protocol.provider_preferences import (
    PROVIDER_CHOICES,
    ProviderPreferences,
    check_provider_preferences,
)
from gridgate.protocol.wire_errors import (
    Surface,
    check_int_range,
    check_name,
    check_range,
    choices_text,
    decode,
    fail,
    show,
    tags,
)

__all__ = [
    "DOCUMENT_MEDIA_TYPE",
    "IMAGE_MEDIA_TYPES",
    "MESSAGES_REQUEST_DECODER",
    "TEXT_MEDIA_TYPE",
    "UNSET",
    "AssistantMessage",
    "Base64Source",
    "CacheControl",
    "ContentBlock",
    "ContentSource",
    "DocumentBlock",
    "DocumentSource",
    "Effort",
    "FileSource",
    "ImageBlock",
    "ImageSource",
    "InputMessage",
    "JSONOutputFormat",
    "MessagesRequest",
    "Metadata",
    "OutputConfig",
    "PlainTextSource",
    "RedactedThinkingBlock",
    "ServiceTier",
    "SystemMessage",
    "TextBlock",
    "ThinkingBlock",
    "ThinkingConfig",
    "ThinkingConfigAdaptive",
    "ThinkingConfigDisabled",
    "ThinkingConfigEnabled",
    "Tool",
    "ToolChoice",
    "ToolChoiceAny",
    "ToolChoiceAuto",
    "ToolChoiceNone",
    "ToolChoiceTool",
    "ToolResultBlock",
    "ToolResultContent",
    "ToolUseBlock",
    "URLSource",
    "UnsetType",
    "UserMessage",
    "decode_messages_request",
]

# --------------------------------------------------------------------------------------------
# Enumerations

ServiceTier = Literal["auto", "standard_only"]
Effort = Literal["low", "medium", "high", "xhigh", "max"]

# --------------------------------------------------------------------------------------------
# Tools, tool choice, thinking, output format, metadata


class Tool(Wire):
    """A custom tool. ``type`` other than ``"custom"`` is a server tool (refused by the Python
    pass, which is why ``input_schema`` is optional here: server tools have none)."""

    name: str
    type: str | UnsetType | None = UNSET
    description: str | UnsetType = UNSET
    input_schema: dict[str, Any] | UnsetType = UNSET  # required for custom tools
    cache_control: CacheControl | UnsetType | None = UNSET
    strict: bool | UnsetType = UNSET


class ToolChoiceAuto(Wire, tag="auto", tag_field="type"):
    disable_parallel_tool_use: bool | UnsetType = UNSET


class ToolChoiceAny(Wire, tag="any", tag_field="type"):
    disable_parallel_tool_use: bool | UnsetType = UNSET


class ToolChoiceTool(Wire, tag="tool", tag_field="type"):
    name: str
    disable_parallel_tool_use: bool | UnsetType = UNSET


class ToolChoiceNone(Wire, tag="none", tag_field="type"):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class ThinkingConfigEnabled(Wire, tag="enabled", tag_field="type"):
    budget_tokens: int  # >= 1024 and < max_tokens


class ThinkingConfigDisabled(Wire, tag="disabled", tag_field="type"):
    pass


class ThinkingConfigAdaptive(Wire, tag="adaptive", tag_field="type"):
    pass


ThinkingConfig = ThinkingConfigEnabled | ThinkingConfigDisabled | ThinkingConfigAdaptive


class JSONOutputFormat(Wire):
    """Structured output: answer with a JSON document matching ``schema``. ``type`` is a plain
    field (not a tag) so that leaving it out is an error, as on Anthropic's API."""

    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(Wire):
    format: JSONOutputFormat | UnsetType | None = UNSET
    effort: Effort | UnsetType | None = UNSET


class Metadata(Wire):
    user_id: str | UnsetType | None = UNSET  # at most 256 characters


# --------------------------------------------------------------------------------------------
# The request


class MessagesRequest(Wire, forbid_unknown_fields=True):
    """``POST /v1/messages``. ``UNSET`` = not sent. A field not declared here is refused."""

    model: str
    messages: list[InputMessage]
    max_tokens: int | UnsetType = UNSET  # required, except for count_tokens (Python pass)
    system: str | list[TextBlock] | UnsetType = UNSET
    stop_sequences: list[str] | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    top_k: int | UnsetType = UNSET
    stream: bool | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    tool_choice: ToolChoice | UnsetType = UNSET
    thinking: ThinkingConfig | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET
    service_tier: ServiceTier | UnsetType = UNSET  # accepted and ignored
    output_format: JSONOutputFormat | UnsetType | None = UNSET  # beta spelling
    output_config: OutputConfig | UnsetType = UNSET
    # Known features this exchange cannot carry: any value (even null) is refused.
    mcp_servers: msgspec.Raw | UnsetType = UNSET
    container: msgspec.Raw | UnsetType = UNSET
    thread: msgspec.Raw | UnsetType = UNSET  # ThreadUnsupported: the SDKs fall back on it
    # Anthropic's fields that change nothing this exchange routes or bills: accepted, ignored.
    cache_control: msgspec.Raw | UnsetType = UNSET
    inference_geo: msgspec.Raw | UnsetType = UNSET
    speed: msgspec.Raw | UnsetType = UNSET
    diagnostics: msgspec.Raw | UnsetType = UNSET
    context_management: msgspec.Raw | UnsetType = UNSET
    compaction: msgspec.Raw | UnsetType = UNSET
    fallbacks: msgspec.Raw | UnsetType = UNSET
    fallback_credit_token: msgspec.Raw | UnsetType = UNSET
    billing_policy: msgspec.Raw | UnsetType = UNSET
    user_profile_id: msgspec.Raw | UnsetType = UNSET
    workspace_id: msgspec.Raw | UnsetType = UNSET
    # extension: the routing preferences of the OpenAI surface (protocol/provider_preferences.py)
    provider: ProviderPreferences | UnsetType = UNSET

    @property
    def is_stream(self) -> bool:
        return self.stream is True

    @property
    def output_json_format(self) -> JSONOutputFormat | None:
        """The structured-output format, from ``output_format`` or ``output_config.format``."""
        if isinstance(self.output_format, JSONOutputFormat):
            return self.output_format
        config = self.output_config
        if isinstance(config, OutputConfig) and isinstance(config.format, JSONOutputFormat):
            return config.format
        return None


MESSAGES_REQUEST_DECODER: Final = msgspec.json.Decoder(MessagesRequest)

# --------------------------------------------------------------------------------------------
# Decoding


def decode_messages_request(body: bytes, *, count_tokens: bool = False) -> MessagesRequest:
    """Decode and validate a Messages body. Raises only BadRequest / ValidationFailed.

    ``count_tokens``: the body is one of ``POST /v1/messages/count_tokens``, which has no
    ``max_tokens`` (checked when given; the thinking budget is then checked against it only).
    """
    request = decode(MESSAGES_REQUEST_DECODER, body, _SURFACE)
    _validate(request, count_tokens=count_tokens)
    return request


# --------------------------------------------------------------------------------------------
# The Python pass: bounds and cross-field rules

_MIN_THINKING_BUDGET: Final = 1024
_USER_ID_MAX: Final = 256

# Per message class: the block classes it may carry, and their names for messages.
_ALLOWED_BLOCKS: Final[
    Mapping[type[msgspec.Struct], tuple[frozenset[type[msgspec.Struct]], str]]
] = MappingProxyType(
    {
        UserMessage: (
            frozenset({TextBlock, ImageBlock, DocumentBlock, ToolResultBlock}),
            "'text', 'image', 'document', 'tool_result'",
        ),
        AssistantMessage: (
            frozenset({TextBlock, ThinkingBlock, RedactedThinkingBlock, ToolUseBlock}),
            "'text', 'thinking', 'redacted_thinking', 'tool_use'",
        ),
        SystemMessage: (frozenset({TextBlock}), "'text'"),
    }
)


def _validate(req: MessagesRequest, *, count_tokens: bool) -> None:
    if req.thread is not UNSET:  # first: a thread's turn sends only the newest messages
        raise ThreadUnsupported(
            "thread: message threads are not supported by this exchange; send the whole"
            " conversation without thread",
            param="thread",
        )
    if req.mcp_servers is not UNSET:
        fail("mcp_servers", "MCP servers are not supported by this exchange")
    if req.container is not UNSET:
        fail("container", "code-execution containers are not supported by this exchange")
    if isinstance(req.max_tokens, UnsetType) and not count_tokens:
        fail("max_tokens", "is required")
    if not req.messages:
        fail("messages", "must contain at least one message")

    check_int_range(req.max_tokens, "max_tokens", 1)
    check_range(req.temperature, "temperature", 0, 1)
    check_range(req.top_p, "top_p", 0, 1)
    check_int_range(req.top_k, "top_k", 0)

    thinking = req.thinking
    if isinstance(thinking, ThinkingConfigEnabled):
        budget = thinking.budget_tokens
        check_int_range(budget, "thinking.budget_tokens", _MIN_THINKING_BUDGET)
        if isinstance(req.max_tokens, int) and budget >= req.max_tokens:
            fail(
                "thinking.budget_tokens",
                f"must be less than max_tokens (got {show(budget)},"
                f" max_tokens is {show(req.max_tokens)})",
            )

    metadata = req.metadata
    if (
        isinstance(metadata, Metadata)
        and isinstance(metadata.user_id, str)
        and len(metadata.user_id) > _USER_ID_MAX
    ):
        fail("metadata.user_id", f"must be at most {_USER_ID_MAX} characters")

    tool_names = _check_tools(req.tools)
    _check_tool_choice(req.tool_choice, tool_names)

    config = req.output_config
    if (
        isinstance(req.output_format, JSONOutputFormat)
        and isinstance(config, OutputConfig)
        and isinstance(config.format, JSONOutputFormat)
    ):
        fail("output_format", "give output_format or output_config.format, not both")

    check_provider_preferences(req.provider)
    _check_messages(req.messages)


def _check_messages(messages: list[InputMessage]) -> None:
    tool_use_ids: set[str] = set()
    for i, message in enumerate(messages):
        content = message.content
        if type(content) is not list:
            continue
        if not content:
            fail(f"messages[{i}].content", "must contain at least one content block")
        allowed, allowed_names = _ALLOWED_BLOCKS[type(message)]
        for j, block in enumerate(content):
            path = f"messages[{i}].content[{j}]"
            kind = type(block)
            if kind not in allowed:
                fail(
                    f"{path}.type",
                    f"'{block.__struct_config__.tag}' blocks are not allowed in"
                    f" {message.__struct_config__.tag} messages (allowed: {allowed_names})",
                )
            if kind is ToolUseBlock:
                assert isinstance(block, ToolUseBlock)
                tool_use_ids.add(block.id)
            elif kind is ToolResultBlock:
                assert isinstance(block, ToolResultBlock)
                _check_tool_result(block, path, tool_use_ids)
            elif kind is ImageBlock:
                assert isinstance(block, ImageBlock)
                _check_image(block, path)
            elif kind is DocumentBlock:
                assert isinstance(block, DocumentBlock)
                _check_document(block, path)


def _check_tool_result(block: ToolResultBlock, path: str, tool_use_ids: set[str]) -> None:
    if block.tool_use_id not in tool_use_ids:
        fail(
            f"{path}.tool_use_id",
            f"answers no tool_use block of an earlier assistant message"
            f" (got {show(block.tool_use_id)})",
        )
    if type(block.content) is list:
        for k, part in enumerate(block.content):
            if type(part) is ImageBlock:
                _check_image(part, f"{path}.content[{k}]")


def _check_image(block: ImageBlock, path: str) -> None:
    source = block.source
    if type(source) is Base64Source and source.media_type not in IMAGE_MEDIA_TYPES:
        fail(
            f"{path}.source.media_type",
            f"must be one of {choices_text(IMAGE_MEDIA_TYPES)} (got {show(source.media_type)})",
        )


def _check_document(block: DocumentBlock, path: str) -> None:
    source = block.source
    kind = type(source)
    if kind is Base64Source or kind is PlainTextSource:
        assert isinstance(source, Base64Source | PlainTextSource)
        want = DOCUMENT_MEDIA_TYPE if kind is Base64Source else TEXT_MEDIA_TYPE
        if source.media_type != want:
            fail(
                f"{path}.source.media_type",
                f"must be '{want}' for a {source.__struct_config__.tag} document source"
                f" (got {show(source.media_type)})",
            )
    elif kind is ContentSource:
        assert isinstance(source, ContentSource)
        content = source.content
        if type(content) is list:
            if not content:
                fail(f"{path}.source.content", "must contain at least one content block")
            for k, part in enumerate(content):
                if type(part) is ImageBlock:
                    _check_image(part, f"{path}.source.content[{k}]")


def _check_tools(tools: list[Tool] | UnsetType) -> frozenset[str]:
    if not isinstance(tools, list):
        return frozenset()
    names: set[str] = set()
    for i, tool in enumerate(tools):
        kind = tool.type
        if isinstance(kind, str) and kind != "custom":
            fail(
                f"tools[{i}].type",
                f"server tools are not supported by this exchange (got {show(kind)});"
                " give custom tools (no type, or 'custom')",
            )
        check_name(tool.name, f"tools[{i}].name")
        if tool.name in names:
            fail(f"tools[{i}].name", f"must be unique ({show(tool.name)} is given twice)")
        names.add(tool.name)
        schema = tool.input_schema
        if isinstance(schema, UnsetType):
            fail(f"tools[{i}].input_schema", "is required")
        elif "type" not in schema:
            fail(f"tools[{i}].input_schema.type", "is required (must be 'object')")
        elif schema["type"] != "object":
            fail(f"tools[{i}].input_schema.type", f"must be 'object' (got {show(schema['type'])})")
    return frozenset(names)


def _check_tool_choice(choice: ToolChoice | UnsetType, tool_names: frozenset[str]) -> None:
    if not isinstance(choice, ToolChoiceAny | ToolChoiceTool):
        return  # auto and none need no tools
    if not tool_names:
        fail("tool_choice", "requires tools (give tools, or omit tool_choice)")
    if isinstance(choice, ToolChoiceTool) and choice.name not in tool_names:
        fail("tool_choice.name", f"names a tool that is not in tools (got {show(choice.name)})")


# --------------------------------------------------------------------------------------------
# Translating msgspec's errors into the error tree (the same rules as the OpenAI surface)

# Malformed content inside these option objects is 422, like any other structural fault.
_STRUCTURED_RE: Final = re.compile(
    r"(?:tools\[|tool_choice\.|thinking\.|output_format\.|output_config\.|provider\.)"
)
_INNER_BLOCKS: Final = tags(ToolResultContent)
_IMAGE_SOURCES: Final = tags(ImageSource)
_DOCUMENT_SOURCES: Final = tags(DocumentSource)

# Accepted values by path (indices replaced by ``[]``), for messages naming the choices.
_CHOICES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "service_tier": get_args(ServiceTier),
        "messages[].role": tags(InputMessage),
        "messages[].content[].type": tags(ContentBlock),
        "messages[].content[].content[].type": _INNER_BLOCKS,
        "messages[].content[].source.content[].type": _INNER_BLOCKS,
        "messages[].content[].content[].source.type": _IMAGE_SOURCES,
        "messages[].content[].source.content[].source.type": _IMAGE_SOURCES,
        "system[].type": ("text",),
        "tool_choice.type": tags(ToolChoice),
        "thinking.type": tags(ThinkingConfig),
        "output_format.type": ("json_schema",),
        "output_config.format.type": ("json_schema",),
        "output_config.effort": get_args(Effort),
        **PROVIDER_CHOICES,
    }
)
_CACHE_CONTROL_CHOICES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"cache_control.type": ("ephemeral",), "cache_control.ttl": ("5m", "1h")}
)
# A block's source type: the choices depend on the block (image or document), which the
# error text does not say, so both are named.
_SOURCE_TYPE_KEY: Final = "messages[].content[].source.type"


def _source_types() -> str:
    return f"images take {choices_text(_IMAGE_SOURCES)}; documents take {choices_text(_DOCUMENT_SOURCES)}"


def _choices_for(key: str) -> tuple[str, ...] | None:
    choices = _CHOICES.get(key)
    if choices is None:
        for suffix, values in _CACHE_CONTROL_CHOICES.items():
            if key.endswith(suffix):
                return values
    return choices


def _missing_hint(key: str) -> str | None:
    return _source_types() if key == _SOURCE_TYPE_KEY else None


def _invalid_word(key: str, shown: str) -> str | None:
    if key == _SOURCE_TYPE_KEY:
        return f"unknown source type {shown} ({_source_types()})"
    return None


_SURFACE: Final = Surface(
    choices_for=_choices_for,
    structured=_STRUCTURED_RE,
    missing_hint=_missing_hint,
    invalid_word=_invalid_word,
)
