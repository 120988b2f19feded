"""The OpenAI Chat Completions request: wire schema, decoding and validation.

``decode_chat_request(body)`` is the one entry point. It decodes and type-checks the body in a
single msgspec pass (``CHAT_REQUEST_DECODER``), then runs a cheap Python pass for bounds and
cross-field rules (no copies, one walk over the messages). It raises only:

- ``BadRequest`` (400): the body is not JSON, not a JSON object, or a field has the wrong JSON
  type (``"temperature": "hot"``, ``"messages": {}``, ``"n": 1.5``).
- ``ValidationFailed`` (422): well-typed but out of range or structurally invalid: a bound, an
  unknown enum value, an unknown message role or content-part type, a missing required field, a
  cross-field rule, or anything malformed *inside* the structured option objects ``tools``,
  ``tool_choice``, ``response_format``, ``stream_options``, ``provider`` (the routing
  preferences, ``protocol/provider_preferences.py``) and an assistant's ``tool_calls``
  (the reference exchange documents "bad tools schema" and "invalid response_format" as 422).

Both carry ``param`` (the path of the offending field, e.g. ``messages[1].role``) and a message
that starts with it: ``"temperature: must be between 0 and 2 (got 3.5)"``.

Extensions: a few fields carry what other wire formats have and OpenAI's lacks, so a request
translated from the Anthropic Messages surface loses nothing on its way to an Anthropic-format
supplier, and an OpenAI-surface caller can use them too: ``top_k``, ``thinking`` (a reasoning
budget), ``cache_control`` on content parts and tools, ``is_error`` on tool messages, and an
assistant message's earlier reasoning (``reasoning_content`` and ``thinking_blocks``, which
carry the signatures a supplier needs back). The OpenAI-format adapter drops the ones the
OpenAI wire has no place for (``thinking`` becomes a ``reasoning_effort``).

Every optional field defaults to ``UNSET``; the structs are encoded with ``omit_defaults``, so
``msgspec.json.encode(request)`` emits exactly the fields the client sent (``null`` included where
a field is nullable) and drops unknown ones. Adapters build the upstream body that way, changing
fields with ``msgspec.structs.replace``.

The messages and their content parts are declared in ``protocol/openai_content.py`` and
re-exported here, so this module stays the one import for the whole request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from gridgate.protocol.openai_content import (
    AssistantMessage,
    AudioFormat,
    AudioPart,
    CacheControl,
    CacheTTL,
    Content,
    ContentPart,
    DeveloperMessage,
    FilePart,
    FileRef,
    FunctionCall,
    ImageDetail,
    ImagePart,
    ImageURL,
    InputAudio,
    Message,
    ReasoningBlock,
    RedactedThinkingBlock,
    RefusalPart,
    SystemMessage,
    TextPart,
    ThinkingBlock,
    ToolCall,
    ToolMessage,
    UserMessage,
    Wire,
)
from gridgate.protocol.provider_preferences import (
    PROVIDER_CHOICES,
    ProviderPreferences,
    check_provider_preferences,
)
from gridgate.protocol.wire_errors import (
    INT64_MAX,
    INT64_MIN,
    Surface,
    check_int_range,
    check_name,
    check_range,
    decode,
    fail,
    show,
    tags,
)

__all__ = [
    "CHAT_REQUEST_DECODER",
    "UNSET",
    "AssistantMessage",
    "AudioFormat",
    "AudioPart",
    "CacheControl",
    "CacheTTL",
    "ChatRequest",
    "Content",
    "ContentPart",
    "DeveloperMessage",
    "FilePart",
    "FileRef",
    "FunctionCall",
    "FunctionDefinition",
    "ImageDetail",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "JSONSchemaFormat",
    "Message",
    "Modality",
    "NamedToolChoice",
    "PromptCacheRetention",
    "ReasoningBlock",
    "ReasoningEffort",
    "RedactedThinkingBlock",
    "RefusalPart",
    "ResponseFormat",
    "ResponseFormatJSONObject",
    "ResponseFormatJSONSchema",
    "ResponseFormatText",
    "Route",
    "ServiceTier",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "Thinking",
    "ThinkingBlock",
    "ThinkingDisabled",
    "ThinkingEnabled",
    "Tool",
    "ToolCall",
    "ToolChoiceFunction",
    "ToolChoiceMode",
    "ToolMessage",
    "UnsetType",
    "UserMessage",
    "Verbosity",
    "decode_chat_request",
]

# --------------------------------------------------------------------------------------------
# Enumerations (the values accepted on the wire)

ServiceTier = Literal["auto", "default", "flex", "scale", "priority"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
Verbosity = Literal["low", "medium", "high"]
PromptCacheRetention = Literal["in-memory", "24h"]
Route = Literal["fallback"]
Modality = Literal["text", "audio"]
ToolChoiceMode = Literal["none", "auto", "required"]


# --------------------------------------------------------------------------------------------
# Tools, tool choice, response format, stream options


class FunctionDefinition(Wire):
    name: str  # ^[a-zA-Z0-9_-]{1,64}$
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET  # a JSON Schema object, not validated here
    strict: bool | UnsetType | None = UNSET


class Tool(Wire):
    type: Literal["function"]
    function: FunctionDefinition
    cache_control: CacheControl | UnsetType | None = UNSET  # extension


class ToolChoiceFunction(Wire):
    name: str


class NamedToolChoice(Wire):
    type: Literal["function"]
    function: ToolChoiceFunction


class ResponseFormatText(Wire, tag="text", tag_field="type"):
    pass


class ResponseFormatJSONObject(Wire, tag="json_object", tag_field="type"):
    pass


class JSONSchemaFormat(Wire):
    name: str  # ^[a-zA-Z0-9_-]{1,64}$
    description: str | UnsetType = UNSET
    schema: dict[str, Any] | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class ResponseFormatJSONSchema(Wire, tag="json_schema", tag_field="type"):
    json_schema: JSONSchemaFormat


ResponseFormat = ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema


class ThinkingEnabled(Wire, tag="enabled", tag_field="type"):
    """Extension (Anthropic's ``thinking``): reason first, spending at most ``budget_tokens``
    of the max output tokens. For the OpenAI wire it becomes a ``reasoning_effort``."""

    budget_tokens: int


class ThinkingDisabled(Wire, tag="disabled", tag_field="type"):
    pass


Thinking = ThinkingEnabled | ThinkingDisabled


class StreamOptions(Wire):
    include_usage: bool | UnsetType = UNSET
    include_obfuscation: bool | UnsetType = UNSET


# --------------------------------------------------------------------------------------------
# The request


class ChatRequest(Wire):
    """``POST /v1/chat/completions``. ``UNSET`` = not sent; ``None`` = sent as ``null``."""

    model: str
    messages: list[Message]
    max_tokens: int | UnsetType | None = UNSET  # deprecated; still honoured
    max_completion_tokens: int | UnsetType | None = UNSET
    temperature: float | UnsetType | None = UNSET
    top_p: float | UnsetType | None = UNSET
    n: int | UnsetType | None = UNSET
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    stop: str | list[str] | UnsetType | None = UNSET
    logprobs: bool | UnsetType | None = UNSET
    top_logprobs: int | UnsetType | None = UNSET
    response_format: ResponseFormat | UnsetType | None = UNSET
    tools: list[Tool] | UnsetType | None = UNSET
    tool_choice: ToolChoiceMode | NamedToolChoice | UnsetType | None = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    frequency_penalty: float | UnsetType | None = UNSET
    presence_penalty: float | UnsetType | None = UNSET
    seed: int | UnsetType | None = UNSET
    service_tier: ServiceTier | UnsetType | None = UNSET
    reasoning_effort: ReasoningEffort | UnsetType | None = UNSET
    store: bool | UnsetType | None = UNSET
    verbosity: Verbosity | UnsetType | None = UNSET
    prompt_cache_key: str | UnsetType | None = UNSET
    prompt_cache_retention: PromptCacheRetention | UnsetType | None = UNSET
    safety_identifier: str | UnsetType | None = UNSET
    route: Route | UnsetType = UNSET
    # routing preferences (protocol/provider_preferences.py); ``route: "fallback"`` is
    # OpenRouter's legacy spelling of the default (fallbacks allowed): accepted, no effect
    provider: ProviderPreferences | UnsetType = UNSET
    user: str | UnsetType = UNSET  # deprecated
    logit_bias: dict[str, int] | UnsetType | None = UNSET
    metadata: dict[str, str] | UnsetType | None = UNSET
    modalities: list[Modality] | UnsetType | None = UNSET
    audio: dict[str, Any] | UnsetType | None = UNSET
    prediction: dict[str, Any] | UnsetType | None = UNSET
    web_search_options: dict[str, Any] | UnsetType | None = UNSET
    # extensions, for suppliers of other wire formats (see the module docstring)
    top_k: int | UnsetType | None = UNSET
    thinking: Thinking | UnsetType | None = UNSET

    # ---- read-only helpers used by routing and billing ------------------------------------

    @property
    def effective_max_tokens(self) -> int | None:
        """``max_completion_tokens`` if given, else ``max_tokens``, else None (per choice)."""
        value = self.max_completion_tokens
        if isinstance(value, int):
            return value
        value = self.max_tokens
        return value if isinstance(value, int) else None

    @property
    def is_stream(self) -> bool:
        return self.stream is True

    @property
    def include_usage(self) -> bool:
        """The client asked for a final usage chunk (``stream_options.include_usage``)."""
        options = self.stream_options
        return isinstance(options, StreamOptions) and options.include_usage is True

    @property
    def wants_tools(self) -> bool:
        """Tools are given and ``tool_choice`` does not switch them off."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def wants_json_schema(self) -> bool:
        return isinstance(self.response_format, ResponseFormatJSONSchema)

    @property
    def wants_json_object(self) -> bool:
        return isinstance(self.response_format, ResponseFormatJSONObject)

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs is True

    @property
    def has_image_input(self) -> bool:
        return self._has_part(ImagePart)

    @property
    def has_audio_input(self) -> bool:
        return self._has_part(AudioPart)

    @property
    def has_file_input(self) -> bool:
        return self._has_part(FilePart)

    @property
    def n_choices(self) -> int:
        n = self.n
        return n if isinstance(n, int) else 1

    @property
    def stop_list(self) -> list[str]:
        stop = self.stop
        if isinstance(stop, str):
            return [stop]
        if isinstance(stop, list):
            return list(stop)
        return []

    @property
    def has_extensions(self) -> bool:
        """Any extension field is set (the OpenAI-format adapter then drops or maps them)."""
        if self.top_k is not UNSET or self.thinking is not UNSET:
            return True
        for tool in self.tools or ():
            if tool.cache_control is not UNSET:
                return True
        for message in self.messages:
            kind = type(message)
            if kind is AssistantMessage:
                assert isinstance(message, AssistantMessage)
                if message.reasoning_content is not UNSET or message.thinking_blocks is not UNSET:
                    return True
            elif kind is ToolMessage:
                assert isinstance(message, ToolMessage)
                if message.is_error is not UNSET:
                    return True
            content = message.content
            if type(content) is list:
                for part in content:
                    if getattr(part, "cache_control", UNSET) is not UNSET:
                        return True
        return False

    def _has_part(self, kind: type[msgspec.Struct]) -> bool:
        for message in self.messages:
            content = message.content
            if type(content) is list:
                for part in content:
                    if type(part) is kind:
                        return True
        return False


CHAT_REQUEST_DECODER: Final = msgspec.json.Decoder(ChatRequest)

# --------------------------------------------------------------------------------------------
# Decoding


def decode_chat_request(body: bytes) -> ChatRequest:
    """Decode and validate a chat-completions body. Raises only BadRequest / ValidationFailed."""
    request = decode(CHAT_REQUEST_DECODER, body, _SURFACE)
    _validate(request)
    return request


# --------------------------------------------------------------------------------------------
# The Python pass: bounds and cross-field rules

_MAX_STOP: Final = 4
_METADATA_MAX_PAIRS: Final = 16
_METADATA_MAX_KEY: Final = 64
_METADATA_MAX_VALUE: Final = 512

_TEXT_ONLY: Final = (frozenset({TextPart}), "'text'")
# Per message class: the content-part classes it may carry, and their names for messages.
_ALLOWED_PARTS: Final[
    Mapping[type[msgspec.Struct], tuple[frozenset[type[msgspec.Struct]], str]]
] = MappingProxyType(
    {
        SystemMessage: _TEXT_ONLY,
        DeveloperMessage: _TEXT_ONLY,
        ToolMessage: _TEXT_ONLY,
        AssistantMessage: (frozenset({TextPart, RefusalPart}), "'text', 'refusal'"),
        UserMessage: (
            frozenset({TextPart, ImagePart, AudioPart, FilePart}),
            "'text', 'image_url', 'input_audio', 'file'",
        ),
    }
)


def _validate(req: ChatRequest) -> None:
    if not req.messages:
        fail("messages", "must contain at least one message")
    _check_messages(req.messages)

    check_int_range(req.max_tokens, "max_tokens", 1, INT64_MAX)
    check_int_range(req.max_completion_tokens, "max_completion_tokens", 1, INT64_MAX)
    check_range(req.temperature, "temperature", 0, 2)
    check_range(req.top_p, "top_p", 0, 1)
    check_int_range(req.n, "n", 1, 128)
    check_range(req.frequency_penalty, "frequency_penalty", -2, 2)
    check_range(req.presence_penalty, "presence_penalty", -2, 2)
    check_int_range(req.seed, "seed", INT64_MIN, INT64_MAX)
    check_int_range(req.top_k, "top_k", 0, INT64_MAX)
    thinking = req.thinking
    if isinstance(thinking, ThinkingEnabled):
        check_int_range(thinking.budget_tokens, "thinking.budget_tokens", 1, INT64_MAX)

    top_logprobs = req.top_logprobs
    if isinstance(top_logprobs, int):
        check_int_range(top_logprobs, "top_logprobs", 0, 20)
        if req.logprobs is not True:
            fail("top_logprobs", "requires logprobs to be true")

    stop = req.stop
    if isinstance(stop, list) and len(stop) > _MAX_STOP:
        fail("stop", f"must contain at most {_MAX_STOP} sequences (got {len(stop)})")

    if isinstance(req.stream_options, StreamOptions) and req.stream is not True:
        fail("stream_options", "is only allowed when stream is true")

    if isinstance(req.logit_bias, dict):
        for key, bias in req.logit_bias.items():
            if not (key.isascii() and key.isdigit()):
                fail("logit_bias", f"keys must be token ids (got {show(key)})")
            if not -100 <= bias <= 100:
                fail("logit_bias", f"values must be between -100 and 100 (got {show(bias)})")

    if isinstance(req.metadata, dict):
        _check_metadata(req.metadata)

    tool_names = _check_tools(req.tools)
    _check_tool_choice(req.tool_choice, tool_names)

    response_format = req.response_format
    if isinstance(response_format, ResponseFormatJSONSchema):
        check_name(response_format.json_schema.name, "response_format.json_schema.name")

    check_provider_preferences(req.provider)


def _check_messages(messages: list[Message]) -> None:
    for i, message in enumerate(messages):
        content = message.content
        if type(content) is list:
            if not content:
                fail(f"messages[{i}].content", "must contain at least one content part")
            allowed, allowed_names = _ALLOWED_PARTS[type(message)]
            for j, part in enumerate(content):
                if type(part) not in allowed:
                    fail(
                        f"messages[{i}].content[{j}].type",
                        f"'{part.__struct_config__.tag}' parts are not allowed in"
                        f" {message.__struct_config__.tag} messages (allowed: {allowed_names})",
                    )
                if (
                    isinstance(part, FilePart)
                    and part.file.file_data is UNSET
                    and part.file.file_id is UNSET
                ):
                    fail(f"messages[{i}].content[{j}].file", "must have file_data or file_id")
        if type(message) is AssistantMessage:
            tool_calls = message.tool_calls
            if isinstance(tool_calls, list) and not tool_calls:
                fail(f"messages[{i}].tool_calls", "must not be empty (omit it instead)")
            if (content is None or content is UNSET) and not (
                tool_calls or message.refusal or isinstance(message.audio, dict)
            ):
                fail(f"messages[{i}].content", "is required unless tool_calls is given")


def _check_tools(tools: list[Tool] | UnsetType | None) -> frozenset[str]:
    if not isinstance(tools, list):
        return frozenset()
    for i, tool in enumerate(tools):
        check_name(tool.function.name, f"tools[{i}].function.name")
    return frozenset(tool.function.name for tool in tools)


def _check_tool_choice(
    choice: ToolChoiceMode | NamedToolChoice | UnsetType | None, tool_names: frozenset[str]
) -> None:
    if choice is UNSET or choice is None or choice == "none":
        return
    if not tool_names:
        fail("tool_choice", "requires tools (give tools, or omit tool_choice)")
    if isinstance(choice, NamedToolChoice) and choice.function.name not in tool_names:
        fail(
            "tool_choice.function.name",
            f"names a tool that is not in tools (got {show(choice.function.name)})",
        )


def _check_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > _METADATA_MAX_PAIRS:
        fail("metadata", f"must have at most {_METADATA_MAX_PAIRS} pairs (got {len(metadata)})")
    for key, value in metadata.items():
        if len(key) > _METADATA_MAX_KEY:
            fail("metadata", f"keys must be at most {_METADATA_MAX_KEY} characters")
        if len(value) > _METADATA_MAX_VALUE:
            fail("metadata", f"values must be at most {_METADATA_MAX_VALUE} characters")


# --------------------------------------------------------------------------------------------
# Translating msgspec's errors into the error tree

# Malformed content inside these structured objects is 422, like any other structural fault.
_STRUCTURED_RE: Final = re.compile(
    r"(?:tools\[|tool_choice\.|response_format\.|stream_options\.|thinking\.|provider\.|messages\[\d+\]\.tool_calls\[)"
)
_ROLES: Final = tags(Message)
_PART_TYPES: Final = tags(ContentPart)

# Accepted values by path (indices replaced by ``[]``), for messages naming the choices.
_CHOICES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "service_tier": get_args(ServiceTier),
        "reasoning_effort": get_args(ReasoningEffort),
        "verbosity": get_args(Verbosity),
        "prompt_cache_retention": get_args(PromptCacheRetention),
        "route": get_args(Route),
        "modalities[]": get_args(Modality),
        "tool_choice": get_args(ToolChoiceMode),
        "tool_choice.type": ("function",),
        "tools[].type": ("function",),
        "response_format.type": tags(ResponseFormat),
        "messages[].role": _ROLES,
        "messages[].content[].type": _PART_TYPES,
        "messages[].content[].image_url.detail": get_args(ImageDetail),
        "messages[].content[].input_audio.format": get_args(AudioFormat),
        "messages[].tool_calls[].type": ("function",),
        "messages[].thinking_blocks[].type": tags(ReasoningBlock),
        "thinking.type": tags(Thinking),
        **PROVIDER_CHOICES,
    }
)


def _invalid_word(key: str, shown: str) -> str | None:
    if key == "messages[].role" and shown == "'function'":
        return "the legacy 'function' role is not supported; use 'tool' messages"
    return None


_SURFACE: Final = Surface(
    choices_for=_CHOICES.get, structured=_STRUCTURED_RE, invalid_word=_invalid_word
)
